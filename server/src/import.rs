//! Offline import of existing Notary metadata: `DIR/<role>/<version>.json` (role may contain
//! slashes, e.g. `targets/releases/2.json`), as exported from a notary-server (GET
//! `<version>.<role>.json` for each version). The files are read here and stored by
//! [`crate::repo::Repo::import`], the path the HTTP import takes too: byte-for-byte (so they are
//! served exactly as before), the whole history verified, in one transaction under the GUN's
//! lock, with the bridge's mirror jobs.

use std::path::Path;
use std::sync::Arc;

use trustbridge_tuf::metadata::Peek;

use crate::error::{StartError, ValidationError};
use crate::storage::Update;

/// Every `<version>.json` under `dir`, as updates of the role its folder names.
pub fn read_dir(dir: &Path) -> Result<Vec<Update>, StartError> {
    let mut out = Vec::new();
    collect(dir, dir, &mut out)?;
    Ok(out)
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<Update>) -> Result<(), StartError> {
    let io = |p: &Path, e| StartError::io(p.display(), e);
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        if path.is_dir() {
            collect(base, &path, out)?;
            continue;
        }
        let Some(version) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        let role = path
            .parent()
            .and_then(|p| p.strip_prefix(base).ok())
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        let data = std::fs::read(&path).map_err(|e| io(&path, e))?;
        check_file(&role, version, &data)
            .map_err(|e| StartError::Invalid(format!("{}: {e}", path.display())))?;
        out.push(Update {
            role,
            version,
            data: Arc::from(data),
        });
    }
    Ok(())
}

/// A file to import must be a notary document of its role's `_type` with its version.
pub fn check_file(role: &str, version: i64, data: &[u8]) -> Result<(), ValidationError> {
    if !trustbridge_tuf::metadata::valid_role_name(role) {
        return Err(ValidationError::Validation(format!(
            "{role:?} is not a notary role"
        )));
    }
    let expected = Peek::type_of(role);
    let bad = || {
        ValidationError::Validation(format!(
            "{role}: expected a {expected} document with version {version}"
        ))
    };
    match Peek::of(data) {
        Ok(p) if p.is(role, version) => Ok(()),
        Ok(_) => Err(bad()),
        Err(e) => Err(ValidationError::Validation(format!("{role}: {e}"))),
    }
}

/// Oldest first, timestamps last within a version, so every insert is a newer version.
pub fn order(updates: &mut [Update]) {
    updates.sort_by(|a, b| {
        (a.version, a.role == "timestamp", &a.role).cmp(&(
            b.version,
            b.role == "timestamp",
            &b.role,
        ))
    });
}
