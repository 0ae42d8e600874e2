//! The TUF update workflow as the notary client runs it (reference §8.2): root (TOFU or
//! pinned, then every rotation validated against the previous root), timestamp → snapshot →
//! targets by the hashes each names, then delegations breadth-first with their keys and
//! thresholds from the parent and their paths restricted by the parent's. Versions must not go
//! below what the trust directory last saw (rollback protection), and nothing is cached until
//! the whole chain verifies.

use std::collections::{BTreeMap, VecDeque};

use trustbridge_tuf::metadata::FileMeta;
use trustbridge_tuf::{GoTime, Root, Signed, Snapshot, Targets, Timestamp, x509};

use crate::cache::RepoDir;
use crate::error::{Error, Result};
use crate::remote::{MAX_DOWNLOAD, MAX_TIMESTAMP, Remote};

/// Root trust beyond TOFU: the root role must list one of these key IDs (certificate or
/// canonical), and/or its certificates must be issued by one of these CA certificates.
#[derive(Clone, Debug, Default)]
pub struct Pinning {
    pub root_key_ids: Vec<String>,
    pub ca_ders: Vec<Vec<u8>>,
    /// notary's `trust_pinning.disable_tofu`: a first root must match a pin.
    pub disable_tofu: bool,
}

/// A verified repository.
pub struct Verified {
    pub gun: String,
    pub root: Signed<Root>,
    pub timestamp: Signed<Timestamp>,
    pub snapshot: Signed<Snapshot>,
    /// `targets` and every delegation that verified, in breadth-first order.
    pub roles: Vec<(String, Signed<Targets>)>,
    /// Delegations skipped (expired, below threshold, missing) — notary warns and goes on.
    pub warnings: Vec<String>,
}

/// A target as a client resolves it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Resolved {
    pub name: String,
    pub role: String,
    #[serde(skip)]
    pub meta: FileMeta,
    pub sha256: String,
    pub length: i64,
}

fn verr(gun: &str) -> impl Fn(trustbridge_tuf::Error) -> Error + '_ {
    move |source| Error::verification(gun, source)
}

/// The command that renews an expired `role`.
pub fn renew_command(gun: &str, role: &str) -> String {
    match role {
        "timestamp" | "snapshot" => format!(
            "trustbridge key rotate {gun} {role} -r (the server holds this key and should re-sign it)"
        ),
        "root" => format!("trustbridge key rotate {gun} root"),
        r => format!("trustbridge witness {gun} {r} -p"),
    }
}

fn check_expiry<T: trustbridge_tuf::metadata::Role>(
    gun: &str,
    role: &str,
    doc: &Signed<T>,
    now: &GoTime,
) -> Result<()> {
    if doc.signed.expires().is_before(now) {
        return Err(Error::Expired {
            gun: gun.into(),
            role: role.into(),
            expires: doc.signed.expires().to_string(),
            fix: renew_command(gun, role),
        });
    }
    Ok(())
}

fn cached<T: trustbridge_tuf::metadata::Role>(cache: &RepoDir, role: &str) -> Option<Signed<T>> {
    let bytes = cache.read(role).ok()??;
    Signed::from_bytes(role, &bytes).ok()
}

/// Check the pinned root key IDs / CA against `root`'s root role.
fn check_pinning(gun: &str, root: &Signed<Root>, pin: &Pinning) -> Result<()> {
    let role = &root.signed.roles["root"];
    if !pin.root_key_ids.is_empty() {
        let listed: Vec<String> = role
            .keyids
            .iter()
            .flat_map(|id| {
                let canon = root.signed.keys.get(id).and_then(|k| k.canonical_id().ok());
                std::iter::once(id.clone()).chain(canon)
            })
            .collect();
        if !pin.root_key_ids.iter().any(|p| listed.contains(p)) {
            return Err(Error::verification(
                gun,
                trustbridge_tuf::Error::RootInvalid {
                    gun: gun.into(),
                    reason: format!(
                        "none of its root keys ({}) is the pinned key",
                        role.keyids.join(", ")
                    ),
                },
            ));
        }
    }
    if !pin.ca_ders.is_empty() {
        use x509_parser::prelude::*;
        let issued = role.keyids.iter().any(|id| {
            let Some(k) = root.signed.keys.get(id) else {
                return false;
            };
            let Ok(ders) = trustbridge_tuf::x509::certificate_ders(&k.public) else {
                return false;
            };
            let Some(leaf) = ders.first() else {
                return false;
            };
            let Ok((_, leaf)) = X509Certificate::from_der(leaf) else {
                return false;
            };
            pin.ca_ders.iter().any(|ca| {
                X509Certificate::from_der(ca)
                    .is_ok_and(|(_, ca)| leaf.verify_signature(Some(ca.public_key())).is_ok())
            })
        });
        if !issued {
            return Err(Error::verification(
                gun,
                trustbridge_tuf::Error::RootInvalid {
                    gun: gun.into(),
                    reason: "no root certificate is issued by the pinned CA".into(),
                },
            ));
        }
    }
    Ok(())
}

/// The trusted root: the cached one, moved forward through every version the server has.
/// None when the server has no repository.
pub fn trusted_root(
    remote: &Remote,
    cache: &RepoDir,
    gun: &str,
    pin: &Pinning,
    now: &GoTime,
) -> Result<Option<Signed<Root>>> {
    let v = verr(gun);
    let Some(bytes) = remote.get_meta(gun, "root.json", MAX_DOWNLOAD)? else {
        return Ok(None);
    };
    let latest: Signed<Root> = Signed::from_bytes("root", &bytes).map_err(&v)?;
    let prior: Option<Signed<Root>> = cached(cache, "root");
    let root = match prior {
        None => {
            if pin.disable_tofu && pin.root_key_ids.is_empty() && pin.ca_ders.is_empty() {
                return Err(Error::Usage(format!(
                    "{gun}: trust on first use is disabled and no root is pinned; pin one with --pin-root-key ID or --pin-ca FILE"
                )));
            }
            // Trust on first use (or the pin): the root must be valid and self-signed.
            x509::validate_root(gun, &latest, None, now).map_err(&v)?;
            latest
        }
        Some(prior) => {
            latest
                .check_version("root", prior.signed.version)
                .map_err(&v)?;
            // Walk every version in between, each signed by its predecessor's root keys.
            let mut prev = prior;
            for ver in prev.signed.version + 1..latest.signed.version {
                let b = remote
                    .get_meta(gun, &format!("{ver}.root.json"), MAX_DOWNLOAD)?
                    .ok_or_else(|| {
                        v(trustbridge_tuf::Error::RootRotation {
                            gun: gun.into(),
                            reason: format!("the server has no root version {ver}"),
                        })
                    })?;
                let step: Signed<Root> = Signed::from_bytes("root", &b).map_err(&v)?;
                if step.signed.version != ver {
                    return Err(v(trustbridge_tuf::Error::structure(
                        "root",
                        format!("{ver}.root.json has version {}", step.signed.version),
                    )));
                }
                x509::validate_root(gun, &step, Some(&prev), now).map_err(&v)?;
                prev = step;
            }
            if prev.raw() != latest.raw() {
                x509::validate_root(gun, &latest, Some(&prev), now).map_err(&v)?;
            }
            latest
        }
    };
    check_pinning(gun, &root, pin)?;
    check_expiry(gun, "root", &root, now)?;
    Ok(Some(root))
}

/// Fetch `role` by the hash `meta` names (using the cached file when it matches).
fn fetch_by_hash(
    remote: &Remote,
    cache: &RepoDir,
    gun: &str,
    role: &str,
    meta: &FileMeta,
) -> Result<Vec<u8>> {
    if let Some(c) = cache.read(role)?
        && meta.check(role, role, &c).is_ok()
    {
        return Ok(c);
    }
    let sha = meta.sha256().map(hex::encode).ok_or_else(|| {
        verr(gun)(trustbridge_tuf::Error::NoHashes {
            role: role.into(),
            name: role.into(),
        })
    })?;
    let limit = if meta.length > 0 {
        meta.length as u64
    } else {
        MAX_DOWNLOAD
    };
    let bytes = remote
        .get_meta(gun, &format!("{role}.{sha}.json"), limit)?
        .ok_or_else(|| {
            verr(gun)(trustbridge_tuf::Error::MissingMeta {
                role: role.into(),
                missing: format!("{role}.{sha}.json on the server"),
            })
        })?;
    meta.check(role, role, &bytes).map_err(verr(gun))?;
    Ok(bytes)
}

/// Download and verify `gun`. With `for_write`, expired targets roles are accepted (their
/// owner is about to re-sign them); signatures, hashes and versions are checked all the same.
pub fn update(
    remote: &Remote,
    cache: &RepoDir,
    gun: &str,
    pin: &Pinning,
    for_write: bool,
) -> Result<Option<Verified>> {
    let now = GoTime::now();
    let v = verr(gun);
    let Some(root) = trusted_root(remote, cache, gun, pin, &now)? else {
        return Ok(None);
    };
    let r = &root.signed;
    let floor = |role: &str| -> i64 {
        cache
            .read(role)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|j| j["signed"]["version"].as_i64())
            .unwrap_or(0)
    };

    let ts_bytes = remote
        .get_meta(gun, "timestamp.json", MAX_TIMESTAMP)?
        .ok_or_else(|| {
            v(trustbridge_tuf::Error::MissingMeta {
                role: "timestamp".into(),
                missing: "timestamp.json on the server".into(),
            })
        })?;
    let timestamp: Signed<Timestamp> = Signed::from_bytes("timestamp", &ts_bytes).map_err(&v)?;
    let tr = &r.roles["timestamp"];
    timestamp
        .verify(
            "timestamp",
            &r.keys,
            &tr.keyids,
            tr.threshold,
            floor("timestamp"),
            true,
        )
        .map_err(&v)?;
    check_expiry(gun, "timestamp", &timestamp, &now)?;

    let sn_meta = timestamp
        .signed
        .meta
        .get("snapshot")
        .cloned()
        .ok_or_else(|| {
            v(trustbridge_tuf::Error::MissingMeta {
                role: "timestamp".into(),
                missing: "snapshot".into(),
            })
        })?;
    let sn_bytes = fetch_by_hash(remote, cache, gun, "snapshot", &sn_meta)?;
    let snapshot: Signed<Snapshot> = Signed::from_bytes("snapshot", &sn_bytes).map_err(&v)?;
    let sr = &r.roles["snapshot"];
    snapshot
        .verify(
            "snapshot",
            &r.keys,
            &sr.keyids,
            sr.threshold,
            floor("snapshot"),
            true,
        )
        .map_err(&v)?;
    check_expiry(gun, "snapshot", &snapshot, &now)?;
    // The root we trust must be the one the snapshot names.
    if let Some(rm) = snapshot.signed.meta.get("root") {
        rm.check("snapshot", "root", root.raw()).map_err(&v)?;
    }

    let mut roles: Vec<(String, Signed<Targets>)> = Vec::new();
    let mut warnings = Vec::new();
    let tg_meta = snapshot
        .signed
        .meta
        .get("targets")
        .cloned()
        .ok_or_else(|| {
            v(trustbridge_tuf::Error::MissingMeta {
                role: "snapshot".into(),
                missing: "targets".into(),
            })
        })?;
    let tg_bytes = fetch_by_hash(remote, cache, gun, "targets", &tg_meta)?;
    let targets: Signed<Targets> = Signed::from_bytes("targets", &tg_bytes).map_err(&v)?;
    let trr = &r.roles["targets"];
    targets
        .verify(
            "targets",
            &r.keys,
            &trr.keyids,
            trr.threshold,
            floor("targets"),
            true,
        )
        .map_err(&v)?;
    if !for_write {
        check_expiry(gun, "targets", &targets, &now)?;
    }
    roles.push(("targets".into(), targets));

    // Delegations, breadth-first: keys and threshold from the parent; paths intersected.
    let mut queue: VecDeque<usize> = VecDeque::from([0]);
    while let Some(i) = queue.pop_front() {
        let parent = roles[i].1.signed.clone();
        for d in &parent.delegations.roles {
            let Some(meta) = snapshot.signed.meta.get(&d.name) else {
                continue; // never published: notary skips it
            };
            let loaded = fetch_by_hash(remote, cache, gun, &d.name, meta).and_then(|b| {
                let doc: Signed<Targets> = Signed::from_bytes(&d.name, &b).map_err(&v)?;
                doc.verify(
                    &d.name,
                    &parent.delegations.keys,
                    &d.keyids,
                    d.threshold,
                    floor(&d.name),
                    true,
                )
                .map_err(&v)?;
                if !for_write {
                    check_expiry(gun, &d.name, &doc, &now)?;
                }
                Ok(doc)
            });
            match loaded {
                Ok(doc) => {
                    roles.push((d.name.clone(), doc));
                    queue.push_back(roles.len() - 1);
                }
                Err(e @ (Error::Unreachable { .. } | Error::Tls { .. })) => return Err(e),
                Err(e) => warnings.push(format!("skipping delegation {}: {e}", d.name)),
            }
        }
    }

    // Everything verified: now (and only now) the trust directory moves forward.
    cache.write("root", root.raw())?;
    cache.write("timestamp", timestamp.raw())?;
    cache.write("snapshot", snapshot.raw())?;
    for (name, doc) in &roles {
        cache.write(name, doc.raw())?;
    }
    Ok(Some(Verified {
        gun: gun.into(),
        root,
        timestamp,
        snapshot,
        roles,
        warnings,
    }))
}

impl Verified {
    pub fn role(&self, name: &str) -> Option<&Signed<Targets>> {
        self.roles.iter().find(|(n, _)| n == name).map(|(_, d)| d)
    }

    /// Every target a client would accept, first role wins, walking `start` and its
    /// delegations breadth-first; a delegated target outside its delegation's paths is
    /// ignored (and reported in `ignored`).
    pub fn targets(&self, start: &[&str]) -> (Vec<Resolved>, Vec<String>) {
        let roles: BTreeMap<String, &Targets> = self
            .roles
            .iter()
            .map(|(n, d)| (n.clone(), &d.signed))
            .collect();
        let (found, ignored) = trustbridge_tuf::resolve::resolve(&roles, start);
        let out = found
            .into_iter()
            .map(|r| Resolved {
                sha256: r.meta.sha256().map(hex::encode).unwrap_or_default(),
                length: r.meta.length,
                name: r.name,
                role: r.role,
                meta: r.meta,
            })
            .collect();
        (out, ignored)
    }
}
