//! The write side, as the notary client does it (reference §8.3): `init` makes the root
//! certificate and the targets (and, unless the server manages it, snapshot) keys; `publish`
//! applies the changelist to the verified repository, re-signs what changed at version+1, and
//! uploads root (initial, changed, or within 6 months of expiry), targets, dirty delegations and
//! the snapshot when this client holds its key — the server always makes the timestamp.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use trustbridge_tuf::metadata::{DelegationRole, FileMeta, expiry};
use trustbridge_tuf::{
    GoTime, KeyType, PrivateKey, PublicKey, Root, Signed, Snapshot, Targets, x509,
};

use crate::cache::{Change, RepoDir};
use crate::error::{Error, Result};
use crate::keystore::KeyStore;
use crate::remote::Remote;
use crate::update::{self, Pinning, Verified};

/// A repository handle: one GUN on one server, with the trust directory's keys and cache.
pub struct Repo<'a> {
    pub remote: &'a Remote,
    pub gun: String,
    pub keys: KeyStore,
    pub cache: RepoDir,
    pub pin: Pinning,
}

/// notary's `changelist.TUFDelegation`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DelegationChange {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub new_name: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub threshold: i64,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub add_keys: Vec<PublicKey>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub remove_keys: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub add_paths: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub remove_paths: Vec<String>,
    #[serde(
        default,
        rename = "clear_paths",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub clear_all_paths: bool,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn nullable<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn parent_of(role: &str) -> &str {
    role.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

/// The state being edited: role bodies and which ones must be re-signed.
pub(crate) struct Draft {
    pub root: Signed<Root>,
    pub root_dirty: bool,
    pub targets: BTreeMap<String, Targets>,
    pub dirty: BTreeSet<String>,
    /// The snapshot meta already published (delegations not re-signed keep their entries).
    pub meta: BTreeMap<String, FileMeta>,
    pub snapshot_version: i64,
}

fn empty_targets() -> Targets {
    Targets {
        type_: "Targets".into(),
        delegations: Default::default(),
        expires: GoTime::now().plus_years(expiry::TARGETS_YEARS),
        targets: BTreeMap::new(),
        version: 0,
    }
}

impl Draft {
    pub fn from_verified(v: &Verified) -> Draft {
        Draft {
            root: v.root.clone(),
            root_dirty: false,
            targets: v
                .roles
                .iter()
                .map(|(n, d)| (n.clone(), d.signed.clone()))
                .collect(),
            dirty: BTreeSet::new(),
            meta: v.snapshot.signed.meta.clone(),
            snapshot_version: v.snapshot.signed.version,
        }
    }

    fn apply(&mut self, c: &Change) -> Result<()> {
        let bad =
            |why: String| Error::Usage(format!("change {} {} {}: {why}", c.action, c.role, c.path));
        match (c.kind.as_str(), c.action.as_str()) {
            ("target", "create") => {
                let meta: FileMeta =
                    serde_json::from_slice(&c.data).map_err(|e| bad(e.to_string()))?;
                // A delegation listed by its parent but never published starts empty.
                let listed = self
                    .targets
                    .get(parent_of(&c.role))
                    .is_some_and(|p| p.delegations.roles.iter().any(|d| d.name == c.role));
                if listed {
                    self.targets
                        .entry(c.role.clone())
                        .or_insert_with(empty_targets);
                }
                let t = self.targets.get_mut(&c.role).ok_or_else(|| {
                    bad(format!(
                        "role {} does not exist; add the delegation first",
                        c.role
                    ))
                })?;
                t.targets.insert(c.path.clone(), meta);
                self.dirty.insert(c.role.clone());
            }
            ("target", "delete") => {
                if let Some(t) = self.targets.get_mut(&c.role) {
                    t.targets.remove(&c.path);
                    self.dirty.insert(c.role.clone());
                }
            }
            ("delegation", action) => {
                let parent = parent_of(&c.role).to_string();
                let p = self
                    .targets
                    .get_mut(&parent)
                    .ok_or_else(|| bad(format!("parent role {parent} does not exist")))?;
                let pos = p.delegations.roles.iter().position(|d| d.name == c.role);
                match action {
                    "delete" => {
                        if let Some(i) = pos {
                            p.delegations.roles.remove(i);
                        }
                        self.targets.remove(&c.role);
                        self.meta.remove(&c.role);
                    }
                    "create" | "update" => {
                        let td: DelegationChange =
                            serde_json::from_slice(&c.data).map_err(|e| bad(e.to_string()))?;
                        let i = match pos {
                            Some(i) => i,
                            None => {
                                p.delegations.roles.push(DelegationRole {
                                    keyids: vec![],
                                    name: c.role.clone(),
                                    paths: vec![],
                                    path_hash_prefixes: None,
                                    threshold: 1,
                                });
                                p.delegations.roles.len() - 1
                            }
                        };
                        let keys = p.delegations.keys.clone();
                        let d = &mut p.delegations.roles[i];
                        for k in &td.add_keys {
                            p.delegations.keys.insert(k.id(), k.clone());
                            if !d.keyids.contains(&k.id()) {
                                d.keyids.push(k.id());
                            }
                        }
                        // remove_keys are canonical IDs; roles list TUF IDs.
                        d.keyids.retain(|id| {
                            let canon = keys.get(id).and_then(|k| k.canonical_id().ok());
                            !td.remove_keys.contains(id)
                                && !canon.is_some_and(|c| td.remove_keys.contains(&c))
                        });
                        if td.threshold > 0 {
                            d.threshold = td.threshold;
                        }
                        if td.clear_all_paths {
                            d.paths.clear();
                        }
                        d.paths.retain(|x| !td.remove_paths.contains(x));
                        for x in &td.add_paths {
                            if !d.paths.contains(x) {
                                d.paths.push(x.clone());
                            }
                        }
                        self.targets
                            .entry(c.role.clone())
                            .or_insert_with(empty_targets);
                    }
                    other => return Err(bad(format!("unknown action {other}"))),
                }
                // Keys no role uses any more leave delegations.keys, as notary does.
                let p = self.targets.get_mut(&parent).expect("parent");
                let used: BTreeSet<String> = p
                    .delegations
                    .roles
                    .iter()
                    .flat_map(|d| d.keyids.clone())
                    .collect();
                p.delegations.keys.retain(|id, _| used.contains(id));
                self.dirty.insert(parent);
            }
            ("witness", _) => {
                if !self.targets.contains_key(&c.role) {
                    return Err(bad("no such role to witness".into()));
                }
                self.dirty.insert(c.role.clone());
            }
            (kind, action) => return Err(bad(format!("unsupported change {kind}/{action}"))),
        }
        Ok(())
    }
}

impl Repo<'_> {
    /// The current verified state (None: not on the server).
    pub fn update(&self, for_write: bool) -> Result<Option<Verified>> {
        update::update(self.remote, &self.cache, &self.gun, &self.pin, for_write)
    }

    /// The private key for a TUF key ID (root keys are listed under their certificate ID and
    /// stored under their canonical ID).
    pub fn private_for(&self, tuf_id: &str, key: Option<&PublicKey>) -> Result<Option<PrivateKey>> {
        let canon = key.and_then(|k| k.canonical_id().ok());
        for id in [Some(tuf_id.to_string()), canon].into_iter().flatten() {
            if self.keys.entry(&id)?.is_some() {
                return Ok(Some(self.keys.load(&id)?));
            }
        }
        Ok(None)
    }

    /// Keys held here for `keyids` (as (TUF ID, key) pairs).
    fn held(
        &self,
        keyids: &[String],
        keys: &BTreeMap<String, PublicKey>,
    ) -> Result<Vec<(String, PrivateKey)>> {
        let mut out = Vec::new();
        for id in keyids {
            if let Some(k) = self.private_for(id, keys.get(id))? {
                out.push((id.clone(), k));
            }
        }
        Ok(out)
    }

    fn need(
        &self,
        role: &str,
        keys: Vec<(String, PrivateKey)>,
    ) -> Result<Vec<(String, PrivateKey)>> {
        if keys.is_empty() {
            return Err(Error::MissingKey {
                role: role.into(),
                gun: self.gun.clone(),
                dir: self.keys.dir().to_path_buf(),
            });
        }
        Ok(keys)
    }

    /// `init`: a root certificate (from `root_key` or a root key already here, else a new
    /// one), a targets key and — unless `server_snapshot` — a snapshot key; root.json v1 is
    /// written to the cache, to be uploaded by the first publish.
    pub fn init(&self, root_key: Option<PrivateKey>, server_snapshot: bool) -> Result<String> {
        let timestamp = self.remote.server_key(&self.gun, "timestamp", false)?;
        let root_key = match root_key {
            Some(k) => {
                self.keys.save(&k, "root", None)?;
                k
            }
            None => match self.keys.find("root", None)? {
                Some(e) => self.keys.load(&e.id)?,
                None => {
                    let k = PrivateKey::generate(KeyType::Ecdsa)?;
                    self.keys.save(&k, "root", None)?;
                    k
                }
            },
        };
        let cert = x509::generate_root_certificate(&self.gun, &root_key, expiry::ROOT_YEARS)?;
        let targets = PrivateKey::generate(KeyType::Ecdsa)?;
        self.keys.save(&targets, "targets", Some(&self.gun))?;
        let snapshot = if server_snapshot {
            self.remote.server_key(&self.gun, "snapshot", false)?
        } else {
            let k = PrivateKey::generate(KeyType::Ecdsa)?;
            self.keys.save(&k, "snapshot", Some(&self.gun))?;
            k.public_key().clone()
        };
        let root = Root::initial([
            ("root", cert.clone()),
            ("targets", targets.public_key().clone()),
            ("snapshot", snapshot),
            ("timestamp", timestamp),
        ]);
        let signed = Signed::sign_with_ids(root, vec![(cert.id(), &root_key)])?;
        self.cache.clear_metadata()?;
        self.cache.write("root", signed.raw())?;
        Ok(root_key.id())
    }

    /// The draft to edit: the server's verified state, or the initialised local root.
    pub(crate) fn draft(&self) -> Result<Draft> {
        if let Some(v) = self.update(true)? {
            return Ok(Draft::from_verified(&v));
        }
        let bytes = self
            .cache
            .read("root")?
            .ok_or_else(|| Error::NotInitialized {
                gun: self.gun.clone(),
            })?;
        let root: Signed<Root> = Signed::from_bytes("root", &bytes)?;
        if root.signed.version != 1 {
            // A cached root beyond v1 with nothing on the server: it was deleted remotely.
            return Err(Error::NotFound {
                gun: self.gun.clone(),
                server: self.remote.server().into(),
            });
        }
        let mut targets = BTreeMap::new();
        targets.insert("targets".to_string(), empty_targets());
        Ok(Draft {
            root,
            root_dirty: true,
            targets,
            dirty: BTreeSet::from(["targets".to_string()]),
            meta: BTreeMap::new(),
            snapshot_version: 0,
        })
    }

    /// Apply the changelist and publish. Returns the number of changes published.
    pub fn publish(&self) -> Result<usize> {
        let changes = self.cache.changes()?;
        let mut draft = self.draft()?;
        for c in &changes {
            draft.apply(c)?;
        }
        self.upload(&mut draft)?;
        self.cache.clear_changes(None)?;
        // Cache what the server now serves (and check it took our update).
        self.update(false)?;
        Ok(changes.len())
    }

    /// Sign the dirty roles of `draft` and POST them (with the snapshot if held here).
    pub(crate) fn upload(&self, draft: &mut Draft) -> Result<()> {
        let mut parts: Vec<(String, Vec<u8>)> = Vec::new();
        let near = GoTime::now_plus(time::Duration::days(182));
        if draft.root.signed.expires.is_before(&near) && !draft.root_dirty {
            let mut body = draft.root.signed.clone();
            body.version += 1;
            body.expires = GoTime::now().plus_years(expiry::ROOT_YEARS);
            draft.root = self.sign_root(body, &draft.root.signed, &[])?;
            draft.root_dirty = true;
        }
        if draft.root_dirty {
            parts.push(("root".into(), draft.root.raw().to_vec()));
        }
        // Parents are signed after children only matters for snapshot meta; order by name.
        let dirty: Vec<String> = draft.dirty.iter().cloned().collect();
        for role in &dirty {
            let mut body = draft.targets[role].clone();
            body.version += 1;
            body.expires = GoTime::now().plus_years(expiry::TARGETS_YEARS);
            let (keys, keyids) = self.signing_keys_for(draft, role)?;
            let held = self.need(role, self.held(&keyids, &keys)?)?;
            let doc = Signed::sign_with_ids(
                body.clone(),
                held.iter().map(|(i, k)| (i.clone(), k)).collect(),
            )?;
            draft.targets.insert(role.clone(), body);
            draft
                .meta
                .insert(role.clone(), FileMeta::from_bytes(doc.raw()));
            parts.push((role.clone(), doc.raw().to_vec()));
        }
        if draft.root_dirty {
            draft
                .meta
                .insert("root".into(), FileMeta::from_bytes(draft.root.raw()));
        }
        let sr = &draft.root.signed.roles["snapshot"];
        let held = self.held(&sr.keyids, &draft.root.signed.keys)?;
        if !held.is_empty() {
            let snap = Snapshot {
                type_: "Snapshot".into(),
                expires: GoTime::now().plus_years(expiry::SNAPSHOT_YEARS),
                meta: draft.meta.clone(),
                version: draft.snapshot_version + 1,
            };
            let doc =
                Signed::sign_with_ids(snap, held.iter().map(|(i, k)| (i.clone(), k)).collect())?;
            parts.push(("snapshot".into(), doc.raw().to_vec()));
        }
        if parts.is_empty() {
            return Ok(());
        }
        self.remote.publish(&self.gun, &parts)
    }

    /// The keys and key IDs that sign `role`: root's for targets, the parent's delegation entry
    /// for a delegation.
    fn signing_keys_for(
        &self,
        draft: &Draft,
        role: &str,
    ) -> Result<(BTreeMap<String, PublicKey>, Vec<String>)> {
        if role == "targets" {
            let r = &draft.root.signed;
            return Ok((r.keys.clone(), r.roles["targets"].keyids.clone()));
        }
        let parent = draft.targets.get(parent_of(role)).ok_or_else(|| {
            Error::Usage(format!("{role}: its parent role is not in the repository"))
        })?;
        let d = parent
            .delegations
            .roles
            .iter()
            .find(|d| d.name == role)
            .ok_or_else(|| {
                Error::Usage(format!("{role} is not a delegation of {}", parent_of(role)))
            })?;
        Ok((parent.delegations.keys.clone(), d.keyids.clone()))
    }

    /// Sign a new root body with the root keys of `previous` held here, plus `extra` keys
    /// (a root rotation signs with the old and the new key).
    pub(crate) fn sign_root(
        &self,
        body: Root,
        previous: &Root,
        extra: &[(String, &PrivateKey)],
    ) -> Result<Signed<Root>> {
        let rr = &previous.roles["root"];
        let held = self.need("root", self.held(&rr.keyids, &previous.keys)?)?;
        let mut signers: Vec<(String, &PrivateKey)> =
            held.iter().map(|(i, k)| (i.clone(), k)).collect();
        signers.extend(extra.iter().map(|(i, k)| (i.clone(), *k)));
        Ok(Signed::sign_with_ids(body, signers)?)
    }
}
