//! The CLI verbs: parse what `Cli` gave, call the library, print notary-style output (or JSON).
//! Repository verbs live here; keys and delegations in `keys`, migration in `migrate`.

use std::path::PathBuf;

use trustbridge_client::cache::{Change, RepoDir, target_change};
use trustbridge_client::config::{NotaryConfig, RemoteServer};
use trustbridge_client::keystore::{KeyStore, passphrase_for};
use trustbridge_client::publish::Repo;
use trustbridge_client::remote::{Remote, Tls};
use trustbridge_client::update::{Pinning, Verified};
use trustbridge_client::{Error, Result};
use trustbridge_tuf::keyfile;
use trustbridge_tuf::metadata::FileMeta;

use crate::{Cli, Command, MigrationCmd};

mod control;
mod keys;
mod migrate;
use keys::{delegation, key};
use migrate::{import_cmd, verify_both};

pub(crate) struct Ctx {
    pub(crate) server: String,
    pub(crate) trust_dir: PathBuf,
    pub(crate) tls: Tls,
    /// Pins from the command line; they replace the config file's for every GUN.
    pub(crate) pin: Pinning,
    pub(crate) config: Option<NotaryConfig>,
    pub(crate) json: bool,
}

impl Ctx {
    pub(crate) fn remote(&self) -> Result<Remote> {
        Remote::with_tls(&self.server, &self.tls)
    }
    pub(crate) fn pin(&self, gun: &str) -> Result<Pinning> {
        match &self.config {
            Some(c) if self.pin.root_key_ids.is_empty() && self.pin.ca_ders.is_empty() => {
                c.pinning_for(gun)
            }
            _ => Ok(self.pin.clone()),
        }
    }
    pub(crate) fn keys(&self) -> KeyStore {
        KeyStore::new(&self.trust_dir)
    }
    pub(crate) fn cache(&self, gun: &str) -> RepoDir {
        RepoDir::new(&self.trust_dir, gun)
    }
    pub(crate) fn repo<'a>(&self, remote: &'a Remote, gun: &str) -> Result<Repo<'a>> {
        Ok(Repo {
            remote,
            gun: gun.into(),
            keys: self.keys(),
            cache: self.cache(gun),
            pin: self.pin(gun)?,
        })
    }
    pub(crate) fn publish(&self, gun: &str) -> Result<()> {
        let remote = self.remote()?;
        let n = self.repo(&remote, gun)?.publish()?;
        println!("Successfully published changes for repository {gun} ({n} change(s))");
        Ok(())
    }
    /// Verified state for reading; delegation warnings go to stderr, as notary's do.
    pub(crate) fn read(&self, remote: &Remote, gun: &str) -> Result<Verified> {
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

pub(crate) fn print_json(v: &impl serde::Serialize) {
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
                .map_err(|e| Error::verification(&gun, e))?;
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
            all,
            guns_from,
        } => {
            let batch = match (&guns_from, all) {
                (Some(f), _) => Some(migrate::Batch::File(f)),
                (None, true) => Some(migrate::Batch::All),
                (None, false) => None,
            };
            import_cmd(&ctx, &from, from_ca.as_deref(), &guns, batch)?
        }
        Command::Migration(MigrationCmd::Status { gun, prefix }) => {
            control::status(&ctx, gun.as_deref(), &prefix)?
        }
        Command::Migration(MigrationCmd::Usage { prefix, days }) => {
            control::usage(&ctx, &prefix, days)?
        }
        Command::Migration(MigrationCmd::ReadOnly { gun, off }) => {
            control::read_only(&ctx, &gun, !off)?
        }
        Command::Migration(MigrationCmd::Ready { gun, prefix }) => {
            control::ready(&ctx, gun.as_deref(), &prefix)?
        }
        Command::VerifyBoth {
            image,
            key,
            registry_ca,
        } => verify_both(&ctx, &image, key.as_deref(), registry_ca.as_deref())?,
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
