//! The trust directory's per-repository state (reference §8.4): the last verified metadata in
//! `tuf/<gun>/metadata/<role>.json` (exact server bytes; delegations as subdirectories), which
//! is both the TOFU anchor and the rollback floor, and the staged changes in
//! `tuf/<gun>/changelist/<20-digit unix nanos>_<id>.change`, in notary's `TUFChange` JSON so
//! that notary and trustbridge can share a trust directory.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub struct RepoDir {
    dir: PathBuf,
}

/// notary's `changelist.TUFChange`: `data` is Go `[]byte`, base64 in JSON.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Change {
    pub action: String,
    pub role: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
    #[serde(with = "b64", default)]
    pub data: Vec<u8>,
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if b.is_empty() {
            return s.serialize_none();
        }
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
    }
    // Write-then-rename: a crash never leaves half a metadata file as the trust anchor.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

impl RepoDir {
    pub fn new(trust_dir: &Path, gun: &str) -> RepoDir {
        RepoDir {
            dir: trust_dir.join("tuf").join(gun),
        }
    }

    fn meta_path(&self, role: &str) -> PathBuf {
        self.dir.join("metadata").join(format!("{role}.json"))
    }

    pub fn read(&self, role: &str) -> Result<Option<Vec<u8>>> {
        let p = self.meta_path(role);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(p, e)),
        }
    }

    pub fn write(&self, role: &str, data: &[u8]) -> Result<()> {
        write_file(&self.meta_path(role), data)
    }

    /// Forget the cached metadata (after `delete`): the next read trusts the server's root anew.
    pub fn clear_metadata(&self) -> Result<()> {
        let p = self.dir.join("metadata");
        match std::fs::remove_dir_all(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(p, e)),
            _ => Ok(()),
        }
    }

    fn changelist_dir(&self) -> PathBuf {
        self.dir.join("changelist")
    }

    /// Stage a change (notary's file name: 20-digit unix nanos, `_`, a random ID).
    pub fn add_change(&self, c: &Change) -> Result<()> {
        use ring::rand::SecureRandom as _;
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let mut id = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut id)
            .map_err(|_| Error::Usage("no randomness".into()))?;
        let name = format!("{nanos:020}_{}.change", hex::encode(id));
        let json = serde_json::to_vec(c).expect("JSON");
        write_file(&self.changelist_dir().join(name), &json)
    }

    /// The change files, oldest first (their names start with the staging time).
    fn change_files(&self) -> Result<Vec<PathBuf>> {
        let dir = self.changelist_dir();
        let mut names: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "change"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Error::io(dir, e)),
        };
        names.sort();
        Ok(names)
    }

    /// Staged changes, oldest first.
    pub fn changes(&self) -> Result<Vec<Change>> {
        self.change_files()?
            .iter()
            .map(|p| {
                let raw = std::fs::read(p).map_err(|e| Error::io(p, e))?;
                serde_json::from_slice(&raw)
                    .map_err(|e| Error::Usage(format!("{}: not a change file: {e}", p.display())))
            })
            .collect()
    }

    /// Drop staged changes: all, or those at `indexes` (as `status` numbers them).
    pub fn clear_changes(&self, indexes: Option<&[usize]>) -> Result<usize> {
        let names = self.change_files()?;
        let mut n = 0;
        for (i, p) in names.iter().enumerate() {
            if indexes.is_none_or(|ix| ix.contains(&i)) {
                std::fs::remove_file(p).map_err(|e| Error::io(p, e))?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The JSON notary stores as a target change's `data`: `data.FileMeta`.
pub fn target_change(
    action: &str,
    role: &str,
    name: &str,
    meta: Option<&trustbridge_tuf::metadata::FileMeta>,
) -> Change {
    Change {
        action: action.into(),
        role: role.into(),
        kind: "target".into(),
        path: name.into(),
        data: meta
            .map(|m| serde_json::to_vec(m).expect("JSON"))
            .unwrap_or_default(),
    }
}

/// Decode base64 from a CLI argument (`addhash --sha256` takes hex; notary's data is base64).
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
