//! The repository service behind the handlers: current metadata (cached in memory per GUN so
//! hot GETs do no database work), atomic updates with server-generated snapshot and timestamp,
//! server-managed keys, deletes and the changefeed.
//!
//! "Current" follows notary's SQL store (reference §1.2): timestamp = highest version;
//! snapshot = the one the current timestamp names; root/targets/delegations = the one the
//! current snapshot names (highest version when the snapshot has no entry).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use time::OffsetDateTime;
use trustbridge_tuf::metadata::FileMeta;
use trustbridge_tuf::{GoTime, PublicKey, Root, Signed, Snapshot, Timestamp};

use crate::error::Error;
use crate::signer_link::SignerLink;

mod cache;
mod renew;
mod update;
use crate::storage::{Change, MetaStore, Stored, Update};
pub use cache::CacheSettings;

/// When to renew server-signed metadata ahead of expiry. notary re-signed only after expiry,
/// so clients that fetched just before it failed in between.
#[derive(Clone, Copy, Debug)]
pub struct Renewal {
    /// Renew the timestamp when less than this is left (default: half its 14-day life).
    pub timestamp: time::Duration,
    /// Renew a server-held snapshot when less than this is left (default 180 days of 3 years).
    pub snapshot: time::Duration,
    /// How often a background sweep renews what is due (default 10 minutes).
    pub sweep: std::time::Duration,
}

impl Default for Renewal {
    fn default() -> Self {
        Renewal {
            timestamp: time::Duration::days(7),
            snapshot: time::Duration::days(180),
            sweep: std::time::Duration::from_secs(600),
        }
    }
}

/// The resolved current files of one GUN: the exact bytes (served as stored), and the root
/// parsed beside them on first need, so updates, key lookups and renewals of a cached GUN do
/// not parse it again.
#[derive(Default, Clone)]
struct GunView {
    current: HashMap<String, Stored>,
    /// When the timestamp (or its snapshot) should next be renewed.
    renew_at: Option<OffsetDateTime>,
    /// `current["root"]` parsed (None: no root, or stored bytes that do not parse). A copy
    /// made to change keeps it only while the root bytes stay the same (see [`Repo::apply`]).
    root: std::sync::OnceLock<Option<Arc<Signed<Root>>>>,
    /// Whether `current` holds every current file. A view read for a GET of timestamp.json
    /// holds the timestamp alone ([`Repo::resolve_timestamp`]): what a client polls most is
    /// one indexed read when cold and a small entry when cached.
    complete: bool,
}

pub struct Repo {
    store: Arc<dyn MetaStore>,
    signer: SignerLink,
    renewal: Renewal,
    /// Whether accepted targets become Cosign mirror jobs (the bridge is configured), and
    /// what expired roles mean for them.
    mirror: Option<crate::mirror::OnExpiry>,
    /// Hot repositories' views, within a memory budget (see [`cache`]).
    cache: Arc<cache::ViewCache>,
    /// One writer per GUN at a time (updates, renewals, deletes).
    locks: cache::GunLocks,
    /// Whether this process has scheduled the GUNs stored without a renewal schedule.
    scheduled: std::sync::atomic::AtomicBool,
}

impl GunView {
    /// The current root, parsed once per view.
    fn root(&self) -> Option<Arc<Signed<Root>>> {
        self.root
            .get_or_init(|| {
                let s = self.current.get("root")?;
                Signed::<Root>::from_bytes("root", &s.data)
                    .ok()
                    .map(Arc::new)
            })
            .clone()
    }

    /// `signed.expires` of the current file of `role`.
    fn expires(&self, role: &str) -> Option<OffsetDateTime> {
        self.current.get(role).and_then(|s| expires_of(&s.data))
    }

    /// What the Cosign side must say for this view.
    fn mirror_set(
        &self,
        on_expiry: crate::mirror::OnExpiry,
    ) -> BTreeMap<String, crate::storage::Mirrored> {
        self.mirror_set_and_expiry(on_expiry).0
    }

    /// [`crate::mirror::mirror_set_and_expiry`] of the current files.
    fn mirror_set_and_expiry(
        &self,
        on_expiry: crate::mirror::OnExpiry,
    ) -> (MirrorSet, BTreeMap<String, OffsetDateTime>) {
        crate::mirror::mirror_set_and_expiry(
            self.current.iter().map(|(r, s)| (r.as_str(), &s.data)),
            on_expiry,
        )
    }
}

/// How many tags' trust the summarizer holds before it writes them.
const SUMMARY_TAGS: usize = 10_000;

/// Tag → what the Cosign side must say for it.
type MirrorSet = BTreeMap<String, crate::storage::Mirrored>;

/// Run `f` on tokio's blocking pool: parsing and resolving the targets of a large repository
/// is CPU work (about 0.1 s at 100k targets) that must not hold an async worker, where it
/// would stall every request that worker serves.
async fn off_worker<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal("resolving a repository's targets", e))
}

/// `signed.expires` of a stored metadata file.
fn expires_of(data: &[u8]) -> Option<OffsetDateTime> {
    trustbridge_tuf::metadata::Peek::of(data)
        .ok()
        .map(|p| p.expires.as_offset_datetime())
}

impl Repo {
    /// A repository service caching views within `cache`'s budget.
    pub fn new(
        store: Arc<dyn MetaStore>,
        signer: SignerLink,
        renewal: Renewal,
        cache: CacheSettings,
    ) -> Self {
        Repo {
            store,
            signer,
            renewal,
            mirror: None,
            cache: Arc::new(cache::ViewCache::new(cache)),
            locks: Default::default(),
            scheduled: Default::default(),
        }
    }

    /// (bytes held by cached views, their budget, views held, per-GUN locks held).
    pub fn cache_usage(&self) -> (u64, u64, usize, usize) {
        let (held, budget, views) = self.cache.usage();
        (held, budget, views, self.locks.len())
    }

    /// Turn Cosign mirror jobs on (the bridge is configured).
    pub fn with_mirror(mut self, on: Option<crate::mirror::OnExpiry>) -> Self {
        self.mirror = on;
        self
    }

    pub fn store(&self) -> &Arc<dyn MetaStore> {
        &self.store
    }

    pub fn signer(&self) -> &SignerLink {
        &self.signer
    }

    fn lock_for(&self, gun: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.get(gun)
    }

    /// Drop the cached view of `gun`, or of every GUN (another replica wrote).
    pub fn forget(&self, gun: Option<&str>) {
        self.cache.forget(gun);
    }

    fn invalidate(&self, gun: &str) {
        self.cache.forget(Some(gun));
    }

    /// The current files of `gun` read from storage, without stalling the runtime
    /// ([`crate::storage::in_place`]: SQLite reads run here, PostgreSQL's off the worker).
    fn resolve_view(&self, gun: &str, extra: &[String]) -> Result<GunView, Error> {
        self.read(|s| Self::resolve(s, gun, extra, self.renewal))
    }

    /// A storage read from async code ([`crate::storage::in_place`]).
    fn read<T>(&self, f: impl FnOnce(&dyn MetaStore) -> T) -> T {
        crate::storage::in_place(self.store.as_ref(), f)
    }

    /// Resolve the current files of `gun` from storage (blocking).
    fn resolve(
        store: &dyn MetaStore,
        gun: &str,
        extra: &[String],
        renewal: Renewal,
    ) -> Result<GunView, Error> {
        let mut view = GunView {
            complete: true,
            ..GunView::default()
        };
        let Some(ts) = store.latest(gun, "timestamp")? else {
            // No timestamp yet: highest versions (a repository mid-import).
            for role in ["root", "targets", "snapshot"]
                .iter()
                .map(|s| s.to_string())
                .chain(extra.iter().cloned())
            {
                if let Some(s) = store.latest(gun, &role)? {
                    view.current.insert(role, s);
                }
            }
            return Ok(view);
        };
        let ts_doc = Signed::<Timestamp>::from_bytes("timestamp", &ts.data)
            .map_err(|e| Error::internal(format!("stored timestamp of {gun}"), e))?;
        let mut renew = ts_doc.signed.expires.as_offset_datetime() - renewal.timestamp;
        let snap = match ts_doc.signed.meta.get("snapshot").and_then(|m| m.sha256()) {
            Some(h) => store.by_checksum(gun, "snapshot", &hex::encode(h))?,
            None => None,
        };
        let snap = match snap {
            Some(s) => Some(s),
            None => store.latest(gun, "snapshot")?,
        };
        view.current.insert("timestamp".into(), ts);
        let mut snap_meta: BTreeMap<String, FileMeta> = BTreeMap::new();
        if let Some(s) = snap {
            if let Ok(doc) = Signed::<Snapshot>::from_bytes("snapshot", &s.data) {
                renew = renew.min(doc.signed.expires.as_offset_datetime() - renewal.snapshot);
                snap_meta = doc.signed.meta;
            }
            view.current.insert("snapshot".into(), s);
        }
        let mut roles: Vec<String> = snap_meta.keys().cloned().collect();
        for r in ["root", "targets"]
            .iter()
            .map(|s| s.to_string())
            .chain(extra.iter().cloned())
        {
            if !roles.contains(&r) {
                roles.push(r);
            }
        }
        for role in roles {
            let by_hash = match snap_meta.get(&role).and_then(|m| m.sha256()) {
                Some(h) => store.by_checksum(gun, &role, &hex::encode(h))?,
                None => None,
            };
            let found = match by_hash {
                Some(s) => Some(s),
                None => store.latest(gun, &role)?,
            };
            if let Some(s) = found {
                view.current.insert(role, s);
            }
        }
        view.renew_at = Some(renew);
        Ok(view)
    }

    /// The current timestamp of `gun` alone (the newest version, as in [`Repo::resolve`]): one
    /// indexed read. Its renewal time is the timestamp's own; a server-held snapshot coming
    /// due is renewed by the sweep (`renewals`, months ahead) or by a read of a complete view.
    /// A GUN without a timestamp (mid-import, or none) gets the complete view.
    fn resolve_timestamp(
        store: &dyn MetaStore,
        gun: &str,
        renewal: Renewal,
    ) -> Result<GunView, Error> {
        let Some(ts) = store.latest(gun, "timestamp")? else {
            return Self::resolve(store, gun, &[], renewal);
        };
        let renew_at = expires_of(&ts.data).map(|t| t - renewal.timestamp);
        Ok(GunView {
            current: HashMap::from([("timestamp".to_string(), ts)]),
            renew_at,
            ..GunView::default()
        })
    }

    /// The view after `updates` were stored at `at`: no need to ask the database again.
    fn apply(&self, view: &GunView, updates: &[Update], at: OffsetDateTime) -> GunView {
        let r = self.renewal;
        let mut next = view.clone();
        if updates.iter().any(|u| u.role == "root") {
            next.root = Default::default();
        }
        for u in updates {
            next.current.insert(
                u.role.clone(),
                Stored {
                    role: u.role.clone(),
                    version: u.version,
                    data: u.data.clone(),
                    sha256: crate::storage::sha256_hex(&u.data),
                    created_at: at,
                },
            );
        }
        next.renew_at = match (next.expires("timestamp"), next.expires("snapshot")) {
            (Some(t), Some(s)) => Some((t - r.timestamp).min(s - r.snapshot)),
            (Some(t), None) => Some(t - r.timestamp),
            _ => None,
        };
        next
    }

    fn remember(&self, gun: &str, view: GunView) {
        self.cache.put(gun, Arc::new(view));
    }

    /// The cached view of `gun` if complete, else one resolved from storage.
    async fn fresh_view(&self, gun: &str) -> Result<Arc<GunView>, Error> {
        if let Some(v) = self.cache.get(gun)
            && v.complete
            && v.current.contains_key("timestamp")
        {
            return Ok(v);
        }
        Ok(Arc::new(self.resolve_view(gun, &[])?))
    }

    async fn view(&self, gun: &str, role: &str) -> Result<Arc<GunView>, Error> {
        if let Some(v) = self.cache.get(gun)
            && (v.current.contains_key(role) || (v.complete && v.current.contains_key("timestamp")))
        {
            return Ok(v);
        }
        let before = self.cache.generation();
        let view = Arc::new(match role {
            "timestamp" => self.read(|s| Self::resolve_timestamp(s, gun, self.renewal))?,
            _ => self.resolve_view(gun, &[role.to_string()])?,
        });
        // Only GUNs that exist are cached (a GET of any name must not grow memory), and only
        // when nothing was written since the read began.
        if !view.current.is_empty() {
            self.cache.put_if_unchanged(gun, view.clone(), before);
        }
        Ok(view)
    }

    /// What the Cosign side must say for `gun` now, and when each targets role expires (the
    /// bridge's backfill and reconciler).
    pub async fn mirror_set(
        &self,
        gun: &str,
        on_expiry: crate::mirror::OnExpiry,
    ) -> Result<(MirrorSet, BTreeMap<String, OffsetDateTime>), Error> {
        let view = self.view(gun, "targets").await?;
        off_worker(move || view.mirror_set_and_expiry(on_expiry)).await
    }

    /// `gun`'s DCT trust now, as the control room keeps it (see [`crate::mirror::trust_state`]).
    pub async fn trust_state(&self, gun: &str) -> Result<crate::storage::TrustState, Error> {
        let view = self.view(gun, "targets").await?;
        let on_expiry = self.mirror.unwrap_or_default();
        let bytes = view.current.values().map(|s| s.data.len()).sum();
        let state = off_worker(move || {
            crate::mirror::trust_state(
                view.current.iter().map(|(r, s)| (r.as_str(), &s.data)),
                on_expiry,
            )
        })
        .await;
        crate::heap::trim_after(bytes);
        state
    }

    /// The summarizer: bring every GUN that writes marked up to date (its trust recomputed when
    /// its metadata changed, else its summary), each once however often it was written;
    /// returns how many.
    pub async fn summarize_dirty(&self) -> Result<usize, Error> {
        let mut done = 0;
        loop {
            let dirty = self.read(|s| s.dirty(500))?;
            if dirty.is_empty() {
                return Ok(done);
            }
            // Written in batches of about SUMMARY_TAGS tags (one transaction each), so a batch
            // of big repositories' trust is not all held at once.
            let mut batch = Vec::new();
            let mut tags = 0;
            let n = dirty.len();
            for d in dirty {
                let trust = match d.trust {
                    true => Some(self.trust_state(&d.gun).await?),
                    false => None,
                };
                tags += trust.as_ref().map_or(0, |t| t.tags().len());
                batch.push((d, trust));
                if tags >= SUMMARY_TAGS {
                    let b = std::mem::take(&mut batch);
                    crate::storage::write(&self.store, move |s| s.summarize(&b)).await?;
                    tags = 0;
                }
            }
            if !batch.is_empty() {
                crate::storage::write(&self.store, move |s| s.summarize(&batch)).await?;
            }
            done += n;
            if n < 500 {
                return Ok(done);
            }
        }
    }

    /// Give every stored GUN without control-room trust rows its trust (GUNs stored before
    /// the tables existed, or by another server on the same database); returns how many were
    /// adopted.
    pub async fn adopt_trust(&self) -> Result<usize, Error> {
        let adopted = crate::storage::write(&self.store, |s| s.mark_unadopted()).await?;
        self.summarize_dirty().await?;
        Ok(adopted)
    }

    /// The current file of `role`. For timestamp and snapshot, renews them first when due
    /// and the server holds the keys (one request pays; the rest are served from memory).
    pub async fn current(&self, gun: &str, role: &str) -> Result<Stored, Error> {
        let mut view = self.view(gun, role).await?;
        if (role == "timestamp" || role == "snapshot")
            && view
                .renew_at
                .is_some_and(|t| t <= OffsetDateTime::now_utc())
        {
            match self.renew(gun).await {
                Ok(_) => view = self.view(gun, role).await?,
                Err(e) => {
                    // Serve what is stored unless it has actually expired (then notary's 500).
                    let expired = view
                        .expires(role)
                        .is_none_or(|t| t <= OffsetDateTime::now_utc());
                    tracing::warn!(%gun, error = %e, "renewing timestamp/snapshot failed");
                    if expired {
                        return Err(e);
                    }
                }
            }
        }
        view.current.get(role).cloned().ok_or(Error::NotFound)
    }

    pub async fn by_checksum(&self, gun: &str, role: &str, sha: &str) -> Result<Stored, Error> {
        if sha.len() != 64 {
            return Err(Error::NotFound);
        }
        if let Some(v) = self.cache.get(gun)
            && let Some(s) = v.current.get(role)
            && s.sha256.eq_ignore_ascii_case(sha)
        {
            return Ok(s.clone());
        }
        self.read(|s| s.by_checksum(gun, role, sha))?
            .ok_or(Error::NotFound)
    }

    pub async fn by_version(&self, gun: &str, role: &str, version: i64) -> Result<Stored, Error> {
        self.read(|s| s.by_version(gun, role, version))?
            .ok_or(Error::NotFound)
    }

    /// GET `{role}.key`: the first key of `role` in the current root that the signer holds,
    /// else a new one (notary's `GetOrCreateKey`).
    pub async fn get_or_create_key(&self, gun: &str, role: &str) -> Result<PublicKey, Error> {
        if let Ok(view) = self.view(gun, "root").await
            && let Some(doc) = view.root()
            && let Some(r) = doc.signed.roles.get(role)
        {
            for id in &r.keyids {
                if let Some(k) = doc.signed.keys.get(id)
                    && self
                        .may_sign(gun, role, &k.canonical_id().unwrap_or_default())
                        .await?
                {
                    return Ok(k.clone());
                }
            }
        }
        Ok(self.signer.create_key(gun, role).await?)
    }

    /// Whether the signer holds `canonical_id` as a key made for `role` of `gun`.
    async fn may_sign(&self, gun: &str, role: &str, canonical_id: &str) -> Result<bool, Error> {
        Ok(self
            .signer
            .owner(canonical_id)
            .await?
            .is_some_and(|o| o.may_sign(gun, role)))
    }

    /// POST `{role}.key`: always CreateKey (the signer reuses an unused one).
    pub async fn rotate_key(&self, gun: &str, role: &str) -> Result<PublicKey, Error> {
        Ok(self.signer.create_key(gun, role).await?)
    }

    pub async fn delete(&self, gun: &str) -> Result<(), Error> {
        let lock = self.lock_for(gun);
        let _guard = lock.lock().await;
        // Nothing is trusted once the repository is gone: revoke every mirrored tag, in the
        // delete's own transaction.
        let jobs = if let Some(on_expiry) = self.mirror {
            let view = self.resolve_view(gun, &[])?;
            crate::mirror::jobs_between(&view.mirror_set(on_expiry), &BTreeMap::new())
        } else {
            vec![]
        };
        let owned = gun.to_string();
        let deleting = crate::storage::spawn_write(&self.store, move |s| s.delete(&owned, &jobs));
        let res = cache::Landing::new(&self.cache, gun, deleting)
            .outcome()
            .await;
        self.invalidate(gun);
        Ok(res.map_err(crate::storage::task_failed)?.map(|_| ())?)
    }

    /// Store a repository's history copied from another notary server (`trustbridge
    /// import`), byte-for-byte and in one transaction, for a GUN this server does not have yet.
    /// The history is verified here too ([`trustbridge_tuf::history`]): a caller cannot store,
    /// or get mirrored, roles and signers it merely claims. With the bridge on, what a fresh
    /// client resolves from the newest versions becomes mirror jobs, as an update would.
    pub async fn import(&self, gun: &str, mut files: Vec<Update>) -> Result<usize, Error> {
        use crate::error::ValidationError;
        for f in &files {
            crate::import::check_file(&f.role, f.version, &f.data)?;
        }
        if !files.iter().any(|f| f.role == "root") || !files.iter().any(|f| f.role == "timestamp") {
            return Err(Error::Invalid(ValidationError::Validation(
                "an import needs root and timestamp files".into(),
            )));
        }
        // The whole history must verify, version by version, before anything is stored or
        // mirrored (the same checks the client's import made on the source).
        let mut history = trustbridge_tuf::history::History::new(gun);
        let mut checked: Vec<&Update> = files.iter().collect();
        trustbridge_tuf::history::History::order(&mut checked, |f| (f.role.as_str(), f.version));
        let now = GoTime::now();
        for f in checked {
            history
                .check(&f.role, f.version, &f.data, &now)
                .map_err(|e| {
                    Error::Invalid(ValidationError::Validation(format!(
                        "{} version {}: {e}",
                        f.role, f.version
                    )))
                })?;
        }
        crate::import::order(&mut files);
        let lock = self.lock_for(gun);
        let _guard = lock.lock().await;
        if self.read(|s| s.latest(gun, "root"))?.is_some() {
            return Err(Error::old_version());
        }
        // The newest version of each role is what the repository serves now.
        let mut newest: BTreeMap<&str, &Arc<[u8]>> = BTreeMap::new();
        for f in &files {
            newest.insert(&f.role, &f.data);
        }
        let jobs = match self.mirror {
            Some(on_expiry) => crate::mirror::jobs_between(
                &BTreeMap::new(),
                &crate::mirror::mirror_set(newest, on_expiry),
            ),
            None => vec![],
        };
        let n = files.len();
        let res = self.land(gun, files, jobs).await;
        self.invalidate(gun);
        Ok(res.map(|_| n)?)
    }

    pub async fn changes(
        &self,
        gun: Option<String>,
        change_id: i64,
        records: i64,
    ) -> Result<Vec<Change>, Error> {
        Ok(self.read(|s| s.changes(gun.as_deref(), change_id, records))?)
    }
}
