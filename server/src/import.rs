//! Offline import of existing Notary metadata into storage: `DIR/<role>/<version>.json`
//! (role may contain slashes, e.g. `targets/releases/2.json`), as exported from a notary-server
//! (GET `<version>.<role>.json` for each version). Files are stored byte-for-byte so they are
//! served exactly as before; they are checked for shape (envelope, `_type` matching the role,
//! version matching the file name) but not re-validated, because they come from a server that
//! already validated them.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, StartError};
use crate::storage::{MetaStore, Update};

fn collect(base: &Path, dir: &Path, out: &mut Vec<Update>) -> Result<(), Error> {
    let bad =
        |p: &Path, why: String| Error::from(StartError::Invalid(format!("{}: {why}", p.display())));
    for entry in std::fs::read_dir(dir).map_err(|e| bad(dir, e.to_string()))? {
        let path = entry.map_err(|e| bad(dir, e.to_string()))?.path();
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
        let data = std::fs::read(&path).map_err(|e| bad(&path, e.to_string()))?;
        check_file(&role, version, &data).map_err(|why| bad(&path, why))?;
        out.push(Update {
            role,
            version,
            data: Arc::from(data),
        });
    }
    Ok(())
}

/// A file to import must be a notary document of its role's `_type` with its version.
pub fn check_file(role: &str, version: i64, data: &[u8]) -> Result<(), String> {
    if !trustbridge_tuf::metadata::valid_role_name(role) {
        return Err(format!("{role:?} is not a notary role"));
    }
    let v: serde_json::Value = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    let expected = match role {
        "root" => "Root",
        "snapshot" => "Snapshot",
        "timestamp" => "Timestamp",
        _ => "Targets",
    };
    if v["signed"]["_type"] != expected || v["signed"]["version"] != version {
        return Err(format!(
            "{role}: expected a {expected} document with version {version}"
        ));
    }
    Ok(())
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

/// Store every version under `dir` for `gun`; returns how many files were stored.
pub fn import_versions(store: &dyn MetaStore, gun: &str, dir: &Path) -> Result<usize, Error> {
    let mut updates = Vec::new();
    collect(dir, dir, &mut updates)?;
    order(&mut updates);
    for u in &updates {
        store.update_many(gun, std::slice::from_ref(u), &[])?;
    }
    Ok(updates.len())
}
