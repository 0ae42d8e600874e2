//! A repository's whole history, checked version by version: what an import from another
//! notary server must prove before anything is stored (the client checks it after fetching,
//! the server again before storing and mirroring).
//!
//! The root chain must validate version by version (each new root signed by a threshold of the
//! previous root's keys and its own; the first is trusted on first use). Every other version
//! must carry a threshold of valid signatures from the keys that some root version (or, for a
//! delegation, some version of its parent) gave that role. Expiry is not checked: history is
//! mostly expired; the current state is checked as a client would, elsewhere.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::gotime::GoTime;
use crate::metadata::{Role, Root, Signed, Snapshot, Targets, Timestamp};
use crate::x509;

/// The versions seen so far of one GUN.
pub struct History {
    gun: String,
    roots: Vec<Signed<Root>>,
    by_role: BTreeMap<String, Vec<Signed<Targets>>>,
}

/// Whether some root version gives `base` a threshold of valid signatures on `doc`.
fn by_some_root<T: Role>(roots: &[Signed<Root>], base: &str, doc: &Signed<T>) -> Result<(), Error> {
    let mut last = None;
    for r in roots.iter().rev() {
        let Some(rr) = r.signed.roles.get(base) else {
            continue;
        };
        match doc.verify_signatures(base, &r.signed.keys, &rr.keyids, rr.threshold) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(Error::MissingMeta {
        role: base.into(),
        missing: "a root".into(),
    }))
}

impl History {
    pub fn new(gun: &str) -> Self {
        History {
            gun: gun.into(),
            roots: Vec::new(),
            by_role: BTreeMap::new(),
        }
    }

    /// The order in which files can be checked: roots first (by version), then the other
    /// roles shallow-first (a delegation after its parent), each by version.
    pub fn order<F>(files: &mut [F], key: impl Fn(&F) -> (&str, i64)) {
        files.sort_by(|a, b| {
            let (ra, va) = key(a);
            let (rb, vb) = key(b);
            let rank = |r: &str| (r != "root", r.matches('/').count(), r.to_string());
            (rank(ra), va).cmp(&(rank(rb), vb))
        });
    }

    /// Check version `ver` of `role` (its file `bytes`), in [`History::order`].
    pub fn check(&mut self, role: &str, ver: i64, bytes: &[u8], now: &GoTime) -> Result<(), Error> {
        let wrong_version =
            |found: i64| Error::structure(role, format!("{ver}.{role}.json has version {found}"));
        match role {
            "root" => {
                let doc: Signed<Root> = Signed::from_bytes(role, bytes)?;
                if doc.signed.version != ver {
                    return Err(wrong_version(doc.signed.version));
                }
                // Historical roots may hold certificates expired since: what counts here is
                // the chain of signatures.
                x509::validate_root(&self.gun, &doc, self.roots.last(), now).or_else(
                    |e| match e {
                        Error::RootInvalid { .. } => {
                            let rr = doc
                                .signed
                                .roles
                                .get("root")
                                .ok_or_else(|| Error::structure("root", "no root role"))?;
                            doc.verify_signatures(
                                "root",
                                &doc.signed.keys,
                                &rr.keyids,
                                rr.threshold,
                            )
                            .map(|_| ())
                        }
                        e => Err(e),
                    },
                )?;
                self.roots.push(doc);
            }
            "timestamp" => {
                let doc: Signed<Timestamp> = Signed::from_bytes(role, bytes)?;
                if doc.signed.version != ver {
                    return Err(wrong_version(doc.signed.version));
                }
                by_some_root(&self.roots, role, &doc)?;
            }
            "snapshot" => {
                let doc: Signed<Snapshot> = Signed::from_bytes(role, bytes)?;
                if doc.signed.version != ver {
                    return Err(wrong_version(doc.signed.version));
                }
                by_some_root(&self.roots, role, &doc)?;
            }
            _ => {
                let doc: Signed<Targets> = Signed::from_bytes(role, bytes)?;
                if doc.signed.version != ver {
                    return Err(wrong_version(doc.signed.version));
                }
                if role == "targets" {
                    by_some_root(&self.roots, role, &doc)?;
                } else {
                    let parent = role.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                    let parents = self.by_role.get(parent).map(Vec::as_slice).unwrap_or(&[]);
                    let ok = parents.iter().rev().any(|p| {
                        p.signed.delegations.roles.iter().any(|d| {
                            d.name == role
                                && doc
                                    .verify_signatures(
                                        role,
                                        &p.signed.delegations.keys,
                                        &d.keyids,
                                        d.threshold,
                                    )
                                    .is_ok()
                        })
                    });
                    if !ok {
                        return Err(Error::Threshold {
                            role: role.into(),
                            valid: 0,
                            required: 1,
                            tried: doc
                                .signatures
                                .iter()
                                .map(|s| s.keyid.clone())
                                .collect::<Vec<_>>()
                                .join(","),
                        });
                    }
                }
                self.by_role.entry(role.to_string()).or_default().push(doc);
            }
        }
        Ok(())
    }
}
