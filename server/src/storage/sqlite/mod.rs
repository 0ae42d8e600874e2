//! SQLite storage (rusqlite, WAL), in notary-server's schema (`tuf_files`, `changefeed`) so a
//! row is recognisable to anyone who knows notary's database.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

mod group_commit;
mod migration;
mod readers;
mod renewals;
mod schema;

use schema::SCHEMA;

use super::outbox::unknown;
use super::{
    Change, Finish, Job, JobState, MetaStore, NewJob, Outbox, Stored, TagCheck, Update, sha256_hex,
};
use super::{now_nanos, time_of};
use crate::storage::error::StorageError;

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Writes updates, several to a transaction ([`group_commit`]).
    writer: group_commit::Writer,
    /// Connections for file reads ([`readers`]).
    readers: readers::Readers,
}

fn storage(e: rusqlite::Error) -> StorageError {
    StorageError::from(e)
}

/// One update's rows, on an open transaction (see [`group_commit`]): the files, the
/// changefeed entry of a new timestamp, mirror jobs, the renewal schedule and the control
/// room's dirty mark. Returns the time written. A version conflict is returned before
/// anything is written; any other error may leave part of the update written.
fn write_update(
    tx: &Connection,
    gun: &str,
    updates: &[Update],
    jobs: &[NewJob],
) -> Result<i64, StorageError> {
    let now = now_nanos();
    // Every conflict is found before anything is written (group commit relies on it).
    for (i, u) in updates.iter().enumerate() {
        if updates[..i]
            .iter()
            .any(|o| o.role == u.role && o.version == u.version)
        {
            return Err(StorageError::conflict());
        }
        let newer: bool = tx
            .prepare_cached(schema::NEWER_EXISTS)
            .and_then(|mut st| st.query_row(params![gun, u.role, u.version], |r| r.get(0)))
            .map_err(storage)?;
        if newer {
            return Err(StorageError::conflict());
        }
    }
    for u in updates {
        let sha = sha256_hex(&u.data);
        insert_file(tx, now, gun, u, &sha)?;
        if u.role == "timestamp" {
            tx.prepare_cached(
                "INSERT INTO changefeed (created_at, gun, version, sha256, category) VALUES (?1, ?2, ?3, ?4, 'update')",
            )
            .and_then(|mut st| st.execute(params![now, gun, u.version, sha]))
            .map_err(storage)?;
        }
    }
    insert_jobs(tx, gun, jobs, now)?;
    renewals::on_update(tx, gun, updates)?;
    let trust = super::migration::touches_trust(updates.iter().map(|u| u.role.as_str()));
    if trust || !jobs.is_empty() {
        migration::mark(tx, gun, trust)?;
    }
    Ok(now)
}

fn insert_file(
    tx: &Connection,
    now: i64,
    gun: &str,
    u: &Update,
    sha: &str,
) -> Result<(), StorageError> {
    tx.prepare_cached(schema::INSERT_FILE)
        .and_then(|mut st| st.execute(params![now, gun, u.role, u.version, &u.data[..], sha]))
        .map(|_| ())
        .map_err(storage)
}

/// Outbox rows, due at once (`next_at` = now).
fn insert_jobs(tx: &Connection, gun: &str, jobs: &[NewJob], now: i64) -> Result<(), StorageError> {
    let mut st = tx
        .prepare_cached(
            "INSERT INTO bridge_jobs (created_at, updated_at, gun, tag, digest, role, action, next_at, signers) VALUES (?1, ?1, ?2, ?3, ?4, ?5, ?6, ?1, ?7)",
        )
        .map_err(storage)?;
    for j in jobs {
        st.execute(params![
            now,
            gun,
            j.tag,
            j.digest_hex,
            j.role,
            j.action.as_str(),
            j.signers
        ])
        .map_err(storage)?;
    }
    Ok(())
}

const JOB_COLS: &str =
    "id, gun, tag, digest, role, state, attempts, last_error, updated_at, action, signers";

/// A stored name read back as its enum; an unknown one is a conversion error.
fn known<T>(i: usize, v: String, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    parse(&v).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            unknown("value", &v).to_string().into(),
        )
    })
}

fn job(r: &Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: r.get(0)?,
        gun: r.get(1)?,
        tag: r.get(2)?,
        digest_hex: r.get(3)?,
        role: r.get(4)?,
        state: known(5, r.get(5)?, JobState::parse)?,
        attempts: r.get(6)?,
        last_error: r.get(7)?,
        updated_at: time_of(r.get(8)?),
        action: known(9, r.get(9)?, super::Action::parse)?,
        signers: r.get(10)?,
    })
}

fn stored(r: &Row<'_>) -> rusqlite::Result<Stored> {
    // Straight from SQLite's buffer into the shared bytes: a Vec first would hold a large
    // file twice (a 9 MiB targets file read cold is a 9 MiB allocation, not 18).
    let data: std::sync::Arc<[u8]> = std::sync::Arc::from(r.get_ref(2)?.as_blob()?);
    Ok(Stored {
        role: r.get(0)?,
        version: r.get(1)?,
        data,
        sha256: r.get(3)?,
        created_at: time_of(r.get(4)?),
    })
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StorageError::caused(
                    crate::storage::error::StorageErrorKind::Config,
                    format!("create {}", dir.display()),
                    e,
                )
            })?;
        }
        let conn = Connection::open(path).map_err(storage)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(storage)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(storage)?;
        // Bound the WAL file left behind after checkpoints.
        conn.pragma_update(None, "journal_size_limit", 64 << 20)
            .map_err(storage)?;
        // Checkpoint every 8000 pages (32 MiB of WAL) instead of 1000: a page publishes
        // rewrite again and again (index leaves, the newest rows) is copied back once per
        // checkpoint, and the checkpoint's fsync is paid an eighth as often.
        conn.pragma_update(None, "wal_autocheckpoint", 8000)
            .map_err(storage)?;
        let mut store = Self::init(conn)?;
        store.readers = readers::Readers::open(path)?;
        Ok(store)
    }

    pub fn in_memory() -> Result<Self, StorageError> {
        Self::init(Connection::open_in_memory().map_err(storage)?)
    }

    fn init(mut conn: Connection) -> Result<Self, StorageError> {
        readers::stable_plans(&conn)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(storage)?;
        // Every transaction of this connection writes: it takes the write lock when it
        // begins. A deferred one that read first and then met another process's write lock
        // failed at once with "database is locked" (WAL cannot wait there: the snapshot it
        // read may be stale by then); an immediate one waits for the lock up to the timeout.
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        conn.execute_batch(SCHEMA).map_err(storage)?;
        conn.execute_batch(crate::storage::renewals::SCHEMA)
            .map_err(storage)?;
        conn.execute_batch(&super::migration::sqlite_schema())
            .map_err(storage)?;
        // Stores made before jobs named their signers get the column (empty: payloads of
        // those jobs carry no signer list, so their layers are still found on revoke).
        let has_signers: bool = conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM pragma_table_info('bridge_jobs') WHERE name = 'signers')",
                [],
                |r| r.get(0),
            )
            .map_err(storage)?;
        if !has_signers {
            conn.execute_batch(
                "ALTER TABLE bridge_jobs ADD COLUMN signers TEXT NOT NULL DEFAULT ''",
            )
            .map_err(storage)?;
        }
        let conn = Arc::new(Mutex::new(conn));
        let writer = group_commit::Writer::start(conn.clone(), write_update).map_err(|e| {
            StorageError::caused(
                crate::storage::error::StorageErrorKind::Unavailable,
                "start the SQLite writer thread",
                e,
            )
        })?;
        Ok(SqliteStore {
            conn,
            writer,
            readers: Default::default(),
        })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run a job `UPDATE ... RETURNING gun` and mark the GUNs it touched, in one
    /// transaction (as the PostgreSQL store's `update_jobs`); returns how many rows changed.
    fn update_jobs(&self, sql: &str, p: impl rusqlite::Params) -> Result<usize, StorageError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(storage)?;
        let guns: Vec<String> = {
            let mut st = tx.prepare_cached(sql).map_err(storage)?;
            let rows = st.query_map(p, |r| r.get(0)).map_err(storage)?;
            rows.collect::<rusqlite::Result<_>>().map_err(storage)?
        };
        migration::mark_guns(&tx, &guns)?;
        tx.commit().map_err(storage)?;
        Ok(guns.len())
    }

    /// A connection for a read on a request's path (files, the read-only switch): a reader,
    /// else the store's own.
    pub(super) fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.readers.get().unwrap_or_else(|| self.db())
    }

    fn one(&self, sql: &str, p: impl rusqlite::Params) -> Result<Option<Stored>, StorageError> {
        self.reader()
            .prepare_cached(sql)
            .and_then(|mut st| st.query_row(p, stored).optional())
            .map_err(storage)
    }
}

impl MetaStore for SqliteStore {
    fn update_many(
        &self,
        gun: &str,
        updates: &[Update],
        jobs: &[NewJob],
    ) -> Result<OffsetDateTime, StorageError> {
        self.writer
            .submit(gun, updates, jobs)
            .blocking_recv()
            .map_err(crate::storage::writer_gone)?
    }

    fn queue_update(
        &self,
        gun: &str,
        updates: &[Update],
        jobs: &[NewJob],
    ) -> Option<crate::storage::UpdateTicket> {
        Some(self.writer.submit(gun, updates, jobs))
    }

    fn latest(&self, gun: &str, role: &str) -> Result<Option<Stored>, StorageError> {
        self.one(schema::LATEST, params![gun, role])
    }

    fn by_checksum(
        &self,
        gun: &str,
        role: &str,
        sha256: &str,
    ) -> Result<Option<Stored>, StorageError> {
        self.one(
            schema::BY_CHECKSUM,
            params![gun, role, sha256.to_lowercase()],
        )
    }

    fn by_version(
        &self,
        gun: &str,
        role: &str,
        version: i64,
    ) -> Result<Option<Stored>, StorageError> {
        self.one(schema::BY_VERSION, params![gun, role, version])
    }

    fn delete(&self, gun: &str, jobs: &[NewJob]) -> Result<bool, StorageError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(storage)?;
        // Tombstones: the rows stay (for audit and recovery) but are never served again.
        let n = tx
            .execute(
                "UPDATE tuf_files SET deleted_at = ?1, updated_at = ?1 WHERE gun = ?2 AND deleted_at IS NULL",
                params![now_nanos(), gun],
            )
            .map_err(storage)?;
        if n > 0 {
            tx.execute(
                "INSERT INTO changefeed (created_at, gun, version, sha256, category) VALUES (?1, ?2, 0, '', 'deletion')",
                params![now_nanos(), gun],
            )
            .map_err(storage)?;
        }
        insert_jobs(&tx, gun, jobs, now_nanos())?;
        renewals::on_delete(&tx, gun)?;
        migration::mark(&tx, gun, true)?;
        tx.commit().map_err(storage)?;
        Ok(n > 0)
    }

    fn changes(
        &self,
        gun: Option<&str>,
        change_id: i64,
        records: i64,
    ) -> Result<Vec<Change>, StorageError> {
        let db = self.db();
        // notary's SQL GetChanges: reversed when either number is negative; the id bound
        // applies only when positive (reversed) or always (forward).
        let reversed = change_id < 0 || records < 0;
        let limit = records.unsigned_abs() as i64;
        let (cond, order) = if reversed {
            ("(?1 <= 0 OR id < ?1)", "DESC")
        } else {
            ("id > ?1", "ASC")
        };
        let id = change_id;
        let sql = format!(
            "SELECT id, created_at, gun, version, COALESCE(sha256, ''), category FROM changefeed WHERE {cond} AND (?2 IS NULL OR gun = ?2) ORDER BY id {order} LIMIT ?3"
        );
        let mut stmt = db.prepare(&sql).map_err(storage)?;
        let mut rows: Vec<Change> = stmt
            .query_map(params![id, gun, limit], |r| {
                let category: String = r.get(5)?;
                Ok(Change {
                    id: r.get(0)?,
                    created_at: time_of(r.get(1)?),
                    gun: r.get(2)?,
                    version: r.get(3)?,
                    sha256: r.get(4)?,
                    category: if category == "deletion" {
                        "deletion"
                    } else {
                        "update"
                    },
                })
            })
            .map_err(storage)?
            .collect::<rusqlite::Result<_>>()
            .map_err(storage)?;
        if order == "DESC" {
            rows.reverse();
        }
        Ok(rows)
    }

    fn guns(&self) -> Result<Vec<String>, StorageError> {
        let db = self.db();
        let mut stmt = db
            .prepare("SELECT DISTINCT gun FROM tuf_files WHERE deleted_at IS NULL ORDER BY gun")
            .map_err(storage)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(storage)?;
        rows.collect::<rusqlite::Result<_>>().map_err(storage)
    }

    fn check_health(&self) -> Result<(), StorageError> {
        self.db()
            .query_row("SELECT COUNT(*) FROM tuf_files WHERE 1 = 0", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|_| ())
            .map_err(storage)
    }
}

impl Outbox for SqliteStore {
    fn due_jobs(&self, limit: i64) -> Result<Vec<Job>, StorageError> {
        let db = self.db();
        let mut st = db
            .prepare_cached(&format!(
                "SELECT {JOB_COLS} FROM bridge_jobs WHERE state IN ('pending', 'failed') AND next_at <= ?1 ORDER BY id LIMIT ?2"
            ))
            .map_err(storage)?;
        let rows = st
            .query_map(params![now_nanos(), limit], job)
            .map_err(storage)?;
        rows.collect::<rusqlite::Result<_>>().map_err(storage)
    }

    fn finish_job(&self, id: i64, finish: Finish) -> Result<(), StorageError> {
        let now = now_nanos();
        let (state, error, retry_in) = finish.parts();
        self.update_jobs(
            "UPDATE bridge_jobs SET state = ?1, updated_at = ?2, attempts = attempts + 1, last_error = ?3, next_at = ?4 WHERE id = ?5 RETURNING gun",
            params![
                state.as_str(),
                now,
                error,
                now + retry_in.as_nanos() as i64,
                id
            ],
        )
        .map(|_| ())
    }

    fn job_states(&self) -> Result<Vec<(JobState, i64)>, StorageError> {
        let db = self.db();
        let mut st = db
            .prepare_cached("SELECT state, COUNT(*) FROM bridge_jobs GROUP BY state")
            .map_err(storage)?;
        let rows = st
            .query_map([], |r| {
                Ok((known(0, r.get(0)?, JobState::parse)?, r.get(1)?))
            })
            .map_err(storage)?;
        rows.collect::<rusqlite::Result<_>>().map_err(storage)
    }

    fn requeue(&self, prefix: &str) -> Result<usize, StorageError> {
        let now = now_nanos();
        // GUNs are compared by prefix without LIKE's wildcards.
        self.update_jobs(
            "UPDATE bridge_jobs SET state = 'pending', attempts = 0, next_at = ?1, updated_at = ?1 WHERE state IN ('dead', 'not-configured', 'failed') AND substr(gun, 1, length(?2)) = ?2 RETURNING gun",
            params![now, prefix],
        )
    }

    fn drop_job(&self, id: i64) -> Result<bool, StorageError> {
        let now = now_nanos();
        self.update_jobs(
            "UPDATE bridge_jobs SET state = 'dropped', updated_at = ?1 WHERE id = ?2 AND state IN ('pending', 'failed', 'dead') RETURNING gun",
            params![now, id],
        )
        .map(|n| n > 0)
    }

    fn enqueue(&self, gun: &str, jobs: &[NewJob]) -> Result<(), StorageError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(storage)?;
        insert_jobs(&tx, gun, jobs, now_nanos())?;
        migration::mark(&tx, gun, false)?;
        tx.commit().map_err(storage)
    }

    fn has_job(&self, gun: &str, job: &NewJob) -> Result<bool, StorageError> {
        self.db()
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM bridge_jobs WHERE gun = ?1 AND tag = ?2 AND role = ?3 AND digest = ?4 AND action = ?5 AND signers = ?6)",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![
                        gun,
                        job.tag,
                        job.role,
                        job.digest_hex,
                        job.action.as_str(),
                        job.signers
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(storage)
    }

    fn jobs_for(&self, gun: &str) -> Result<Vec<Job>, StorageError> {
        let db = self.db();
        let mut st = db
            .prepare_cached(&format!(
                "SELECT {JOB_COLS} FROM bridge_jobs WHERE gun = ?1 ORDER BY id DESC"
            ))
            .map_err(storage)?;
        let rows = st.query_map([gun], job).map_err(storage)?;
        rows.collect::<rusqlite::Result<_>>().map_err(storage)
    }

    fn record_checks(&self, gun: &str, checks: &[TagCheck]) -> Result<(), StorageError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(storage)?;
        tx.execute("DELETE FROM bridge_checks WHERE gun = ?1", [gun])
            .map_err(storage)?;
        for c in checks {
            tx.execute(
                "INSERT INTO bridge_checks (gun, tag, digest, verified_at, registry_digest, drift, error, checked_at, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    gun,
                    c.tag,
                    c.digest_hex,
                    c.verified_at.map(|t| t.unix_timestamp_nanos() as i64),
                    c.registry_digest,
                    c.drift,
                    c.error,
                    c.checked_at.unix_timestamp_nanos() as i64,
                    c.expires.map(|t| t.unix_timestamp_nanos() as i64)
                ],
            )
            .map_err(storage)?;
        }
        migration::mark(&tx, gun, false)?;
        tx.commit().map_err(storage)
    }

    fn checks_for(&self, gun: &str) -> Result<Vec<TagCheck>, StorageError> {
        let db = self.db();
        let mut st = db
            .prepare_cached(
                "SELECT tag, digest, verified_at, registry_digest, drift, error, checked_at, expires FROM bridge_checks WHERE gun = ?1 ORDER BY tag",
            )
            .map_err(storage)?;
        let rows = st
            .query_map([gun], |r| {
                Ok(TagCheck {
                    tag: r.get(0)?,
                    digest_hex: r.get(1)?,
                    verified_at: r.get::<_, Option<i64>>(2)?.map(time_of),
                    registry_digest: r.get(3)?,
                    drift: r.get(4)?,
                    error: r.get(5)?,
                    checked_at: time_of(r.get(6)?),
                    expires: r.get::<_, Option<i64>>(7)?.map(time_of),
                })
            })
            .map_err(storage)?;
        rows.collect::<rusqlite::Result<_>>().map_err(storage)
    }

    fn check_counts(&self, now: OffsetDateTime) -> Result<(i64, i64), StorageError> {
        let db = self.db();
        let drifted = db
            .query_row(
                "SELECT COUNT(*) FROM bridge_checks WHERE drift = 1",
                [],
                |r| r.get(0),
            )
            .map_err(storage)?;
        let expired = db
            .query_row(
                "SELECT COUNT(*) FROM bridge_checks WHERE expires < ?1",
                [now.unix_timestamp_nanos() as i64],
                |r| r.get(0),
            )
            .map_err(storage)?;
        Ok((drifted, expired))
    }
}
