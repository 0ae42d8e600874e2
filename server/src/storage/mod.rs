//! Metadata storage behind a trait, so handlers and validation never see the backend:
//! SQLite (`sqlite`) for one process, PostgreSQL (`postgres`) or MySQL/MariaDB (`mysql`) for
//! several replicas. The semantics are
//! notary-server's `MetaStore` (reference §6): every version kept with the sha256 of its
//! bytes, `update_many` all-or-nothing and refusing a version ≤ a stored one, a changefeed row
//! per stored timestamp, and a GUN delete leaving one `deletion` row.

pub mod error;
pub mod migration;
pub mod mysql;
pub mod outbox;
pub mod postgres;
pub mod renewals;
pub mod sqlite;
mod trust;

pub use error::{StorageError, StorageErrorKind};
pub use migration::{Migration, TrustState, Trusted};
pub use outbox::{Action, Finish, Job, JobState, Mirrored, NewJob, Outbox, TagCheck};

use std::sync::Arc;

/// Where metadata is kept (notary's `storage.backend` and `storage.db_url`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// notary's `memory`: SQLite in memory, gone on exit.
    Memory,
    /// notary's `sqlite3`: one file, one process.
    Sqlite(std::path::PathBuf),
    /// notary's `postgres`: the `db_url`, checked when the config is read; several replicas.
    Postgres(String),
    /// notary's `mysql` (MySQL or MariaDB): the go-sql-driver DSN, checked when the config is
    /// read; several replicas.
    Mysql(String),
}

/// Open the configured store: the one place a backend becomes a [`MetaStore`] (the server,
/// and the offline admin commands with `offline`, which refuse the memory backend: it would
/// hold nothing for them).
pub fn open(backend: &Backend, offline: bool) -> Result<Arc<dyn MetaStore>, StorageError> {
    Ok(match backend {
        Backend::Memory if offline => {
            return Err(StorageError::new(
                StorageErrorKind::Config,
                "the memory backend keeps nothing on disk for an offline command: use sqlite3, postgres or mysql",
            ));
        }
        Backend::Memory => Arc::new(sqlite::SqliteStore::in_memory()?),
        Backend::Sqlite(path) => Arc::new(sqlite::SqliteStore::open(path)?),
        Backend::Postgres(url) => Arc::new(postgres::PgStore::open(url)?),
        Backend::Mysql(dsn) => Arc::new(mysql::MyStore::open(dsn)?),
    })
}

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

/// Told which GUN another process (a replica) changed, or `None` when changes may have been
/// missed (drop every cached view).
pub type Watcher = Arc<dyn Fn(Option<&str>) + Send + Sync>;

/// Metadata storage; every store is also the bridge's [`Outbox`] and the control room's
/// [`Migration`] tables, so jobs and trust are written in the transaction of the update (or
/// delete) that causes them.
pub trait MetaStore: Outbox + Migration + renewals::Renewals + Send + Sync + 'static {
    /// Store `updates` for `gun` in one transaction. Fails with [`StorageError::conflict()`] if any
    /// role already has a version ≥ the new one (nothing is written then). A timestamp among
    /// the updates writes a changefeed row, and the GUN is marked for the control room. Returns
    /// the storage time recorded.
    fn update_many(
        &self,
        gun: &str,
        updates: &[Update],
        jobs: &[NewJob],
    ) -> Result<time::OffsetDateTime, StorageError>;
    /// Highest stored version of `role`.
    fn latest(&self, gun: &str, role: &str) -> Result<Option<Stored>, StorageError>;
    fn by_checksum(
        &self,
        gun: &str,
        role: &str,
        sha256: &str,
    ) -> Result<Option<Stored>, StorageError>;
    fn by_version(
        &self,
        gun: &str,
        role: &str,
        version: i64,
    ) -> Result<Option<Stored>, StorageError>;
    /// Hand an update to the store's own writer, for a caller that awaits the outcome
    /// instead of holding a thread ([`submit`]); None when the store has none (SQLite has
    /// one: [`sqlite`]'s group commit).
    fn queue_update(
        &self,
        _gun: &str,
        _updates: &[Update],
        _jobs: &[NewJob],
    ) -> Option<UpdateTicket> {
        None
    }
    /// Delete every file of `gun` (as tombstones: kept, never served); returns whether any
    /// existed (then a `deletion` changefeed row is written). `jobs` (the revocations of what
    /// was mirrored) are written in the same transaction.
    fn delete(&self, gun: &str, jobs: &[NewJob]) -> Result<bool, StorageError>;
    /// Changefeed after `change_id` (exclusive; 0 = from the start, negative = from the end),
    /// `records` rows (negative = that many before `change_id`), oldest first.
    fn changes(
        &self,
        gun: Option<&str>,
        change_id: i64,
        records: i64,
    ) -> Result<Vec<Change>, StorageError>;
    /// Every GUN with stored metadata (for the status page and renewal).
    fn guns(&self) -> Result<Vec<String>, StorageError>;
    fn check_health(&self) -> Result<(), StorageError>;
    /// Call `f` when another process changes a GUN. A store with one writing process never
    /// needs to.
    fn watch(&self, _f: Watcher) {}
    /// Whether calls wait on another process over the network (PostgreSQL): those are moved
    /// off the async workers; a local SQLite read takes microseconds and runs in place.
    fn remote(&self) -> bool {
        false
    }
    /// Whether this process should run the bridge worker now: one replica at a time, so two
    /// never merge the same `.sig` manifest at once.
    fn bridge_lease(&self) -> bool {
        true
    }
}

/// Run a storage read from async code. A remote store's call waits on the network, so the
/// runtime is told to move its other tasks off this worker meanwhile (`block_in_place`); a
/// local read runs in place: handing it to another thread costs more than the read (measured
/// with bench/server.sh). Outside a multi-threaded runtime it simply runs.
pub fn in_place<T>(store: &dyn MetaStore, f: impl FnOnce(&dyn MetaStore) -> T) -> T {
    let multi = || {
        tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
    };
    if store.remote() && multi() {
        tokio::task::block_in_place(|| f(store))
    } else {
        f(store)
    }
}

/// Run a storage write (a commit: an fsync, or a round trip and a lock wait) on the blocking
/// pool, never on an async worker.
pub async fn write<T: Send + 'static>(
    store: &Arc<dyn MetaStore>,
    f: impl FnOnce(&dyn MetaStore) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    spawn_write(store, f).await.map_err(task_failed)?
}

/// [`write`], started: it runs to the end whether or not the handle is awaited.
pub fn spawn_write<T: Send + 'static>(
    store: &Arc<dyn MetaStore>,
    f: impl FnOnce(&dyn MetaStore) -> Result<T, StorageError> + Send + 'static,
) -> tokio::task::JoinHandle<Result<T, StorageError>> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
}

/// A storage task that panicked or was cancelled.
pub(crate) fn task_failed(e: tokio::task::JoinError) -> StorageError {
    StorageError::caused(StorageErrorKind::Unavailable, "storage task", e)
}

/// An update's outcome, to await ([`MetaStore::queue_update`]).
pub type UpdateTicket = tokio::sync::oneshot::Receiver<Result<time::OffsetDateTime, StorageError>>;

/// The store's writer (SQLite's writer thread, or the blocking task of another store)
/// dropped an update unanswered: it only does so when it panicked.
pub(crate) fn writer_gone(e: tokio::sync::oneshot::error::RecvError) -> StorageError {
    StorageError::caused(StorageErrorKind::Unavailable, "the storage writer", e)
}

/// Store an update from async code: on the store's own writer when it has one, else
/// `update_many` on the blocking pool. The update is committed (or fails) whether or not the
/// ticket is awaited.
pub fn submit(
    store: &Arc<dyn MetaStore>,
    gun: String,
    updates: Vec<Update>,
    jobs: Vec<NewJob>,
) -> UpdateTicket {
    if let Some(ticket) = store.queue_update(&gun, &updates, &jobs) {
        return ticket;
    }
    let (answer, ticket) = tokio::sync::oneshot::channel();
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let _ = answer.send(store.update_many(&gun, &updates, &jobs));
    });
    ticket
}

/// Times as both stores keep ours (bridge jobs, checks, the control room's tables):
/// nanoseconds since the epoch, UTC, so nothing is rounded away.
pub fn nanos(t: time::OffsetDateTime) -> i64 {
    t.unix_timestamp_nanos() as i64
}

pub fn now_nanos() -> i64 {
    nanos(time::OffsetDateTime::now_utc())
}

pub fn time_of(nanos: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}
