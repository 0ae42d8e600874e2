//! The Cosign bridge's outbox: the jobs an update (or delete, import, reconcile pass) queues,
//! their delivery states, and the reconciler's findings per tag. Written by the store in the
//! same transaction as the metadata that causes them (see [`super::MetaStore::update_many`]),
//! so a crash between the two cannot happen; read and settled by the bridge worker.

use crate::storage::error::StorageError;

/// What a job does to the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Add our layer (and bundle) for the tag's digest.
    Sign,
    /// Remove our layer (and bundle) that names this claim.
    Revoke,
}

impl Action {
    /// As stored (`bridge_jobs.action`) and shown (status, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Sign => "sign",
            Action::Revoke => "revoke",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sign" => Some(Action::Sign),
            "revoke" => Some(Action::Revoke),
            _ => None,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobState {
    /// Due, never tried.
    Pending,
    /// Tried and failed; retried after its backoff, with the last error.
    Failed,
    /// Given up (refused by the registry, or out of attempts); kept until `bridge retry`.
    Dead,
    /// The GUN's registry is not allowed by the config; kept until `bridge retry`.
    NotConfigured,
    Mirrored,
    /// Stopped for good by an admin (`bridge drop`).
    Dropped,
}

impl JobState {
    /// Every state `/metrics` shows (0 when none): all but `dropped`.
    pub const GAUGED: [JobState; 5] = [
        JobState::Pending,
        JobState::Failed,
        JobState::Dead,
        JobState::NotConfigured,
        JobState::Mirrored,
    ];

    /// As stored (`bridge_jobs.state`) and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::NotConfigured => "not-configured",
            JobState::Mirrored => "mirrored",
            JobState::Dropped => "dropped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            JobState::Pending,
            JobState::Failed,
            JobState::Dead,
            JobState::NotConfigured,
            JobState::Mirrored,
            JobState::Dropped,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Still to be delivered.
    pub fn is_open(self) -> bool {
        matches!(self, JobState::Pending | JobState::Failed)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one tag is mirrored: the digest, the role it resolved from, and the key IDs whose
/// signatures on that role's file verified (comma-separated), all named in the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirrored {
    pub digest_hex: String,
    pub role: String,
    pub signers: String,
}

/// A Cosign mirror job to write.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub action: Action,
    pub tag: String,
    pub digest_hex: String,
    pub role: String,
    /// Key IDs whose signatures on the role file verified (comma-separated), named in the
    /// payload.
    pub signers: String,
}

impl NewJob {
    /// The one way to make a job: `action` for what the Cosign side says of `tag`.
    pub fn new(action: Action, tag: &str, m: &Mirrored) -> Self {
        NewJob {
            action,
            tag: tag.to_string(),
            digest_hex: m.digest_hex.clone(),
            role: m.role.clone(),
            signers: m.signers.clone(),
        }
    }
}

/// How a delivery ended.
#[derive(Clone, Debug)]
pub enum Finish {
    /// Done.
    Mirrored,
    /// Failed, tried again after the delay.
    Retry(String, std::time::Duration),
    /// Given up: the registry refused, or out of attempts.
    Dead(String),
    /// The GUN's registry is not allowed by the config.
    NotConfigured(String),
}

impl Finish {
    /// (state, error, retry delay) as stored.
    pub fn parts(&self) -> (JobState, Option<&str>, std::time::Duration) {
        use std::time::Duration;
        match self {
            Finish::Mirrored => (JobState::Mirrored, None, Duration::ZERO),
            Finish::Retry(e, d) => (JobState::Failed, Some(e), *d),
            Finish::Dead(e) => (JobState::Dead, Some(e), Duration::ZERO),
            Finish::NotConfigured(e) => (JobState::NotConfigured, Some(e), Duration::ZERO),
        }
    }
}

/// A stored job and its state.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: i64,
    pub action: Action,
    pub gun: String,
    pub tag: String,
    pub digest_hex: String,
    pub role: String,
    pub signers: String,
    pub state: JobState,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub updated_at: time::OffsetDateTime,
}

/// A stored action or state the code does not know (a newer version wrote it).
pub fn unknown(what: &str, value: &str) -> StorageError {
    StorageError::new(
        crate::storage::error::StorageErrorKind::Corrupt,
        format!("bridge_jobs: unknown {what} {value:?}"),
    )
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

/// The outbox a store keeps beside the metadata.
pub trait Outbox: Send + Sync {
    /// Jobs not yet mirrored whose retry time has come, oldest first.
    fn due_jobs(&self, limit: i64) -> Result<Vec<Job>, StorageError>;
    /// Record a job's outcome.
    fn finish_job(&self, id: i64, finish: Finish) -> Result<(), StorageError>;
    /// Jobs per state.
    fn job_states(&self) -> Result<Vec<(JobState, i64)>, StorageError>;
    /// Put `dead`, `not-configured` and `failed` jobs of GUNs starting with `prefix` back to `pending`, due now,
    /// with their attempts reset; returns how many.
    fn requeue(&self, prefix: &str) -> Result<usize, StorageError>;
    /// Stop job `id` for good (state `dropped`); returns whether it was open.
    fn drop_job(&self, id: i64) -> Result<bool, StorageError>;
    /// Add jobs outside an update (backfill).
    fn enqueue(&self, gun: &str, jobs: &[NewJob]) -> Result<(), StorageError>;
    /// Whether a sign job for exactly this target (tag, role, digest) was ever written.
    fn has_job(&self, gun: &str, job: &NewJob) -> Result<bool, StorageError>;
    /// Every job of `gun`, newest first.
    fn jobs_for(&self, gun: &str) -> Result<Vec<Job>, StorageError>;
    /// Replace the reconciler's findings for `gun` (tags not listed are forgotten).
    fn record_checks(&self, gun: &str, checks: &[TagCheck]) -> Result<(), StorageError>;
    /// The reconciler's findings for `gun`, by tag.
    fn checks_for(&self, gun: &str) -> Result<Vec<TagCheck>, StorageError>;
    /// How many tags drifted, and how many resolve from a role expired at `now` (indexed).
    fn check_counts(&self, now: time::OffsetDateTime) -> Result<(i64, i64), StorageError>;
}
