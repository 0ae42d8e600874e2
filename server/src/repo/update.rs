//! Updates: check (§3), server-made snapshot and timestamp through the signer, one
//! transaction, and the cache kept in step.

use std::collections::BTreeMap;
use std::sync::Arc;

use trustbridge_tuf::metadata::{FileMeta, Role, expiry};
use trustbridge_tuf::{GoTime, Root, Signed, Snapshot, Timestamp};

use super::{GunView, Repo};
use crate::error::{Error, ValidationError};
use crate::storage::{NewJob, StorageError, Stored, Update};

/// The mirror jobs of an update: the tags whose resolution by a fresh DCT client it changes
/// (see [`crate::mirror::mirror_set`]), whatever the update touched (targets, a delegation's
/// keys, the root).
fn mirror_jobs(
    view: &GunView,
    updates: &[Update],
    on_expiry: crate::mirror::OnExpiry,
) -> Vec<NewJob> {
    let mut after: BTreeMap<&str, &std::sync::Arc<[u8]>> = view
        .current
        .iter()
        .map(|(r, s)| (r.as_str(), &s.data))
        .collect();
    for u in updates {
        after.insert(&u.role, &u.data);
    }
    crate::mirror::jobs_between(
        &view.mirror_set(on_expiry),
        &crate::mirror::mirror_set(after, on_expiry),
    )
}
use crate::validation;

impl Repo {
    /// Sign `body` with every key of `role` in `root` that the signer holds and made for this
    /// GUN and role (see [`crate::signer_link::KeyOwner::may_sign`]); fewer than the threshold
    /// gives None. A root naming any other key the signer happens to hold (another
    /// repository's, the bridge's, the token issuer's) gets no signature from it.
    pub(super) async fn server_sign<T: Role>(
        &self,
        gun: &str,
        role: &str,
        root: &Root,
        body: T,
    ) -> Result<Option<Signed<T>>, Error> {
        let Some(r) = root.roles.get(role) else {
            return Ok(None);
        };
        let msg = Signed::<T>::message_for(&body)
            .map_err(|e| Error::internal(format!("canonical {role} of {gun}"), e))?;
        let mut sigs = Vec::new();
        for keyid in &r.keyids {
            let Some(key) = root.keys.get(keyid) else {
                continue;
            };
            let canonical = key
                .canonical_id()
                .map_err(|e| Error::internal(format!("key {keyid} in the root of {gun}"), e))?;
            if !self.may_sign(gun, role, &canonical).await? {
                continue;
            }
            if let Some(sig) = self.signer.sign(keyid, &canonical, &msg).await? {
                sigs.push(sig);
            }
        }
        if (sigs.len() as i64) < r.threshold.max(1) {
            return Ok(None);
        }
        Signed::from_message(body, &msg, sigs)
            .map(Some)
            .map_err(|e| Error::internal(format!("signed {role} of {gun}"), e))
    }

    pub(super) async fn make_timestamp(
        &self,
        gun: &str,
        root: &Root,
        prev: Option<&Stored>,
        snapshot: &[u8],
    ) -> Result<Update, Error> {
        let version = match prev {
            Some(p) => Signed::<Timestamp>::from_bytes("timestamp", &p.data)
                .map(|d| d.signed.version + 1)
                .unwrap_or(p.version + 1),
            None => 1,
        };
        let mut meta = BTreeMap::new();
        meta.insert("snapshot".to_string(), FileMeta::from_bytes(snapshot));
        let body = Timestamp {
            type_: "Timestamp".into(),
            expires: GoTime::now_plus(expiry::TIMESTAMP),
            meta,
            version,
        };
        let signed = self
            .server_sign(gun, "timestamp", root, body)
            .await?
            .ok_or_else(|| {
                ValidationError::BadRoot("no  timestamp keys exist on the server".into())
            })?;
        Ok(Update {
            role: "timestamp".into(),
            version,
            data: signed.raw().to_vec().into(),
        })
    }

    /// Apply an uploaded update: check (§3), generate snapshot if needed and the timestamp,
    /// store everything in one transaction.
    pub async fn update(
        &self,
        gun: &str,
        uploads: BTreeMap<String, (i64, Arc<[u8]>)>,
    ) -> Result<(), Error> {
        let lock = self.lock_for(gun);
        let _guard = lock.lock().await;
        let view = self.fresh_view(gun).await?;
        // Ancestors of uploaded delegations may not be in the view yet: read them on demand.
        let current = |role: &str| -> Result<Option<Arc<[u8]>>, Error> {
            if let Some(s) = view.current.get(role) {
                return Ok(Some(s.data.clone()));
            }
            Ok(self.read(|s| s.latest(gun, role))?.map(|s| s.data))
        };
        let stored_root = match view.current.get("root") {
            Some(_) => Some(view.root().ok_or_else(|| {
                Error::internal(format!("stored root of {gun}"), "it does not parse")
            })?),
            None => None,
        };
        let checked = validation::check(gun, &uploads, stored_root, &current, &GoTime::now())?;

        let mut updates = checked.updates;
        let snapshot_bytes: Arc<[u8]> = match checked.snapshot_uploaded {
            Some(b) => b,
            None => {
                let prev = view.current.get("snapshot");
                let prev_doc = match prev {
                    Some(p) => Some(
                        Signed::<Snapshot>::from_bytes("snapshot", &p.data)
                            .map_err(|e| ValidationError::Validation(e.to_string()))?,
                    ),
                    None => None,
                };
                if prev_doc.is_none() && !checked.loaded_targets.contains_key("targets") {
                    return Err(ValidationError::Validation(
                        "no snapshot exists yet and targets was not uploaded".into(),
                    )
                    .into());
                }
                let mut meta = prev_doc
                    .as_ref()
                    .map(|d| d.signed.meta.clone())
                    .unwrap_or_default();
                meta.insert("root".into(), FileMeta::from_bytes(checked.root.raw()));
                for (role, data) in &checked.loaded_targets {
                    meta.insert(role.clone(), FileMeta::from_bytes(data));
                }
                let version = prev_doc.as_ref().map_or(1, |d| d.signed.version + 1);
                let body = Snapshot {
                    type_: "Snapshot".into(),
                    expires: GoTime::now().plus_years(expiry::SNAPSHOT_YEARS),
                    meta,
                    version,
                };
                let signed = self
                    .server_sign(gun, "snapshot", &checked.root.signed, body)
                    .await?
                    .ok_or_else(|| ValidationError::BadHierarchy {
                        missing: "snapshot".into(),
                        msg: "no snapshot was included in update and server does not hold current snapshot key for repository".into(),
                    })?;
                let data: Arc<[u8]> = signed.raw().to_vec().into();
                updates.push(Update {
                    role: "snapshot".into(),
                    version,
                    data: data.clone(),
                });
                data
            }
        };
        let ts = self
            .make_timestamp(
                gun,
                &checked.root.signed,
                view.current.get("timestamp"),
                &snapshot_bytes,
            )
            .await?;
        updates.push(ts);
        let jobs = match self.mirror {
            Some(on_expiry) => {
                // Two resolves of the repository: CPU work for a big one, off the workers.
                let (v, u) = (view.clone(), updates.clone());
                super::off_worker(move || mirror_jobs(&v, &u, on_expiry)).await?
            }
            None => vec![],
        };
        let bytes = uploads.values().map(|(_, b)| b.len()).sum();
        let stored = self.store_and_remember(gun, &view, updates, jobs).await;
        drop((uploads, view));
        crate::heap::trim_after(bytes);
        stored
    }

    /// Store `updates` and keep the cache in step (on failure, drop it: storage decides).
    pub(super) async fn store_and_remember(
        &self,
        gun: &str,
        view: &GunView,
        updates: Vec<Update>,
        jobs: Vec<NewJob>,
    ) -> Result<(), Error> {
        match self.land(gun, updates.clone(), jobs).await {
            Ok(at) => {
                self.remember(gun, self.apply(view, &updates, at));
                Ok(())
            }
            Err(e) => {
                self.invalidate(gun);
                Err(e.into())
            }
        }
    }

    /// Write `updates` (and their mirror `jobs`) in the store's writer and wait until they
    /// land. The write goes on if this future is dropped, and the GUN's view is then dropped
    /// when it lands ([`super::cache::Landing`]); on an answer the caller keeps the cache in
    /// step itself.
    pub(super) async fn land(
        &self,
        gun: &str,
        updates: Vec<Update>,
        jobs: Vec<NewJob>,
    ) -> Result<time::OffsetDateTime, StorageError> {
        let ticket = crate::storage::submit(&self.store, gun.to_string(), updates, jobs);
        super::cache::Landing::new(&self.cache, gun, ticket)
            .outcome()
            .await
            .map_err(crate::storage::writer_gone)
            .and_then(|r| r)
    }
}
