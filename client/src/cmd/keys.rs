//! Key and delegation verbs.

use std::path::Path;

use trustbridge_client::cache::Change;
use trustbridge_client::keystore::passphrase_for;
use trustbridge_client::publish::DelegationChange;
use trustbridge_client::{Error, Result};
use trustbridge_tuf::{KeyType, PrivateKey, PublicKey, keyfile};
use x509_parser::prelude::FromDer as _;

use super::{Ctx, print_json};
use crate::{DelegationCmd, KeyCmd};

/// A public key from a PEM certificate (`*-x509`) or `PUBLIC KEY` file.
fn public_key_file(path: &Path) -> Result<PublicKey> {
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let p =
        pem::parse(&text).map_err(|e| Error::Usage(format!("{}: not PEM: {e}", path.display())))?;
    let spki_type = |der: &[u8]| -> Result<KeyType> {
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
            .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        Ok(match spki.algorithm.algorithm.to_id_string().as_str() {
            "1.2.840.10045.2.1" => KeyType::Ecdsa,
            "1.2.840.113549.1.1.1" => KeyType::Rsa,
            "1.3.101.112" => KeyType::Ed25519,
            other => {
                return Err(Error::Usage(format!(
                    "{}: unsupported key algorithm {other}",
                    path.display()
                )));
            }
        })
    };
    match p.tag() {
        "CERTIFICATE" => {
            let (_, cert) = x509_parser::parse_x509_certificate(p.contents())
                .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
            let kt = match spki_type(cert.public_key().raw)? {
                KeyType::Rsa => KeyType::RsaX509,
                _ => KeyType::EcdsaX509,
            };
            Ok(PublicKey::new(
                kt,
                trustbridge_tuf::x509::certificates_to_pem(&[p.contents().to_vec()]),
            ))
        }
        "PUBLIC KEY" => {
            let kt = spki_type(p.contents())?;
            if kt == KeyType::Ed25519 {
                let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(p.contents())
                    .map_err(|e| Error::Usage(e.to_string()))?;
                return Ok(PublicKey::new(kt, spki.subject_public_key.data.to_vec()));
            }
            Ok(PublicKey::new(kt, p.contents().to_vec()))
        }
        other => Err(Error::Usage(format!(
            "{}: expected a CERTIFICATE or PUBLIC KEY, found {other}",
            path.display()
        ))),
    }
}

pub(super) fn delegation(ctx: &Ctx, d: DelegationCmd) -> Result<()> {
    match d {
        DelegationCmd::Add {
            gun,
            role,
            keys,
            paths,
            all_paths,
            publish,
        } => {
            check_delegation_name(&role)?;
            let mut td = DelegationChange {
                threshold: 1,
                ..Default::default()
            };
            for k in &keys {
                td.add_keys.push(public_key_file(k)?);
            }
            td.add_paths = if all_paths {
                vec![String::new()]
            } else {
                paths
            };
            let exists = delegation_exists(ctx, &gun, &role);
            if !exists && td.add_keys.is_empty() {
                return Err(Error::Usage(format!(
                    "a new delegation {role} needs at least one key file"
                )));
            }
            let change = Change {
                action: if exists {
                    "update".into()
                } else {
                    "create".into()
                },
                role: role.clone(),
                kind: "delegation".into(),
                path: String::new(),
                data: serde_json::to_vec(&td).expect("JSON"),
            };
            ctx.cache(&gun).add_change(&change)?;
            println!(
                "Addition of delegation role {role} with keys {:?} and paths {:?} to repository \"{gun}\" staged for next publish.",
                td.add_keys.iter().map(|k| k.id()).collect::<Vec<_>>(),
                td.add_paths
            );
            if publish {
                ctx.publish(&gun)?;
            }
        }
        DelegationCmd::Remove {
            gun,
            role,
            key_ids,
            paths,
            all_paths,
            publish,
        } => {
            check_delegation_name(&role)?;
            let whole = key_ids.is_empty() && paths.is_empty() && !all_paths;
            let td = DelegationChange {
                remove_keys: key_ids,
                remove_paths: paths,
                clear_all_paths: all_paths,
                ..Default::default()
            };
            ctx.cache(&gun).add_change(&Change {
                action: if whole {
                    "delete".into()
                } else {
                    "update".into()
                },
                role: role.clone(),
                kind: "delegation".into(),
                path: String::new(),
                data: if whole {
                    vec![]
                } else {
                    serde_json::to_vec(&td).expect("JSON")
                },
            })?;
            println!(
                "Removal of delegation role {role} from repository \"{gun}\" staged for next publish."
            );
            if publish {
                ctx.publish(&gun)?;
            }
        }
        DelegationCmd::List { gun } => {
            let remote = ctx.remote()?;
            let v = ctx.read(&remote, &gun)?;
            let mut rows = Vec::new();
            for (_, doc) in &v.roles {
                for d in &doc.signed.delegations.roles {
                    rows.push(serde_json::json!({"role": d.name, "paths": d.paths, "threshold": d.threshold, "keyids": d.keyids}));
                }
            }
            if ctx.json {
                print_json(&rows);
            } else if rows.is_empty() {
                println!("No delegations present in this repository.");
            } else {
                println!("{:<28}{:<24}{:<12}KEY IDS", "ROLE", "PATHS", "THRESHOLD");
                for r in rows {
                    let paths: Vec<String> = r["paths"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| {
                            let p = p.as_str().unwrap_or("");
                            if p.is_empty() {
                                "\"\" <all paths>".to_string()
                            } else {
                                p.to_string()
                            }
                        })
                        .collect();
                    let ids: Vec<&str> = r["keyids"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|k| k.as_str())
                        .collect();
                    println!(
                        "{:<28}{:<24}{:<12}{}",
                        r["role"].as_str().unwrap(),
                        paths.join(","),
                        r["threshold"].to_string(),
                        ids.join(",")
                    );
                }
            }
        }
    }
    Ok(())
}

fn check_delegation_name(role: &str) -> Result<()> {
    if role == "targets"
        || !role.starts_with("targets/")
        || !trustbridge_tuf::metadata::valid_role_name(role)
    {
        return Err(Error::Usage(format!(
            "{role:?} is not a delegation name (targets/NAME, lower-case letters, digits, -, _)"
        )));
    }
    Ok(())
}

/// Whether the cached targets metadata already lists `role` (then keys/paths are added).
fn delegation_exists(ctx: &Ctx, gun: &str, role: &str) -> bool {
    let parent = role.rsplit_once('/').map(|(p, _)| p).unwrap_or("targets");
    ctx.cache(gun)
        .read(parent)
        .ok()
        .flatten()
        .and_then(|b| {
            trustbridge_tuf::Signed::<trustbridge_tuf::Targets>::from_bytes(parent, &b).ok()
        })
        .is_some_and(|t| t.signed.delegations.roles.iter().any(|d| d.name == role))
}

pub(super) fn key(ctx: &Ctx, k: KeyCmd) -> Result<()> {
    let store = ctx.keys();
    match k {
        KeyCmd::List => {
            let keys = store.list()?;
            if ctx.json {
                print_json(&keys);
            } else if keys.is_empty() {
                println!("No signing keys found.");
            } else {
                println!("{:<20}{:<40}{:<66}LOCATION", "ROLE", "GUN", "KEY ID");
                for e in keys {
                    println!(
                        "{:<20}{:<40}{:<66}{}",
                        e.role,
                        e.gun.unwrap_or_default(),
                        e.id,
                        store.dir().display()
                    );
                }
            }
        }
        KeyCmd::Generate {
            algorithm,
            role,
            gun,
            output,
        } => {
            let kt = match algorithm.as_str() {
                "ecdsa" => KeyType::Ecdsa,
                "ed25519" => KeyType::Ed25519,
                other => {
                    return Err(Error::Usage(format!(
                        "algorithm {other} is not supported: use ecdsa or ed25519"
                    )));
                }
            };
            let key = PrivateKey::generate(kt)?;
            match output {
                Some(prefix) => {
                    let pass = passphrase_for(&role, "new key")?;
                    let text = keyfile::encode(&key, &role, gun.as_deref(), &pass)?;
                    let kpath = prefix.with_extension("key");
                    // A private key file: readable by its owner only (docker refuses others),
                    // in notary's export form so `notary key import` and `docker trust key
                    // load` file it under its ID.
                    write_private(&kpath, with_path_header(&text, &key.id()).as_bytes())?;
                    let pubpem = pem::encode(&pem::Pem::new(
                        "PUBLIC KEY",
                        key.public_key().public.clone(),
                    ));
                    let ppath = prefix.with_extension("pub");
                    std::fs::write(&ppath, pubpem).map_err(|e| Error::io(&ppath, e))?;
                    println!(
                        "Generated new {algorithm} {role} key with keyID: {} ({} and {})",
                        key.id(),
                        kpath.display(),
                        ppath.display()
                    );
                }
                None => {
                    let id = store.save(&key, &role, gun.as_deref())?;
                    println!("Generated new {algorithm} {role} key with keyID: {id}");
                }
            }
        }
        KeyCmd::Rotate {
            gun,
            roles,
            server_managed,
        } => {
            if roles.is_empty() {
                return Err(Error::Usage(
                    "name the role(s) to rotate: root, targets, snapshot, timestamp".into(),
                ));
            }
            let remote = ctx.remote()?;
            for (role, id) in ctx.repo(&remote, &gun)?.rotate(&roles, server_managed)? {
                println!("Successfully rotated {role} key for repository {gun}: new key {id}");
            }
        }
        KeyCmd::Import { files, role, gun } => {
            for f in files {
                let text = std::fs::read(&f).map_err(|e| Error::io(&f, e))?;
                let p = pem::parse(&text)
                    .map_err(|e| Error::Usage(format!("{}: not PEM: {e}", f.display())))?;
                let role = role
                    .clone()
                    .or_else(|| p.headers().get("role").map(str::to_string))
                    .ok_or_else(|| {
                        Error::Usage(format!("{}: no role header; pass --role", f.display()))
                    })?;
                let gun = gun
                    .clone()
                    .or_else(|| p.headers().get("gun").map(str::to_string));
                let key = match p.tag() {
                    "ENCRYPTED PRIVATE KEY" => {
                        let pass = passphrase_for(&role, "import")?;
                        keyfile::decode(&text, &pass)
                            .map_err(|e| match e {
                                trustbridge_tuf::Error::WrongPassphrase => Error::WrongPassphrase {
                                    role: role.clone(),
                                    key_id: f.display().to_string(),
                                    env: trustbridge_client::keystore::passphrase_envs(&role)[0]
                                        .into(),
                                },
                                e => e.into(),
                            })?
                            .key
                    }
                    _ => keyfile::decode(&text, "")?.key,
                };
                let id = store.save(&key, &role, gun.as_deref())?;
                println!("Imported {role} key {id} from {}", f.display());
            }
        }
        KeyCmd::Export { key_ids, output } => {
            let mut out = String::new();
            for e in store.list()? {
                if key_ids.is_empty() || key_ids.contains(&e.id) {
                    let text =
                        std::fs::read_to_string(&e.path).map_err(|x| Error::io(&e.path, x))?;
                    out.push_str(&with_path_header(&text, &e.id));
                }
            }
            match output {
                Some(p) => write_private(&p, out.as_bytes())?,
                None => print!("{out}"),
            }
        }
    }
    Ok(())
}

/// notary's export form of a key file: a `path: <key ID>` PEM header (Go sorts headers, so it
/// goes between `gun` and `role`). notary's import files the key under that name; docker's
/// `trust key load` imports an encrypted key only when it has one (without it, docker
/// decrypts the key and then finds no PEM to store, yet reports success).
fn with_path_header(text: &str, id: &str) -> String {
    let mut out = String::with_capacity(text.len() + 80);
    let mut lines = text.lines();
    let Some(begin) = lines.next() else {
        return text.to_string();
    };
    let mut headers: Vec<String> = Vec::new();
    let mut rest: Vec<&str> = Vec::new();
    let mut in_headers = true;
    for l in lines {
        if in_headers && l.contains(": ") {
            headers.push(l.to_string());
        } else {
            if in_headers && !l.is_empty() {
                rest.push("");
            }
            in_headers = false;
            rest.push(l);
        }
    }
    headers.retain(|h| !h.starts_with("path: "));
    headers.push(format!("path: {id}"));
    headers.sort();
    out.push_str(begin);
    out.push('\n');
    for h in headers {
        out.push_str(&h);
        out.push('\n');
    }
    for l in rest {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Write a file holding private keys with mode 0600.
fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    // An existing file keeps its mode on open: tighten it too.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(path, e))?;
    f.write_all(data).map_err(|e| Error::io(path, e))
}
