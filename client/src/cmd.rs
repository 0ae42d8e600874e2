//! The CLI verbs: parse what `Cli` gave, call the library, print notary-style output (or JSON).

use std::path::{Path, PathBuf};

use trustbridge_client::cache::{Change, RepoDir, target_change};
use trustbridge_client::config::{NotaryConfig, RemoteServer};
use trustbridge_client::keystore::{KeyStore, passphrase_for};
use trustbridge_client::publish::{DelegationChange, Repo};
use trustbridge_client::remote::{Remote, Tls};
use trustbridge_client::update::{Pinning, Verified};
use trustbridge_client::{Error, Result, cosign, import};
use trustbridge_tuf::metadata::FileMeta;
use trustbridge_tuf::{KeyType, PrivateKey, PublicKey, keyfile};
use x509_parser::prelude::FromDer as _;

use crate::{Cli, Command, DelegationCmd, KeyCmd, MigrationCmd};

struct Ctx {
    server: String,
    trust_dir: PathBuf,
    tls: Tls,
    /// Pins from the command line; they replace the config file's for every GUN.
    pin: Pinning,
    config: Option<NotaryConfig>,
    json: bool,
}

impl Ctx {
    fn remote(&self) -> Result<Remote> {
        Remote::with_tls(&self.server, &self.tls)
    }
    fn pin(&self, gun: &str) -> Result<Pinning> {
        match &self.config {
            Some(c) if self.pin.root_key_ids.is_empty() && self.pin.ca_ders.is_empty() => {
                c.pinning_for(gun)
            }
            _ => Ok(self.pin.clone()),
        }
    }
    fn keys(&self) -> KeyStore {
        KeyStore::new(&self.trust_dir)
    }
    fn cache(&self, gun: &str) -> RepoDir {
        RepoDir::new(&self.trust_dir, gun)
    }
    fn repo<'a>(&self, remote: &'a Remote, gun: &str) -> Result<Repo<'a>> {
        Ok(Repo {
            remote,
            gun: gun.into(),
            keys: self.keys(),
            cache: self.cache(gun),
            pin: self.pin(gun)?,
        })
    }
    fn publish(&self, gun: &str) -> Result<()> {
        let remote = self.remote()?;
        let n = self.repo(&remote, gun)?.publish()?;
        println!("Successfully published changes for repository {gun} ({n} change(s))");
        Ok(())
    }
    /// Verified state for reading; delegation warnings go to stderr, as notary's do.
    fn read(&self, remote: &Remote, gun: &str) -> Result<Verified> {
        let v = self
            .repo(remote, gun)?
            .update(false)?
            .ok_or_else(|| Error::NotFound {
                gun: gun.into(),
                server: self.server.clone(),
            })?;
        for w in &v.warnings {
            eprintln!("warning: {w}");
        }
        Ok(v)
    }
}

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON"));
}

fn roles_or_targets(roles: Vec<String>) -> Vec<String> {
    if roles.is_empty() {
        vec!["targets".into()]
    } else {
        roles
    }
}

fn hash_arg(name: &str, hex_value: &str, len: usize) -> Result<Vec<u8>> {
    let b = hex::decode(hex_value.trim().trim_start_matches("sha256:"))
        .map_err(|_| Error::Usage(format!("--{name} must be hex")))?;
    if b.len() != len {
        return Err(Error::Usage(format!(
            "--{name} must be {} hex digits",
            len * 2
        )));
    }
    Ok(b)
}

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

pub fn run(cli: Cli) -> Result<()> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    trustbridge_client::remote::set_debug(cli.debug);
    let config = cli.config.as_deref().map(NotaryConfig::load).transpose()?;
    let mut pin = Pinning {
        root_key_ids: cli.pin_root_key.clone(),
        ..Default::default()
    };
    if let Some(ca) = &cli.pin_ca {
        let pem = std::fs::read(ca).map_err(|e| Error::io(ca, e))?;
        pin.ca_ders = trustbridge_tuf::x509::certificate_ders(&pem)?;
    }
    let rs = config.as_ref().map(|c| &c.remote_server);
    let from_config = |f: fn(&RemoteServer) -> &Option<String>| {
        config
            .as_ref()
            .and_then(|c| f(&c.remote_server).as_deref().map(|p| c.path(p)))
    };
    let client_cert = match (
        from_config(|r| &r.tls_client_cert),
        from_config(|r| &r.tls_client_key),
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            return Err(Error::Usage(
                "remote_server needs both tls_client_cert and tls_client_key".into(),
            ));
        }
    };
    let ctx = Ctx {
        server: cli
            .server
            .clone()
            .or_else(|| rs.and_then(|r| r.url.clone()))
            .or_else(|| std::env::var("DOCKER_CONTENT_TRUST_SERVER").ok())
            .unwrap_or_else(|| "https://notary-server:4443".into()),
        trust_dir: cli
            .trust_dir
            .clone()
            .or_else(|| {
                config
                    .as_ref()
                    .and_then(|c| c.trust_dir.as_deref().map(|d| c.path(d)))
            })
            .unwrap_or_else(|| home.join(".docker/trust")),
        tls: Tls {
            ca: cli.tls_ca.clone().or_else(|| from_config(|r| &r.root_ca)),
            client_cert,
        },
        pin,
        config,
        json: cli.json,
    };
    match cli.command {
        Command::Init {
            gun,
            publish,
            root_key,
            server_managed_snapshot,
        } => {
            let remote = ctx.remote()?;
            let key = match root_key {
                Some(p) => {
                    let text = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
                    let pass = passphrase_for("root", "import")?;
                    Some(keyfile::decode(&text, &pass)?.key)
                }
                None => None,
            };
            let id = ctx
                .repo(&remote, &gun)?
                .init(key, server_managed_snapshot)?;
            println!("Root key found, using: {id}");
            println!("Initialized repository {gun}");
            if publish {
                ctx.publish(&gun)?;
            }
        }
        Command::Add {
            gun,
            target,
            file,
            roles,
            publish,
        } => {
            let data = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
            let meta = FileMeta::from_bytes(&data);
            stage_targets(&ctx, &gun, "create", &target, Some(&meta), roles, publish)?;
        }
        Command::Addhash {
            gun,
            target,
            size,
            sha256,
            sha512,
            roles,
            publish,
        } => {
            let mut meta = FileMeta {
                custom: None,
                hashes: Default::default(),
                length: size,
            };
            if let Some(h) = sha256 {
                meta.hashes
                    .insert("sha256".into(), hash_arg("sha256", &h, 32)?);
            }
            if let Some(h) = sha512 {
                meta.hashes
                    .insert("sha512".into(), hash_arg("sha512", &h, 64)?);
            }
            if meta.hashes.is_empty() {
                return Err(Error::Usage(
                    "addhash needs --sha256 and/or --sha512".into(),
                ));
            }
            stage_targets(&ctx, &gun, "create", &target, Some(&meta), roles, publish)?;
        }
        Command::Remove {
            gun,
            target,
            roles,
            publish,
        } => {
            stage_targets(&ctx, &gun, "delete", &target, None, roles, publish)?;
        }
        Command::Publish { gun } => ctx.publish(&gun)?,
        Command::List { gun, roles } => {
            let remote = ctx.remote()?;
            let v = ctx.read(&remote, &gun)?;
            let roles = roles_or_targets(roles);
            let (targets, ignored) =
                v.targets(&roles.iter().map(String::as_str).collect::<Vec<_>>());
            for i in &ignored {
                eprintln!("warning: ignored {i}");
            }
            if ctx.json {
                print_json(&targets);
            } else if targets.is_empty() {
                println!("No targets present in this repository.");
            } else {
                println!("{:<24}{:<68}{:<16}ROLE", "NAME", "DIGEST", "SIZE (BYTES)");
                println!("{:<24}{:<68}{:<16}----", "----", "------", "------------");
                for t in targets {
                    println!("{:<24}{:<68}{:<16}{}", t.name, t.sha256, t.length, t.role);
                }
            }
        }
        Command::Lookup { gun, target, roles } => {
            let remote = ctx.remote()?;
            let v = ctx.read(&remote, &gun)?;
            let roles = roles_or_targets(roles);
            let (targets, _) = v.targets(&roles.iter().map(String::as_str).collect::<Vec<_>>());
            let t = targets.into_iter().find(|t| t.name == target).ok_or_else(|| {
                Error::Usage(format!("{gun}: no trust data for {target} (not signed, or outside its delegation's paths)"))
            })?;
            if ctx.json {
                print_json(&t);
            } else {
                println!("{} sha256:{} {} {}", t.name, t.sha256, t.length, t.role);
            }
        }
        Command::Status { gun } => {
            let changes = ctx.cache(&gun).changes()?;
            if ctx.json {
                print_json(&changes);
            } else if changes.is_empty() {
                println!("No unpublished changes for {gun}");
            } else {
                println!("Unpublished changes for {gun}:\n");
                println!(
                    "{:<4}{:<10}{:<20}{:<12}PATH",
                    "#", "ACTION", "SCOPE", "TYPE"
                );
                for (i, c) in changes.iter().enumerate() {
                    println!(
                        "{:<4}{:<10}{:<20}{:<12}{}",
                        i, c.action, c.role, c.kind, c.path
                    );
                }
            }
        }
        Command::Reset { gun, all, numbers } => {
            if !all && numbers.is_empty() {
                return Err(Error::Usage(
                    "reset needs --all or -n NUMBER (see `trustbridge status`)".into(),
                ));
            }
            let n = ctx
                .cache(&gun)
                .clear_changes(if all { None } else { Some(&numbers) })?;
            println!("Removed {n} staged change(s) for {gun}");
        }
        Command::Verify { gun, target, input } => {
            let data = match &input {
                Some(p) => std::fs::read(p).map_err(|e| Error::io(p, e))?,
                None => {
                    use std::io::Read as _;
                    let mut b = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut b)
                        .map_err(|e| Error::io("stdin", e))?;
                    b
                }
            };
            let remote = ctx.remote()?;
            let v = ctx.read(&remote, &gun)?;
            let (targets, _) = v.targets(&["targets"]);
            let t = targets
                .into_iter()
                .find(|t| t.name == target)
                .ok_or_else(|| Error::Usage(format!("{gun}: no trust data for {target}")))?;
            t.meta
                .check(&t.role, &target, &data)
                .map_err(|e| Error::Verification {
                    gun: gun.clone(),
                    source: e,
                })?;
            use std::io::Write as _;
            std::io::stdout()
                .write_all(&data)
                .map_err(|e| Error::io("stdout", e))?;
        }
        Command::Delegation(d) => delegation(&ctx, d)?,
        Command::Key(k) => key(&ctx, k)?,
        Command::Delete { gun, remote } => {
            if remote {
                ctx.remote()?.delete(&gun)?;
                println!("Deleted trust data for {gun} on {}", ctx.server);
            }
            ctx.cache(&gun).clear_metadata()?;
            ctx.cache(&gun).clear_changes(None)?;
            println!("Deleted local trust data for {gun}");
        }
        Command::Witness {
            gun,
            roles,
            publish,
        } => {
            let cache = ctx.cache(&gun);
            for r in &roles {
                cache.add_change(&Change {
                    action: "create".into(),
                    role: r.clone(),
                    kind: "witness".into(),
                    path: String::new(),
                    data: vec![],
                })?;
            }
            println!("Staged witness of {} for {gun}", roles.join(", "));
            if publish {
                ctx.publish(&gun)?;
            }
        }
        Command::Import {
            from,
            from_ca,
            guns,
        } => import_cmd(&ctx, &from, from_ca.as_deref(), &guns)?,
        Command::Migration(MigrationCmd::Status { gun }) => migration_status(&ctx, gun.as_deref())?,
        Command::VerifyBoth { image, key } => verify_both(&ctx, &image, key.as_deref())?,
    }
    Ok(())
}

fn stage_targets(
    ctx: &Ctx,
    gun: &str,
    action: &str,
    target: &str,
    meta: Option<&FileMeta>,
    roles: Vec<String>,
    publish: bool,
) -> Result<()> {
    let cache = ctx.cache(gun);
    for role in roles_or_targets(roles) {
        if !trustbridge_tuf::metadata::valid_role_name(&role) || !role.starts_with("targets") {
            return Err(Error::Usage(format!(
                "{role} is not a targets role (targets or targets/NAME)"
            )));
        }
        cache.add_change(&target_change(action, &role, target, meta))?;
        let verb = if action == "create" {
            "Addition"
        } else {
            "Removal"
        };
        println!(
            "{verb} of target \"{target}\" to repository \"{gun}\" staged for next publish ({role})."
        );
    }
    if publish {
        ctx.publish(gun)?;
    }
    Ok(())
}

fn delegation(ctx: &Ctx, d: DelegationCmd) -> Result<()> {
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
                        r["threshold"],
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

fn key(ctx: &Ctx, k: KeyCmd) -> Result<()> {
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
                    std::fs::write(&kpath, text).map_err(|e| Error::io(&kpath, e))?;
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
                    out.push_str(
                        &std::fs::read_to_string(&e.path).map_err(|x| Error::io(&e.path, x))?,
                    );
                }
            }
            match output {
                Some(p) => {
                    use std::io::Write as _;
                    use std::os::unix::fs::OpenOptionsExt as _;
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&p)
                        .map_err(|e| Error::io(&p, e))?;
                    f.write_all(out.as_bytes()).map_err(|e| Error::io(&p, e))?;
                }
                None => print!("{out}"),
            }
        }
    }
    Ok(())
}

fn import_cmd(ctx: &Ctx, from: &str, from_ca: Option<&Path>, guns: &[String]) -> Result<()> {
    let source = Remote::new(from, from_ca)?;
    let target = ctx.remote()?;
    let mut reports = Vec::new();
    for gun in guns {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} files")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(gun.clone());
        let cache = ctx.cache(gun);
        let (current, files) =
            import::collect(&source, &cache, gun, &ctx.pin(gun)?, &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })?;
        bar.finish_and_clear();
        import::store(&target, gun, &files)?;
        let sr = &current.root.signed.roles["snapshot"];
        let local_snapshot = sr
            .keyids
            .iter()
            .any(|id| ctx.keys().entry(id).ok().flatten().is_some());
        let mut versions = std::collections::BTreeMap::new();
        for (role, v, _) in &files {
            versions.insert(role.clone(), *v);
        }
        let (targets, _) = current.targets(&["targets"]);
        reports.push(import::Report {
            gun: gun.clone(),
            versions,
            files: files.len(),
            targets: targets.len(),
            server_snapshot: !local_snapshot,
            next_steps: import::next_steps(gun, target.server(), &current, local_snapshot),
        });
    }
    if ctx.json {
        print_json(&reports);
    } else {
        for r in &reports {
            let v: Vec<String> = r
                .versions
                .iter()
                .map(|(k, v)| format!("{k} v{v}"))
                .collect();
            println!(
                "{}: copied {} files ({}), {} targets, verified",
                r.gun,
                r.files,
                v.join(", "),
                r.targets
            );
            println!("  next:");
            for s in &r.next_steps {
                println!("    {s}");
            }
        }
    }
    Ok(())
}

fn migration_status(ctx: &Ctx, prefix: Option<&str>) -> Result<()> {
    let remote = ctx.remote()?;
    let q: String = url_query("prefix", prefix.unwrap_or(""));
    let body = remote
        .get(&format!("/_trustbridge/v1/status?{q}"), 64 << 20)?
        .ok_or_else(|| {
            Error::Usage(format!(
                "{} has no Cosign bridge status (is the bridge configured?)",
                ctx.server
            ))
        })?;
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| Error::Usage(format!("status: {e}")))?;
    if ctx.json {
        print_json(&v);
        return Ok(());
    }
    let (mut total, mut mirrored) = (0, 0);
    println!(
        "{:<40}{:<16}{:<20}{:<18}{:<10}UPDATED",
        "GUN", "TAG", "DIGEST", "ROLE", "STATE"
    );
    for g in v["guns"].as_array().cloned().unwrap_or_default() {
        for t in g["targets"].as_array().cloned().unwrap_or_default() {
            let s = |k: &str| t[k].as_str().unwrap_or("").to_string();
            total += 1;
            if s("state") == "mirrored" {
                mirrored += 1;
            }
            let digest = s("digest");
            println!(
                "{:<40}{:<16}{:<20}{:<18}{:<10}{}",
                s("gun"),
                s("tag"),
                &digest[..digest.len().min(19)],
                s("role"),
                s("state"),
                s("updated_at")
            );
            if let Some(e) = t["last_error"].as_str() {
                println!("    last error: {e}");
            }
        }
    }
    println!("\n{mirrored} of {total} target(s) mirrored as Cosign signatures");
    Ok(())
}

fn url_query(k: &str, v: &str) -> String {
    let enc: String = v
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect();
    format!("{k}={enc}")
}

fn verify_both(ctx: &Ctx, image: &str, key: Option<&Path>) -> Result<()> {
    let (registry, repository, tag) = cosign::split_image(image)?;
    let gun = format!("{registry}/{repository}");
    let remote = ctx.remote()?;
    let v = ctx.read(&remote, &gun)?;
    // docker's order: targets/releases first, then targets (and the rest of the tree).
    let (targets, _) = v.targets(&["targets/releases", "targets"]);
    let t = targets
        .into_iter()
        .find(|t| t.name == tag)
        .ok_or_else(|| Error::Usage(format!("{gun}: no DCT trust data for {tag}")))?;
    let pem_text = match key {
        Some(p) => std::fs::read(p).map_err(|e| Error::io(p, e))?,
        None => remote
            .get("/_trustbridge/v1/cosign.pub", 1 << 20)?
            .ok_or_else(|| {
                Error::Usage(format!("{} serves no cosign.pub; pass --key", ctx.server))
            })?,
    };
    let point = cosign::p256_point(&pem_text)?;
    let layers = cosign::layers(&registry, &repository, &t.sha256, &point)?;
    let want = format!("sha256:{}", t.sha256);
    let agree = layers.iter().any(|l| l.verified && l.signed_digest == want);
    if ctx.json {
        print_json(
            &serde_json::json!({"image": image, "dct": {"digest": want, "role": t.role}, "cosign": layers, "agree": agree}),
        );
    } else {
        println!("DCT:    {image} -> {want} (signed in {})", t.role);
        for l in &layers {
            println!(
                "Cosign: layer {} signs {} ({}) {}",
                &l.digest[..l.digest.len().min(19)],
                l.signed_digest,
                l.docker_reference,
                if l.verified {
                    "verified with the bridge key"
                } else {
                    "not signed by this key"
                }
            );
        }
    }
    if !agree {
        return Err(Error::Usage(format!(
            "{image}: no Cosign signature by this key for {want}; check `trustbridge migration status --gun {gun}`"
        )));
    }
    if !ctx.json {
        println!("OK: DCT and Cosign agree on {want}");
    }
    Ok(())
}
