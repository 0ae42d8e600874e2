//! PostgreSQL storage, for several replicas sharing one database (tokio-postgres +
//! deadpool-postgres). The metadata tables are notary-server's own PostgreSQL schema
//! (reference §6: `tuf_files`, `changefeed`, `change_category`), created when missing, so
//! trustbridge-server can take over a database notary-server wrote, and the reverse.
//! Beside them: `tuf_files_deleted` (notary hard-deletes a GUN; its rows are kept here as
//! tombstones, never served) and `bridge_jobs` (the Cosign outbox).
//!
//! Between replicas:
//! - every write takes a per-GUN transaction lock (`pg_advisory_xact_lock`), so two replicas
//!   never both pass the "no newer version" check for the same GUN;
//! - a commit notifies `trustbridge_changes` with the GUN; each replica LISTENs and drops its
//!   in-memory view of that GUN (all of them after a lost connection, when changes may have
//!   been missed); writers that do not notify (notary-server on the same database) are seen
//!   through the changefeed, read every second;
//! - one replica at a time holds the bridge lease (a session advisory lock); it passes to
//!   another when that replica's connection goes.
//!
//! The [`MetaStore`] trait is synchronous (SQLite answers in microseconds on the calling
//! worker). Here each call runs on the store's own small runtime and the caller waits for it:
//! one loopback round trip per query, never a runtime nested in another.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use time::{OffsetDateTime, PrimitiveDateTime};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

mod checks;
mod migration;
mod renewals;
mod replicas;
mod schema;

use replicas::{CHANNEL, listen};
pub use schema::{DbUrl, parse_url};
use schema::{SCHEMA, SCHEMA_LOCK};

use super::outbox::unknown;
use super::{
    Change, Finish, Job, JobState, MetaStore, NewJob, Outbox, Stored, TagCheck, Update, Watcher,
    sha256_hex,
};
use super::{now_nanos, time_of};
use crate::storage::error::{StorageError, StorageErrorKind};

/// A PostgreSQL failure: a unique key lost is a conflict, a connection or server failure is
/// unavailable.
fn pg(e: tokio_postgres::Error) -> StorageError {
    let kind = if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        StorageErrorKind::Conflict
    } else {
        StorageErrorKind::Unavailable
    };
    StorageError::caused(kind, "PostgreSQL", e)
}

fn pool_err(e: deadpool_postgres::PoolError) -> StorageError {
    StorageError::caused(StorageErrorKind::Unavailable, "PostgreSQL pool", e)
}

/// notary's columns are `timestamp` (no zone), written in UTC.
fn now_ts() -> PrimitiveDateTime {
    let n = OffsetDateTime::now_utc();
    // PostgreSQL keeps microseconds; round here so what is returned equals what is stored.
    let n = n
        .replace_nanosecond(n.nanosecond() / 1000 * 1000)
        .unwrap_or(n);
    PrimitiveDateTime::new(n.date(), n.time())
}

const FILE_COLS: &str = "role, version, data, sha256, created_at";

fn stored(r: &Row) -> Stored {
    let data: Vec<u8> = r.get(2);
    let sha: Option<String> = r.get(3);
    let created: Option<PrimitiveDateTime> = r.get(4);
    Stored {
        role: r.get(0),
        version: r.get::<_, i32>(1).into(),
        sha256: sha
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| sha256_hex(&data)),
        data: data.into(),
        created_at: created.map_or(OffsetDateTime::UNIX_EPOCH, |t| t.assume_utc()),
    }
}

const JOB_COLS: &str =
    "id, gun, tag, digest, role, state, attempts, last_error, updated_at, action, signers";

fn job(r: &Row) -> Result<Job, StorageError> {
    let state: String = r.get(5);
    let action: String = r.get(9);
    Ok(Job {
        id: r.get(0),
        gun: r.get(1),
        tag: r.get(2),
        digest_hex: r.get::<_, String>(3).trim().to_string(),
        role: r.get(4),
        state: JobState::parse(&state).ok_or_else(|| unknown("state", &state))?,
        attempts: r.get(6),
        last_error: r.get(7),
        updated_at: time_of(r.get(8)),
        action: super::Action::parse(&action).ok_or_else(|| unknown("action", &action))?,
        signers: r.get(10),
    })
}

async fn insert_jobs(
    tx: &deadpool_postgres::Transaction<'_>,
    gun: &str,
    jobs: &[NewJob],
    now: i64,
) -> Result<(), StorageError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let st = tx
        .prepare_cached(
            "INSERT INTO bridge_jobs (created_at, updated_at, gun, tag, digest, role, action, next_at, signers) VALUES ($1, $1, $2, $3, $4, $5, $6, $1, $7)",
        )
        .await
        .map_err(pg)?;
    for j in jobs {
        tx.execute(
            &st,
            &[
                &now,
                &gun,
                &j.tag,
                &j.digest_hex,
                &j.role,
                &j.action.as_str(),
                &j.signers,
            ],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}

/// The per-GUN writer lock, held until `tx` ends: replicas write one GUN in turn.
async fn lock_gun(tx: &deadpool_postgres::Transaction<'_>, gun: &str) -> Result<(), StorageError> {
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&gun])
        .await
        .map_err(pg)
        .map(|_| ())
}

/// Tell the other replicas, when `tx` commits, that `note`'s GUN changed.
async fn notify_on_commit(
    tx: &deadpool_postgres::Transaction<'_>,
    note: &str,
) -> Result<(), StorageError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &note])
        .await
        .map_err(pg)
        .map(|_| ())
}

pub struct PgStore {
    /// `Some` until drop.
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    lease: Arc<AtomicBool>,
    watchers: Arc<Mutex<Vec<Watcher>>>,
    /// Tells this process's own notifications from other replicas'.
    instance: String,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // A runtime may not be dropped inside another's async context; shutting it down in
        // the background may.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl PgStore {
    /// Connect, create the schema when missing (one replica at a time), start listening.
    pub fn open(url: &str) -> Result<Self, StorageError> {
        let DbUrl { config, tls } = parse_url(url)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("trustbridge-pg")
            .enable_all()
            .build()
            .map_err(|e| StorageError::caused(StorageErrorKind::Config, "PostgreSQL runtime", e))?;
        let mc = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            None => Manager::from_config(config.clone(), NoTls, mc()),
            Some(c) => Manager::from_config(
                config.clone(),
                trustbridge_db::pg_tls::MakeRustls(c.clone()),
                mc(),
            ),
        };
        let pool = {
            let _guard = rt.enter();
            Pool::builder(manager)
                .max_size(16)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .map_err(|e| StorageError::caused(StorageErrorKind::Config, "PostgreSQL pool", e))?
        };
        let store = PgStore {
            rt: Some(rt),
            pool,
            lease: Arc::new(AtomicBool::new(false)),
            watchers: Arc::new(Mutex::new(Vec::new())),
            instance: format!("{}-{}", std::process::id(), now_nanos()),
        };
        store.run(|pool| async move {
            let mut c = pool.get().await.map_err(pool_err)?;
            let tx = c.transaction().await.map_err(pg)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
                .await
                .map_err(pg)?;
            tx.batch_execute(SCHEMA).await.map_err(pg)?;
            tx.batch_execute(crate::storage::renewals::SCHEMA)
                .await
                .map_err(pg)?;
            tx.batch_execute(crate::storage::migration::SCHEMA)
                .await
                .map_err(pg)?;
            tx.commit().await.map_err(pg)
        })?;
        let (lease, watchers, instance) = (
            store.lease.clone(),
            store.watchers.clone(),
            store.instance.clone(),
        );
        match tls {
            None => store
                .rt()
                .spawn(listen(config, NoTls, lease, watchers, instance)),
            Some(c) => store.rt().spawn(listen(
                config,
                trustbridge_db::pg_tls::MakeRustls(c),
                lease,
                watchers,
                instance,
            )),
        };
        Ok(store)
    }

    /// The notification payload for `gun`: `<instance>\t<gun>`, so a replica skips its own.
    fn note(&self, gun: &str) -> String {
        format!("{}\t{gun}", self.instance)
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("the runtime lives until drop")
    }

    /// Run `f` on the store's runtime and wait for it.
    fn run<T, F>(&self, f: impl FnOnce(Pool) -> F + Send + 'static) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StorageError>> + Send + 'static,
    {
        let pool = self.pool.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt().spawn(async move {
            let _ = tx.send(f(pool).await);
        });
        rx.recv().map_err(|_| {
            StorageError::new(
                StorageErrorKind::Unavailable,
                "PostgreSQL: the store's task stopped",
            )
        })?
    }

    fn one(
        &self,
        sql: String,
        gun: &str,
        role: &str,
        extra: Extra,
    ) -> Result<Option<Stored>, StorageError> {
        let (gun, role) = (gun.to_string(), role.to_string());
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let st = c.prepare_cached(&sql).await.map_err(pg)?;
            let row = match extra {
                Extra::None => c.query_opt(&st, &[&gun, &role]).await,
                Extra::Text(t) => c.query_opt(&st, &[&gun, &role, &t]).await,
                Extra::Int(v) => c.query_opt(&st, &[&gun, &role, &v]).await,
            }
            .map_err(pg)?;
            Ok(row.as_ref().map(stored))
        })
    }
}

enum Extra {
    None,
    Text(String),
    Int(i32),
}

/// An owned query parameter (calls cross to the store's runtime).
enum Param {
    I64(i64),
    Text(String),
    /// SQL NULL (text column).
    Null,
}

impl Param {
    fn as_sql(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        match self {
            Param::I64(v) => v,
            Param::Null => &None::<String>,
            Param::Text(v) => v,
        }
    }
}

impl MetaStore for PgStore {
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
        let (gun, updates, jobs) = (gun.to_string(), updates.to_vec(), jobs.to_vec());
        let trust =
            crate::storage::migration::touches_trust(updates.iter().map(|u| u.role.as_str()));
        let note = self.note(&gun);
        self.run(move |pool| async move {
            let mut c = pool.get().await.map_err(pool_err)?;
            let tx = c.transaction().await.map_err(pg)?;
            lock_gun(&tx, &gun).await?;
            let now = now_ts();
            for u in &updates {
                let version = i32::try_from(u.version).map_err(|_| StorageError::conflict())?;
                let newer: bool = tx
                    .query_one(
                        "SELECT EXISTS(SELECT 1 FROM tuf_files WHERE gun = $1 AND role = $2 AND version >= $3 AND deleted_at IS NULL)",
                        &[&gun, &u.role, &version],
                    )
                    .await
                    .map_err(pg)?
                    .get(0);
                if newer {
                    return Err(StorageError::conflict());
                }
                let sha = sha256_hex(&u.data);
                tx.execute(
                    "INSERT INTO tuf_files (created_at, updated_at, gun, role, version, data, sha256) VALUES ($1, $1, $2, $3, $4, $5, $6)",
                    &[&now, &gun, &u.role, &version, &&u.data[..], &sha],
                )
                .await
                .map_err(pg)?;
                if u.role == "timestamp" {
                    tx.execute(
                        "INSERT INTO changefeed (created_at, gun, version, sha256, category) VALUES ($1, $2, $3, $4, 'update')",
                        &[&now, &gun, &version, &sha],
                    )
                    .await
                    .map_err(pg)?;
                }
            }
            insert_jobs(&tx, &gun, &jobs, now_nanos()).await?;
            renewals::on_update(&tx, &gun, &updates).await?;
            if trust || !jobs.is_empty() {
                migration::mark(&tx, &gun, trust).await?;
            }
            notify_on_commit(&tx, &note).await?;
            tx.commit().await.map_err(pg)?;
            Ok(now.assume_utc())
        })
    }

    fn latest(&self, gun: &str, role: &str) -> Result<Option<Stored>, StorageError> {
        self.one(
            format!("SELECT {FILE_COLS} FROM tuf_files WHERE gun = $1 AND role = $2 AND deleted_at IS NULL ORDER BY version DESC LIMIT 1"),
            gun,
            role,
            Extra::None,
        )
    }

    fn by_checksum(
        &self,
        gun: &str,
        role: &str,
        sha256: &str,
    ) -> Result<Option<Stored>, StorageError> {
        self.one(
            format!("SELECT {FILE_COLS} FROM tuf_files WHERE gun = $1 AND role = $2 AND sha256 = $3 AND deleted_at IS NULL ORDER BY version DESC LIMIT 1"),
            gun,
            role,
            Extra::Text(sha256.to_lowercase()),
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
            format!("SELECT {FILE_COLS} FROM tuf_files WHERE gun = $1 AND role = $2 AND version = $3 AND deleted_at IS NULL"),
            gun,
            role,
            Extra::Int(version),
        )
    }

    fn delete(&self, gun: &str, jobs: &[NewJob]) -> Result<bool, StorageError> {
        let (gun, jobs) = (gun.to_string(), jobs.to_vec());
        let note = self.note(&gun);
        self.run(move |pool| async move {
            let mut c = pool.get().await.map_err(pool_err)?;
            let tx = c.transaction().await.map_err(pg)?;
            lock_gun(&tx, &gun).await?;
            let now = now_ts();
            // notary hard-deletes (its unique key spans deleted rows); the rows move to the
            // tombstone table, kept for audit and recovery, never served.
            tx.execute(
                "INSERT INTO tuf_files_deleted SELECT * FROM tuf_files WHERE gun = $1",
                &[&gun],
            )
            .await
            .map_err(pg)?;
            tx.execute(
                "UPDATE tuf_files_deleted SET deleted_at = $1 WHERE gun = $2 AND deleted_at IS NULL",
                &[&now, &gun],
            )
            .await
            .map_err(pg)?;
            let n = tx
                .execute("DELETE FROM tuf_files WHERE gun = $1", &[&gun])
                .await
                .map_err(pg)?;
            if n > 0 {
                tx.execute(
                    "INSERT INTO changefeed (created_at, gun, version, sha256, category) VALUES ($1, $2, 0, '', 'deletion')",
                    &[&now, &gun],
                )
                .await
                .map_err(pg)?;
                notify_on_commit(&tx, &note).await?;
            }
            insert_jobs(&tx, &gun, &jobs, now_nanos()).await?;
            renewals::on_delete(&tx, &gun).await?;
            migration::mark(&tx, &gun, true).await?;
            tx.commit().await.map_err(pg)?;
            Ok(n > 0)
        })
    }

    fn changes(
        &self,
        gun: Option<&str>,
        change_id: i64,
        records: i64,
    ) -> Result<Vec<Change>, StorageError> {
        let gun = gun.map(str::to_string);
        // notary's SQL GetChanges, as in the SQLite store.
        let reversed = change_id < 0 || records < 0;
        let limit = records.unsigned_abs() as i64;
        let (cond, order) = if reversed {
            ("($1::bigint <= 0 OR id < $1::bigint)", "DESC")
        } else {
            ("id > $1::bigint", "ASC")
        };
        let sql = format!(
            "SELECT id::bigint, created_at, gun, version, COALESCE(sha256, ''), category FROM changefeed WHERE {cond} AND ($2::text IS NULL OR gun = $2) ORDER BY id {order} LIMIT $3"
        );
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let rows = c
                .query(&sql, &[&change_id, &gun, &limit])
                .await
                .map_err(pg)?;
            let mut out: Vec<Change> = rows
                .iter()
                .map(|r| {
                    let category: String = r.get(5);
                    let created: Option<PrimitiveDateTime> = r.get(1);
                    Change {
                        id: r.get(0),
                        created_at: created.map_or(OffsetDateTime::UNIX_EPOCH, |t| t.assume_utc()),
                        gun: r.get(2),
                        version: r.get::<_, i32>(3).into(),
                        sha256: r.get::<_, String>(4).trim().to_string(),
                        category: if category == "deletion" {
                            "deletion"
                        } else {
                            "update"
                        },
                    }
                })
                .collect();
            if reversed {
                out.reverse();
            }
            Ok(out)
        })
    }

    fn guns(&self) -> Result<Vec<String>, StorageError> {
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let rows = c
                .query(
                    "SELECT DISTINCT gun FROM tuf_files WHERE deleted_at IS NULL ORDER BY gun",
                    &[],
                )
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn check_health(&self) -> Result<(), StorageError> {
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            c.query_one("SELECT COUNT(*) FROM tuf_files WHERE 1 = 0", &[])
                .await
                .map_err(pg)
                .map(|_| ())
        })
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

impl Outbox for PgStore {
    fn due_jobs(&self, limit: i64) -> Result<Vec<Job>, StorageError> {
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let rows = c
                .query(
                    &format!("SELECT {JOB_COLS} FROM bridge_jobs WHERE state IN ('pending', 'failed') AND next_at <= $1 ORDER BY id LIMIT $2"),
                    &[&now_nanos(), &limit],
                )
                .await
                .map_err(pg)?;
            rows.iter().map(job).collect()
        })
    }

    fn finish_job(&self, id: i64, finish: Finish) -> Result<(), StorageError> {
        let now = now_nanos();
        let (state, error, retry_in) = finish.parts();
        self.update_jobs(
            "UPDATE bridge_jobs SET state = $1, updated_at = $2, attempts = attempts + 1, last_error = $3, next_at = $4 WHERE id = $5 RETURNING gun",
            vec![
                Param::Text(state.as_str().to_string()),
                Param::I64(now),
                match error {
                    Some(e) => Param::Text(e.to_string()),
                    None => Param::Null,
                },
                Param::I64(now + retry_in.as_nanos() as i64),
                Param::I64(id),
            ],
        )
        .map(|_| ())
    }

    fn job_states(&self) -> Result<Vec<(JobState, i64)>, StorageError> {
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let rows = c
                .query(
                    "SELECT state, COUNT(*) FROM bridge_jobs GROUP BY state",
                    &[],
                )
                .await
                .map_err(pg)?;
            rows.iter()
                .map(|r| {
                    let state: String = r.get(0);
                    JobState::parse(&state)
                        .map(|st| (st, r.get(1)))
                        .ok_or_else(|| unknown("state", &state))
                })
                .collect()
        })
    }

    fn requeue(&self, prefix: &str) -> Result<usize, StorageError> {
        self.update_jobs(
            "UPDATE bridge_jobs SET state = 'pending', attempts = 0, next_at = $1, updated_at = $1 WHERE state IN ('dead', 'not-configured', 'failed') AND left(gun, length($2)) = $2 RETURNING gun",
            vec![Param::I64(now_nanos()), Param::Text(prefix.into())],
        )
        .map(|n| n as usize)
    }

    fn drop_job(&self, id: i64) -> Result<bool, StorageError> {
        self.update_jobs(
            "UPDATE bridge_jobs SET state = 'dropped', updated_at = $1 WHERE id = $2 AND state IN ('pending', 'failed', 'dead') RETURNING gun",
            vec![Param::I64(now_nanos()), Param::I64(id)],
        )
        .map(|n| n > 0)
    }

    fn enqueue(&self, gun: &str, jobs: &[NewJob]) -> Result<(), StorageError> {
        let (gun, jobs) = (gun.to_string(), jobs.to_vec());
        self.run(move |pool| async move {
            let mut c = pool.get().await.map_err(pool_err)?;
            let tx = c.transaction().await.map_err(pg)?;
            insert_jobs(&tx, &gun, &jobs, now_nanos()).await?;
            migration::mark(&tx, &gun, false).await?;
            tx.commit().await.map_err(pg)
        })
    }

    fn has_job(&self, gun: &str, job: &NewJob) -> Result<bool, StorageError> {
        let (gun, job) = (gun.to_string(), job.clone());
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let r = c
                .query_one(
                    "SELECT EXISTS(SELECT 1 FROM bridge_jobs WHERE gun = $1 AND tag = $2 AND role = $3 AND digest = $4 AND action = $5 AND signers = $6)",
                    &[
                        &gun,
                        &job.tag,
                        &job.role,
                        &job.digest_hex,
                        &job.action.as_str(),
                        &job.signers,
                    ],
                )
                .await
                .map_err(pg)?;
            Ok(r.get(0))
        })
    }

    fn jobs_for(&self, gun: &str) -> Result<Vec<Job>, StorageError> {
        let gun = gun.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let rows = c
                .query(
                    &format!("SELECT {JOB_COLS} FROM bridge_jobs WHERE gun = $1 ORDER BY id DESC"),
                    &[&gun],
                )
                .await
                .map_err(pg)?;
            rows.iter().map(job).collect()
        })
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
