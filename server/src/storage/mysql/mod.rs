//! MySQL/MariaDB storage (`storage.backend: "mysql"`, notary's go-sql-driver DSN), for the
//! deployments notary's own compose files describe. The metadata tables are notary-server's
//! MySQL schema (`migrations/server/mysql`), created when missing, so trustbridge-server takes
//! over a database notary-server wrote, and the reverse; beside them the same tables of ours
//! as the PostgreSQL store keeps (see [`schema`]).
//!
//! Between replicas (and a Go notary-server on the same database):
//! - every write of a GUN holds that GUN's named lock (`GET_LOCK`) around its transaction, so
//!   two replicas never both pass the "no newer version" check; notary's unique key
//!   `(gun, role, version)` refuses what a writer that takes no lock (notary-server) races in
//!   (MySQL error 1062, notary's `ErrOldVersion`);
//! - MySQL has no LISTEN/NOTIFY: each replica reads the changefeed every
//!   [`watch::POLL`] and drops its cached view of each GUN written by anyone else (its own
//!   writes are skipped), all of them after a lost connection;
//! - one replica at a time holds the bridge lease, a named lock on a connection of its own.
//!
//! The calls are blocking (the mysql crate's synchronous client, a pool of at most 16
//! connections); [`MetaStore::remote`] tells the server to run them off its async workers.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ::mysql::prelude::Queryable;
use ::mysql::{IsolationLevel, Pool, PooledConn, Transaction, TxOpts, Value};
use time::{OffsetDateTime, PrimitiveDateTime};

mod dialect;
mod migration;
mod schema;
mod watch;

use super::outbox::unknown;
use super::{
    Change, Finish, Job, JobState, MetaStore, NewJob, Outbox, Stored, TagCheck, Update, Watcher,
    now_nanos, sha256_hex, time_of,
};
use crate::storage::error::{StorageError, StorageErrorKind};

/// MySQL's duplicate-key errors (1062 entry, 1022 key), which notary maps to `ErrOldVersion`.
const DUPLICATE: [u16; 2] = [1062, 1022];

/// A deadlock (1213) or lock wait timeout (1205): InnoDB rolled the transaction back, and
/// running it again is the documented answer.
const RETRY: [u16; 2] = [1213, 1205];

/// Attempts at a transaction InnoDB keeps rolling back.
const ATTEMPTS: usize = 4;

fn retryable(e: &StorageError) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<::mysql::Error>())
        .is_some_and(|e| matches!(e, ::mysql::Error::MySqlError(m) if RETRY.contains(&m.code)))
}

fn my(e: ::mysql::Error) -> StorageError {
    let kind = match &e {
        ::mysql::Error::MySqlError(m) if DUPLICATE.contains(&m.code) => StorageErrorKind::Conflict,
        _ => StorageErrorKind::Unavailable,
    };
    StorageError::caused(kind, "MySQL", e)
}

/// notary's columns are `timestamp` (seconds), written in UTC (the session's zone); rounded
/// here so what is returned equals what is stored.
fn now_ts() -> PrimitiveDateTime {
    let n = OffsetDateTime::now_utc();
    let n = n.replace_nanosecond(0).unwrap_or(n);
    PrimitiveDateTime::new(n.date(), n.time())
}

const FILE_COLS: &str = "role, version, data, sha256, created_at";

type FileRow = (
    String,
    i64,
    Vec<u8>,
    Option<String>,
    Option<PrimitiveDateTime>,
);

fn stored((role, version, data, sha, created): FileRow) -> Stored {
    Stored {
        role,
        version,
        sha256: sha
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| sha256_hex(&data)),
        data: data.into(),
        created_at: created.map_or(OffsetDateTime::UNIX_EPOCH, |t| t.assume_utc()),
    }
}

const JOB_COLS: &str =
    "id, gun, tag, digest, role, state, attempts, last_error, updated_at, action, signers";

type JobRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    i64,
    String,
    String,
);

fn job(r: JobRow) -> Result<Job, StorageError> {
    Ok(Job {
        id: r.0,
        gun: r.1,
        tag: r.2,
        digest_hex: r.3.trim().to_string(),
        role: r.4,
        state: JobState::parse(&r.5).ok_or_else(|| unknown("state", &r.5))?,
        attempts: r.6,
        last_error: r.7,
        updated_at: time_of(r.8),
        action: super::Action::parse(&r.9).ok_or_else(|| unknown("action", &r.9))?,
        signers: r.10,
    })
}

fn insert_jobs(
    tx: &mut Transaction<'_>,
    gun: &str,
    jobs: &[NewJob],
    now: i64,
) -> Result<(), StorageError> {
    for j in jobs {
        tx.exec_drop(
            "INSERT INTO bridge_jobs (created_at, updated_at, gun, tag, digest, role, action, next_at, signers) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (now, now, gun, &j.tag, &j.digest_hex, &j.role, j.action.as_str(), now, &j.signers),
        )
        .map_err(my)?;
    }
    Ok(())
}

pub struct MyStore {
    pool: Pool,
    lease: Arc<AtomicBool>,
    watchers: Arc<Mutex<Vec<Watcher>>>,
    /// Changefeed rows this process wrote, which its poller skips.
    own: Arc<Mutex<HashSet<i64>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for MyStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl MyStore {
    /// Connect, create the schema where missing (one replica at a time), start watching.
    pub fn open(dsn: &str) -> Result<Self, StorageError> {
        let opts = trustbridge_db::mysql::parse_dsn(dsn)
            .map_err(|e| StorageError::new(StorageErrorKind::Config, e.to_string()))?;
        let pool = Pool::new(opts.clone()).map_err(my)?;
        let store = MyStore {
            pool,
            lease: Arc::new(AtomicBool::new(false)),
            watchers: Arc::new(Mutex::new(Vec::new())),
            own: Arc::new(Mutex::new(HashSet::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let mut c = store.conn()?;
        locked(&mut c, schema::SCHEMA_LOCK, |c| {
            for sql in schema::NOTARY.iter().chain(schema::OURS) {
                c.query_drop(sql).map_err(my)?;
            }
            Ok(())
        })?;
        watch::start(
            opts,
            store.lease.clone(),
            store.watchers.clone(),
            store.own.clone(),
            store.stop.clone(),
        );
        Ok(store)
    }

    pub(super) fn conn(&self) -> Result<PooledConn, StorageError> {
        self.pool.get_conn().map_err(my)
    }

    /// One transaction (read committed: InnoDB then locks the rows written, not the gaps
    /// between them, so writers of different GUNs do not deadlock on shared tables), run again
    /// when InnoDB rolls it back for a deadlock; with `gun`, under that GUN's writer lock.
    pub(super) fn tx<T>(
        &self,
        gun: Option<&str>,
        mut f: impl FnMut(&mut Transaction<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut c = self.conn()?;
        let mut run = |c: &mut PooledConn| {
            let opts = TxOpts::default().set_isolation_level(Some(IsolationLevel::ReadCommitted));
            let mut attempt = 1;
            loop {
                let out = c.start_transaction(opts).map_err(my).and_then(|mut tx| {
                    let out = f(&mut tx)?;
                    tx.commit().map_err(my)?;
                    Ok(out)
                });
                match out {
                    Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                        tracing::debug!(error = %e, attempt, "MySQL rolled a transaction back; again");
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        };
        match gun {
            Some(gun) => locked(&mut c, &schema::gun_lock(gun), &mut run),
            None => run(&mut c),
        }
    }

    fn one(&self, sql: String, params: Vec<Value>) -> Result<Option<Stored>, StorageError> {
        let row: Option<FileRow> = self.conn()?.exec_first(sql, params).map_err(my)?;
        Ok(row.map(stored))
    }

    /// Remember changefeed rows written by this process once their transaction committed.
    fn own_rows(&self, ids: Vec<i64>) {
        self.own
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(ids);
    }
}

/// Run `f` holding the named lock `name` (waiting up to 30 s), and release it whatever `f`
/// answered: a named lock belongs to the session, which goes back to the pool.
fn locked<T>(
    c: &mut PooledConn,
    name: &str,
    f: impl FnOnce(&mut PooledConn) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    let got: Option<i64> = c
        .exec_first("SELECT GET_LOCK(?, 30)", (name,))
        .map_err(my)?;
    if got != Some(1) {
        return Err(StorageError::new(
            StorageErrorKind::Unavailable,
            format!("MySQL: lock {name} not granted within 30 s"),
        ));
    }
    let out = f(c);
    c.exec_drop("DO RELEASE_LOCK(?)", (name,)).map_err(my)?;
    out
}

impl MetaStore for MyStore {
    fn remote(&self) -> bool {
        true
    }

    fn update_many(
        &self,
        gun: &str,
        updates: &[Update],
        jobs: &[NewJob],
    ) -> Result<OffsetDateTime, StorageError> {
        for (i, u) in updates.iter().enumerate() {
            if updates[..i]
                .iter()
                .any(|o| o.role == u.role && o.version == u.version)
            {
                return Err(StorageError::conflict());
            }
        }
        let trust =
            crate::storage::migration::touches_trust(updates.iter().map(|u| u.role.as_str()));
        let now = now_ts();
        let mut feed = Vec::new();
        self.tx(Some(gun), |tx| {
            feed.clear();
            for u in updates {
                let version = i32::try_from(u.version).map_err(|_| StorageError::conflict())?;
                let newer: Option<bool> = tx
                    .exec_first(
                        "SELECT EXISTS(SELECT 1 FROM tuf_files WHERE gun = ? AND role = ? AND version >= ? AND deleted_at IS NULL)",
                        (gun, &u.role, version),
                    )
                    .map_err(my)?;
                if newer == Some(true) {
                    return Err(StorageError::conflict());
                }
                let sha = sha256_hex(&u.data);
                tx.exec_drop(
                    "INSERT INTO tuf_files (created_at, updated_at, gun, role, version, data, sha256) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (now, now, gun, &u.role, version, &u.data[..], &sha),
                )
                .map_err(my)?;
                if u.role == "timestamp" {
                    tx.exec_drop(
                        "INSERT INTO changefeed (created_at, gun, version, sha256, category) VALUES (?, ?, ?, ?, 'update')",
                        (now, gun, version, &sha),
                    )
                    .map_err(my)?;
                    feed.extend(tx.last_insert_id().map(|id| id as i64));
                }
            }
            insert_jobs(tx, gun, jobs, now_nanos())?;
            migration::on_update(tx, gun, updates)?;
            if trust || !jobs.is_empty() {
                migration::mark(tx, gun, trust)?;
            }
            Ok(())
        })?;
        self.own_rows(feed);
        Ok(now.assume_utc())
    }

    fn latest(&self, gun: &str, role: &str) -> Result<Option<Stored>, StorageError> {
        self.one(
            format!("SELECT {FILE_COLS} FROM tuf_files WHERE gun = ? AND role = ? AND deleted_at IS NULL ORDER BY version DESC LIMIT 1"),
            vec![gun.into(), role.into()],
        )
    }

    fn by_checksum(
        &self,
        gun: &str,
        role: &str,
        sha256: &str,
    ) -> Result<Option<Stored>, StorageError> {
        self.one(
            format!("SELECT {FILE_COLS} FROM tuf_files WHERE gun = ? AND role = ? AND sha256 = ? AND deleted_at IS NULL ORDER BY version DESC LIMIT 1"),
            vec![gun.into(), role.into(), sha256.to_lowercase().into()],
        )
    }

    fn by_version(
        &self,
        gun: &str,
        role: &str,
        version: i64,
    ) -> Result<Option<Stored>, StorageError> {
        let Ok(version) = i32::try_from(version) else {
            return Ok(None);
        };
        self.one(
            format!("SELECT {FILE_COLS} FROM tuf_files WHERE gun = ? AND role = ? AND version = ? AND deleted_at IS NULL"),
            vec![gun.into(), role.into(), version.into()],
        )
    }

    fn delete(&self, gun: &str, jobs: &[NewJob]) -> Result<bool, StorageError> {
        let now = now_ts();
        let mut feed = Vec::new();
        let existed = self.tx(Some(gun), |tx| {
            feed.clear();
            // notary hard-deletes (its unique key spans deleted rows); the rows move to the
            // tombstone table, kept for audit and recovery, never served.
            tx.exec_drop(
                "INSERT INTO tuf_files_deleted SELECT * FROM tuf_files WHERE gun = ?",
                (gun,),
            )
            .map_err(my)?;
            tx.exec_drop(
                "UPDATE tuf_files_deleted SET deleted_at = ? WHERE gun = ? AND deleted_at IS NULL",
                (now, gun),
            )
            .map_err(my)?;
            tx.exec_drop("DELETE FROM tuf_files WHERE gun = ?", (gun,))
                .map_err(my)?;
            let n = tx.affected_rows();
            if n > 0 {
                tx.exec_drop(
                    "INSERT INTO changefeed (created_at, gun, version, sha256, category) VALUES (?, ?, 0, '', 'deletion')",
                    (now, gun),
                )
                .map_err(my)?;
                feed.extend(tx.last_insert_id().map(|id| id as i64));
            }
            insert_jobs(tx, gun, jobs, now_nanos())?;
            migration::on_delete(tx, gun)?;
            migration::mark(tx, gun, true)?;
            Ok(n > 0)
        })?;
        self.own_rows(feed);
        Ok(existed)
    }

    fn changes(
        &self,
        gun: Option<&str>,
        change_id: i64,
        records: i64,
    ) -> Result<Vec<Change>, StorageError> {
        // notary's SQL GetChanges, as in the other stores.
        let reversed = change_id < 0 || records < 0;
        let limit = records.unsigned_abs() as i64;
        let (cond, order, mut params): (_, _, Vec<Value>) = if reversed {
            (
                "(? <= 0 OR id < ?)",
                "DESC",
                vec![change_id.into(), change_id.into()],
            )
        } else {
            ("id > ?", "ASC", vec![change_id.into()])
        };
        params.extend([gun.into(), gun.into(), limit.into()]);
        let sql = format!(
            "SELECT id, created_at, gun, version, COALESCE(sha256, ''), category FROM changefeed WHERE {cond} AND (? IS NULL OR gun = ?) ORDER BY id {order} LIMIT ?"
        );
        type ChangeRow = (i64, Option<PrimitiveDateTime>, String, i64, String, String);
        let rows: Vec<ChangeRow> = self.conn()?.exec(sql, params).map_err(my)?;
        let mut out: Vec<Change> = rows
            .into_iter()
            .map(|(id, created, gun, version, sha, category)| Change {
                id,
                created_at: created.map_or(OffsetDateTime::UNIX_EPOCH, |t| t.assume_utc()),
                gun,
                version,
                sha256: sha.trim().to_string(),
                category: if category == "deletion" {
                    "deletion"
                } else {
                    "update"
                },
            })
            .collect();
        if reversed {
            out.reverse();
        }
        Ok(out)
    }

    fn guns(&self) -> Result<Vec<String>, StorageError> {
        self.conn()?
            .query("SELECT DISTINCT gun FROM tuf_files WHERE deleted_at IS NULL ORDER BY gun")
            .map_err(my)
    }

    fn check_health(&self) -> Result<(), StorageError> {
        self.conn()?
            .query_drop("SELECT COUNT(*) FROM tuf_files WHERE 1 = 0")
            .map_err(my)
    }

    fn watch(&self, f: Watcher) {
        self.watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(f);
    }

    fn bridge_lease(&self) -> bool {
        self.lease.load(Ordering::Relaxed)
    }
}

impl MyStore {
    /// Lock the jobs `select` finds (`SELECT gun … FOR UPDATE`), run `update` on them and mark
    /// their GUNs, in one transaction (MySQL's UPDATE has no RETURNING); returns the rows changed.
    fn update_jobs(
        &self,
        select: &str,
        update: &str,
        params: Vec<Value>,
        update_params: Vec<Value>,
    ) -> Result<u64, StorageError> {
        self.tx(None, |tx| {
            let guns: Vec<String> = tx.exec(select, params.clone()).map_err(my)?;
            tx.exec_drop(update, update_params.clone()).map_err(my)?;
            let n = tx.affected_rows();
            let unique: std::collections::BTreeSet<&String> = guns.iter().collect();
            for g in unique {
                migration::mark(tx, g, false)?;
            }
            Ok(n)
        })
    }
}

impl Outbox for MyStore {
    fn due_jobs(&self, limit: i64) -> Result<Vec<Job>, StorageError> {
        let rows: Vec<JobRow> = self
            .conn()?
            .exec(
                format!("SELECT {JOB_COLS} FROM bridge_jobs WHERE state IN ('pending', 'failed') AND next_at <= ? ORDER BY id LIMIT ?"),
                (now_nanos(), limit),
            )
            .map_err(my)?;
        rows.into_iter().map(job).collect()
    }

    fn finish_job(&self, id: i64, finish: Finish) -> Result<(), StorageError> {
        let now = now_nanos();
        let (state, error, retry_in) = finish.parts();
        self.update_jobs(
            "SELECT gun FROM bridge_jobs WHERE id = ? FOR UPDATE",
            "UPDATE bridge_jobs SET state = ?, updated_at = ?, attempts = attempts + 1, last_error = ?, next_at = ? WHERE id = ?",
            vec![id.into()],
            vec![
                state.as_str().into(),
                now.into(),
                error.map(str::to_string).into(),
                (now + retry_in.as_nanos() as i64).into(),
                id.into(),
            ],
        )
        .map(|_| ())
    }

    fn job_states(&self) -> Result<Vec<(JobState, i64)>, StorageError> {
        let rows: Vec<(String, i64)> = self
            .conn()?
            .query("SELECT state, COUNT(*) FROM bridge_jobs GROUP BY state")
            .map_err(my)?;
        rows.into_iter()
            .map(|(state, n)| {
                JobState::parse(&state)
                    .map(|st| (st, n))
                    .ok_or_else(|| unknown("state", &state))
            })
            .collect()
    }

    fn requeue(&self, prefix: &str) -> Result<usize, StorageError> {
        const WHERE: &str =
            "state IN ('dead', 'not-configured', 'failed') AND LEFT(gun, CHAR_LENGTH(?)) = ?";
        let now = now_nanos();
        self.update_jobs(
            &format!("SELECT gun FROM bridge_jobs WHERE {WHERE} FOR UPDATE"),
            &format!("UPDATE bridge_jobs SET state = 'pending', attempts = 0, next_at = ?, updated_at = ? WHERE {WHERE}"),
            vec![prefix.into(), prefix.into()],
            vec![now.into(), now.into(), prefix.into(), prefix.into()],
        )
        .map(|n| n as usize)
    }

    fn drop_job(&self, id: i64) -> Result<bool, StorageError> {
        const WHERE: &str = "id = ? AND state IN ('pending', 'failed', 'dead')";
        self.update_jobs(
            &format!("SELECT gun FROM bridge_jobs WHERE {WHERE} FOR UPDATE"),
            &format!("UPDATE bridge_jobs SET state = 'dropped', updated_at = ? WHERE {WHERE}"),
            vec![id.into()],
            vec![now_nanos().into(), id.into()],
        )
        .map(|n| n > 0)
    }

    fn enqueue(&self, gun: &str, jobs: &[NewJob]) -> Result<(), StorageError> {
        self.tx(None, |tx| {
            insert_jobs(tx, gun, jobs, now_nanos())?;
            migration::mark(tx, gun, false)
        })
    }

    fn has_job(&self, gun: &str, job: &NewJob) -> Result<bool, StorageError> {
        let found: Option<bool> = self
            .conn()?
            .exec_first(
                "SELECT EXISTS(SELECT 1 FROM bridge_jobs WHERE gun = ? AND tag = ? AND role = ? AND digest = ? AND action = ? AND signers = ?)",
                (gun, &job.tag, &job.role, &job.digest_hex, job.action.as_str(), &job.signers),
            )
            .map_err(my)?;
        Ok(found == Some(true))
    }

    fn jobs_for(&self, gun: &str) -> Result<Vec<Job>, StorageError> {
        let rows: Vec<JobRow> = self
            .conn()?
            .exec(
                format!("SELECT {JOB_COLS} FROM bridge_jobs WHERE gun = ? ORDER BY id DESC"),
                (gun,),
            )
            .map_err(my)?;
        rows.into_iter().map(job).collect()
    }

    fn record_checks(&self, gun: &str, checks: &[TagCheck]) -> Result<(), StorageError> {
        self.put_checks(gun, checks)
    }

    fn checks_for(&self, gun: &str) -> Result<Vec<TagCheck>, StorageError> {
        self.get_checks(gun)
    }

    fn check_counts(&self, now: OffsetDateTime) -> Result<(i64, i64), StorageError> {
        self.count_checks(now)
    }
}
