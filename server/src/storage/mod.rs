//! Metadata storage behind a trait, so handlers and validation never see the backend:
//! SQLite (`sqlite`) for one process, PostgreSQL (`postgres`) for several replicas. The semantics are
//! notary-server's `MetaStore` (reference §6): every version kept with the sha256 of its
//! bytes, `update_many` all-or-nothing and refusing a version ≤ a stored one, a changefeed row
//! per stored timestamp, and a GUN delete leaving one `deletion` row.

pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use crate::error::Error;

/// One role file to store.
#[derive(Clone, Debug)]
pub struct Update {
    pub role: String,
    pub version: i64,
    pub data: Arc<[u8]>,
}

/// A stored role file.
#[derive(Clone, Debug)]
pub struct Stored {
    pub role: String,
    pub version: i64,
    pub data: Arc<[u8]>,
    /// Lowercase hex SHA-256 of `data`.
    pub sha256: String,
    /// Storage time (UTC), for `Last-Modified`.
    pub created_at: time::OffsetDateTime,
}

/// A changefeed row (`{"ID","CreatedAt","GUN","Version","SHA256","Category"}` on the wire).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub id: i64,
    pub created_at: time::OffsetDateTime,
    pub gun: String,
    pub version: i64,
    pub sha256: String,
    pub category: &'static str,
}

/// A Cosign mirror job written with the update that caused it (the outbox).
#[derive(Clone, Debug)]
pub struct NewJob {
    /// `sign` (add our layer) or `revoke` (remove it).
    pub action: &'static str,
    pub tag: String,
    pub digest_hex: String,
    pub role: String,
    /// Key IDs whose signatures are on the role file (comma-separated), named in the payload.
    pub signers: String,
}

/// The job states `/metrics` always shows (0 when none): every state but `dropped`.
pub const GAUGED_JOB_STATES: &[&str] = &["pending", "failed", "dead", "not-configured", "mirrored"];

/// How a delivery ended.
#[derive(Clone, Debug)]
pub enum Finish {
    /// Done: state `mirrored`.
    Mirrored,
    /// Failed, tried again after the delay: state `failed` with the error.
    Retry(String, std::time::Duration),
    /// Given up (refused by the registry, or out of attempts): state `dead`, kept and never
    /// retried until [`MetaStore::requeue`].
    Dead(String),
    /// The GUN's registry is not allowed by the config: state `not-configured`, like `dead`.
    NotConfigured(String),
}

impl Finish {
    /// (state, error, retry delay) as stored.
    pub fn parts(&self) -> (&'static str, Option<&str>, std::time::Duration) {
        match self {
            Finish::Mirrored => ("mirrored", None, std::time::Duration::ZERO),
            Finish::Retry(e, d) => ("failed", Some(e), *d),
            Finish::Dead(e) => ("dead", Some(e), std::time::Duration::ZERO),
            Finish::NotConfigured(e) => ("not-configured", Some(e), std::time::Duration::ZERO),
        }
    }
}

/// A job and its state: `pending`, `mirrored`, `failed` (still retried, with the last error),
/// `dead` (gave up after `max_attempts`) or `dropped` (by an admin).
#[derive(Clone, Debug)]
pub struct Job {
    pub id: i64,
    pub action: String,
    pub gun: String,
    pub tag: String,
    pub digest_hex: String,
    pub role: String,
    pub signers: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub updated_at: time::OffsetDateTime,
}

/// What the reconciler last found in the registry for one tag the Cosign side must sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagCheck {
    pub tag: String,
    /// The digest DCT trusts (hex).
    pub digest_hex: String,
    /// When our `.sig` layer (and bundle, when on) last read back and verified with the
    /// bridge key; kept across failed checks of the same digest.
    pub verified_at: Option<time::OffsetDateTime>,
    /// What the registry's tag points at (hex), None when the registry has no such tag.
    pub registry_digest: Option<String>,
    /// The registry's tag points elsewhere than the digest DCT trusts (never "fixed" by
    /// signing what the registry has).
    pub drift: bool,
    /// Why the last check could not verify.
    pub error: Option<String>,
    pub checked_at: time::OffsetDateTime,
    /// When the role the tag resolves from expires (a DCT client refuses it after).
    pub expires: Option<time::OffsetDateTime>,
}

/// Told which GUN another process (a replica) changed, or `None` when changes may have been
/// missed (drop every cached view).
pub type Watcher = Arc<dyn Fn(Option<&str>) + Send + Sync>;

pub trait MetaStore: Send + Sync + 'static {
    /// Store `updates` for `gun` in one transaction. Fails with [`Error::OldVersion`] if any
    /// role already has a version ≥ the new one (nothing is written then). A timestamp among
    /// the updates writes a changefeed row. Returns the storage time recorded.
    fn update_many(
        &self,
        gun: &str,
        updates: &[Update],
        jobs: &[NewJob],
    ) -> Result<time::OffsetDateTime, Error>;
    /// Jobs not yet mirrored whose retry time has come, oldest first.
    fn due_jobs(&self, limit: i64) -> Result<Vec<Job>, Error>;
    /// Record a job's outcome.
    fn finish_job(&self, id: i64, finish: Finish) -> Result<(), Error>;
    /// Jobs per state.
    fn job_states(&self) -> Result<Vec<(String, i64)>, Error>;
    /// Put `dead`, `not-configured` and `failed` jobs of GUNs starting with `prefix` back to `pending`, due now,
    /// with their attempts reset; returns how many.
    fn requeue(&self, prefix: &str) -> Result<usize, Error>;
    /// Stop job `id` for good (state `dropped`); returns whether it was open.
    fn drop_job(&self, id: i64) -> Result<bool, Error>;
    /// Add jobs outside an update (backfill).
    fn enqueue(&self, gun: &str, jobs: &[NewJob]) -> Result<(), Error>;
    /// Whether a sign job for exactly this target (tag, role, digest) was ever written.
    fn has_job(&self, gun: &str, job: &NewJob) -> Result<bool, Error>;
    /// Every job of `gun`, newest first.
    fn jobs_for(&self, gun: &str) -> Result<Vec<Job>, Error>;
    /// Replace the reconciler's findings for `gun` (tags not listed are forgotten).
    fn record_checks(&self, gun: &str, checks: &[TagCheck]) -> Result<(), Error>;
    /// The reconciler's findings for `gun`, by tag.
    fn checks_for(&self, gun: &str) -> Result<Vec<TagCheck>, Error>;
    /// How many tags drifted, and how many resolve from a role expired at `now` (indexed).
    fn check_counts(&self, now: time::OffsetDateTime) -> Result<(i64, i64), Error>;
    /// Highest stored version of `role`.
    fn latest(&self, gun: &str, role: &str) -> Result<Option<Stored>, Error>;
    fn by_checksum(&self, gun: &str, role: &str, sha256: &str) -> Result<Option<Stored>, Error>;
    fn by_version(&self, gun: &str, role: &str, version: i64) -> Result<Option<Stored>, Error>;
    /// Delete every file of `gun` (as tombstones: kept, never served); returns whether any
    /// existed (then a `deletion` changefeed row is written). `jobs` (the revocations of what
    /// was mirrored) are written in the same transaction.
    fn delete(&self, gun: &str, jobs: &[NewJob]) -> Result<bool, Error>;
    /// Changefeed after `change_id` (exclusive; 0 = from the start, negative = from the end),
    /// `records` rows (negative = that many before `change_id`), oldest first.
    fn changes(
        &self,
        gun: Option<&str>,
        change_id: i64,
        records: i64,
    ) -> Result<Vec<Change>, Error>;
    /// Every GUN with stored metadata (for the status page and renewal).
    fn guns(&self) -> Result<Vec<String>, Error>;
    fn check_health(&self) -> Result<(), Error>;
    /// Call `f` when another process changes a GUN. A store with one writing process never
    /// needs to.
    fn watch(&self, _f: Watcher) {}
    /// Whether this process should run the bridge worker now: one replica at a time, so two
    /// never merge the same `.sig` manifest at once.
    fn bridge_lease(&self) -> bool {
        true
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}
