//! `trustbridge import`: copy a repository's whole history from a live notary server into
//! trustbridge-server, verified before anything is stored.
//!
//! The current state is verified as any client would (TOFU on the source, or the trust
//! directory's cached root when there is one). Then every version `1..=current` of every role
//! is fetched through `GET <version>.<role>.json`: the root chain must validate version by
//! version, and each older file must carry a threshold of valid signatures from the keys
//! that some root (or, for a delegation, some version of its parent) gave that role — expiry
//! aside, since history is mostly expired. The files then go to trustbridge-server's
//! `POST /_trustbridge/v1/import/<gun>` in one request, stored byte-for-byte in one transaction.

use std::collections::BTreeMap;

use base64::Engine as _;
use trustbridge_tuf::GoTime;
use trustbridge_tuf::history::History;

use crate::cache::RepoDir;
use crate::error::{Error, Result};
use crate::remote::{MAX_DOWNLOAD, Remote};
use crate::update::{self, Pinning};

/// What was copied for one GUN, and what its owner must do next.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub gun: String,
    /// Versions copied per role.
    pub versions: BTreeMap<String, i64>,
    pub files: usize,
    pub targets: usize,
    /// Whether the snapshot key was on the old server (docker-style repositories).
    pub server_snapshot: bool,
    pub next_steps: Vec<String>,
}

fn verr(gun: &str, source: trustbridge_tuf::Error) -> Error {
    Error::verification(gun, source)
}

/// One stored version: (role, version, file bytes).
pub type File = (String, i64, Vec<u8>);

/// Fetch and verify every version of `gun` on `from`; returns the verified current state and
/// every version, oldest first.
pub fn collect(
    from: &Remote,
    cache: &RepoDir,
    gun: &str,
    pin: &Pinning,
    progress: &dyn Fn(u64, u64),
) -> Result<(update::Verified, Vec<File>)> {
    let current = update::update(from, cache, gun, pin, false)?.ok_or_else(|| Error::NotFound {
        gun: gun.into(),
        server: from.server().into(),
    })?;
    let now = GoTime::now();
    let mut wanted: Vec<(String, i64)> = vec![
        ("root".into(), current.root.signed.version),
        ("timestamp".into(), current.timestamp.signed.version),
        ("snapshot".into(), current.snapshot.signed.version),
    ];
    for (name, doc) in &current.roles {
        wanted.push((name.clone(), doc.signed.version));
    }
    let total: i64 = wanted.iter().map(|(_, v)| *v).sum();
    let mut done = 0u64;
    let mut files: Vec<File> = Vec::new();
    let mut history = History::new(gun);
    // Root first (the others verify against it), then targets shallow-first.
    History::order(&mut wanted, |(r, v)| (r.as_str(), *v));
    for (role, latest) in &wanted {
        for ver in 1..=*latest {
            let name = format!("{ver}.{role}.json");
            let Some(bytes) = from.get_meta(gun, &name, MAX_DOWNLOAD)? else {
                // Versions may have gaps (notary's init signs targets twice before the first
                // upload); the newest is checked against the verified current state below.
                done += 1;
                continue;
            };
            history
                .check(role, ver, &bytes, &now)
                .map_err(|e| verr(gun, e))?;
            files.push((role.clone(), ver, bytes));
            done += 1;
            progress(done, total as u64);
        }
    }
    // The newest of each must be exactly what the verified current state is.
    let newest = |role: &str| {
        files
            .iter()
            .rev()
            .find(|f| f.0 == role)
            .map(|f| f.2.as_slice())
    };
    let mut current_raw: Vec<(&str, &[u8])> = vec![
        ("root", current.root.raw()),
        ("timestamp", current.timestamp.raw()),
        ("snapshot", current.snapshot.raw()),
    ];
    current_raw.extend(current.roles.iter().map(|(n, d)| (n.as_str(), d.raw())));
    for (role, raw) in current_raw {
        if newest(role) != Some(raw) {
            return Err(verr(
                gun,
                trustbridge_tuf::Error::structure(
                    role,
                    "the newest version differs from the current file the server serves",
                ),
            ));
        }
    }
    Ok((current, files))
}

/// Store `files` for `gun` on trustbridge-server `to` in one request.
pub fn store(to: &Remote, gun: &str, files: &[File]) -> Result<()> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = serde_json::json!({
        "files": files.iter().map(|(role, version, data)| serde_json::json!({
            "role": role, "version": version, "data": b64.encode(data),
        })).collect::<Vec<_>>(),
    });
    to.post_json(&format!("/_trustbridge/v1/import/{gun}"), &body)?;
    Ok(())
}

/// What the owner must run after an import: the timestamp key (and a server-held snapshot
/// key) stayed in the old server's signer, so the new server cannot re-sign them until root
/// names keys it holds. The copied timestamp is served until it expires.
pub fn next_steps(
    gun: &str,
    to: &str,
    current: &update::Verified,
    snapshot_held_locally: bool,
) -> Vec<String> {
    let expires = current.timestamp.signed.expires.to_string();
    let roles = if snapshot_held_locally {
        "timestamp"
    } else {
        "timestamp snapshot"
    };
    let mut steps = vec![format!(
        "trustbridge -s {to} key rotate {gun} {roles} -r   # before {expires}, when the copied timestamp expires"
    )];
    if snapshot_held_locally {
        steps.push(format!(
            "(or with the notary CLI: notary -s {to} key rotate {gun} timestamp -r)"
        ));
    }
    steps.push(format!(
        "point clients at the new server: DOCKER_CONTENT_TRUST_SERVER={to}"
    ));
    steps
}
