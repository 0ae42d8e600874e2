//! Private keys in the trust directory exactly as notary and `docker trust` keep them
//! (reference §2.9, §8.4): `<trust_dir>/private/<canonical key ID>.key`, mode 0600 in a 0700
//! directory, one encrypted PKCS#8 PEM block with sorted `gun:`/`role:` headers. Files written
//! here open in notary 0.7.0 and docker CLI 28, and theirs open here.
//!
//! Passphrases come from notary's variables (`NOTARY_<ROLE>_PASSPHRASE`, delegations and docker
//! signer keys using `NOTARY_DELEGATION_PASSPHRASE`), then docker's
//! (`DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE` for root, `..._REPOSITORY_PASSPHRASE` for the rest),
//! then a prompt on the terminal.

use std::path::{Path, PathBuf};

use trustbridge_tuf::{PrivateKey, keyfile};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A key file's identity, read from its name and PEM headers without decrypting it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KeyEntry {
    pub id: String,
    pub role: String,
    pub gun: Option<String>,
    #[serde(skip)]
    pub path: PathBuf,
}

pub struct KeyStore {
    dir: PathBuf,
}

/// The variables consulted for `role`'s passphrase, in order.
pub fn passphrase_envs(role: &str) -> [&'static str; 2] {
    match role {
        "root" => [
            "NOTARY_ROOT_PASSPHRASE",
            "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE",
        ],
        "targets" => [
            "NOTARY_TARGETS_PASSPHRASE",
            "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
        ],
        "snapshot" => [
            "NOTARY_SNAPSHOT_PASSPHRASE",
            "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
        ],
        _ => [
            "NOTARY_DELEGATION_PASSPHRASE",
            "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
        ],
    }
}

/// The passphrase for `role`: from the environment, else asked on the terminal.
pub fn passphrase_for(role: &str, purpose: &str) -> Result<Zeroizing<String>> {
    let envs = passphrase_envs(role);
    for e in envs {
        if let Ok(v) = std::env::var(e) {
            return Ok(Zeroizing::new(v));
        }
    }
    let tty = std::fs::OpenOptions::new().read(true).open("/dev/tty");
    if tty.is_err() {
        return Err(Error::NoPassphrase {
            role: role.into(),
            env: envs[0].into(),
        });
    }
    rpassword::prompt_password(format!("Enter passphrase for {role} key ({purpose}): "))
        .map(Zeroizing::new)
        .map_err(|_| Error::NoPassphrase {
            role: role.into(),
            env: envs[0].into(),
        })
}

fn headers_of(text: &[u8]) -> Option<(String, Option<String>)> {
    let p = pem::parse(text).ok()?;
    let role = p.headers().get("role")?.to_string();
    Some((role, p.headers().get("gun").map(str::to_string)))
}

impl KeyStore {
    pub fn new(trust_dir: &Path) -> KeyStore {
        KeyStore {
            dir: trust_dir.join("private"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every key file: `private/<id>.key` (notary ≥0.4's flat layout).
    pub fn list(&self) -> Result<Vec<KeyEntry>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        for entry in rd.flatten() {
            let path = entry.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".key"))
            else {
                continue;
            };
            let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            if let Some((role, gun)) = headers_of(&text) {
                out.push(KeyEntry {
                    id: id.to_string(),
                    role,
                    gun,
                    path,
                });
            }
        }
        out.sort_by(|a, b| (&a.role, &a.gun, &a.id).cmp(&(&b.role, &b.gun, &b.id)));
        Ok(out)
    }

    pub fn entry(&self, id: &str) -> Result<Option<KeyEntry>> {
        Ok(self.list()?.into_iter().find(|e| e.id == id))
    }

    /// A key of `role` (targets/snapshot: for `gun`), if one is here.
    pub fn find(&self, role: &str, gun: Option<&str>) -> Result<Option<KeyEntry>> {
        Ok(self
            .list()?
            .into_iter()
            .find(|e| e.role == role && (gun.is_none() || e.gun.as_deref() == gun)))
    }

    /// Decrypt key `id`, asking for the passphrase of its role.
    pub fn load(&self, id: &str) -> Result<PrivateKey> {
        let entry = self
            .entry(id)?
            .ok_or_else(|| Error::Usage(format!("key {id} is not in {}", self.dir.display())))?;
        let text = std::fs::read(&entry.path).map_err(|e| Error::io(&entry.path, e))?;
        let env = passphrase_envs(&entry.role)[0];
        // Unencrypted files (`PRIVATE KEY`) need no passphrase.
        let pass = if text.starts_with(b"-----BEGIN PRIVATE KEY") {
            Zeroizing::new(String::new())
        } else {
            passphrase_for(&entry.role, &format!("ID {}", &id[..id.len().min(7)]))?
        };
        keyfile::decode(&text, &pass)
            .map(|kf| kf.key)
            .map_err(|e| match e {
                trustbridge_tuf::Error::WrongPassphrase => Error::WrongPassphrase {
                    role: entry.role.clone(),
                    key_id: id.into(),
                    env: env.into(),
                },
                e => e.into(),
            })
    }

    /// Write `key` for `role` (and `gun` for targets/snapshot/timestamp), encrypted under the
    /// role's passphrase; returns its canonical key ID (the file name).
    pub fn save(&self, key: &PrivateKey, role: &str, gun: Option<&str>) -> Result<String> {
        let pass = passphrase_for(role, "new key")?;
        self.save_with(key, role, gun, &pass)
    }

    pub fn save_with(
        &self,
        key: &PrivateKey,
        role: &str,
        gun: Option<&str>,
        pass: &str,
    ) -> Result<String> {
        use std::io::Write as _;
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| Error::io(&self.dir, e))?;
        let id = key.id();
        let text = keyfile::encode(key, role, gun, pass)?;
        let path = self.dir.join(format!("{id}.key"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| Error::io(&path, e))?;
        Ok(id)
    }

    /// Remove key `id`'s file.
    pub fn remove(&self, id: &str) -> Result<()> {
        let path = self.dir.join(format!("{id}.key"));
        std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))
    }
}
