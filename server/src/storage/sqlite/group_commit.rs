//! Group commit of updates: publishes that arrive while another is committing are written in
//! one transaction, each in its own savepoint.
//!
//! A commit's cost is mostly the pages it writes to the WAL (a whole page per page touched:
//! the `tuf_files` leaf and index pages, the changefeed's, the renewal and dirty marks) and
//! the checkpoints that copy them back; concurrent publishes touch the same pages. Measured
//! with bench/scale.sh's 16 publishers: the commit was about a fifth of the CPU per publish.
//!
//! Semantics are those of one transaction per update: updates are written in arrival order
//! and each sees the ones before it; one that loses to a stored version gets its conflict
//! (found before it writes anything, so no savepoint is needed: a savepoint copies every page
//! it touches to a statement journal first, which cost more than the batching saved); any
//! other failure rolls the whole batch back and every update in it fails; nobody gets an
//! answer before the transaction that holds their update has committed, and if that commit
//! fails every update in it fails.
//!
//! No thread waits for company: an update that finds the connection free commits alone. The
//! caller that takes the connection (the leader) writes every update queued by then; callers
//! that were queued behind it find their result when they get the connection in turn.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use time::OffsetDateTime;

use crate::storage::error::{StorageError, StorageErrorKind};
use crate::storage::{NewJob, Update};

/// One caller's update and, once written, its outcome.
pub(super) struct Pending {
    gun: String,
    updates: Vec<Update>,
    jobs: Vec<NewJob>,
    outcome: Mutex<Option<Result<OffsetDateTime, StorageError>>>,
}

/// Updates waiting for the connection.
#[derive(Default)]
pub(super) struct Queue(Mutex<Vec<Arc<Pending>>>);

/// What writes one update on an open transaction (the store's `update_many` body).
pub(super) type WriteOne = fn(&Connection, &str, &[Update], &[NewJob]) -> Result<i64, StorageError>;

impl Queue {
    /// Queue an update; returns the handle to [`Self::run`] with.
    pub(super) fn push(&self, gun: &str, updates: &[Update], jobs: &[NewJob]) -> Arc<Pending> {
        let p = Arc::new(Pending {
            gun: gun.to_string(),
            updates: updates.to_vec(),
            jobs: jobs.to_vec(),
            outcome: Mutex::new(None),
        });
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(p.clone());
        p
    }

    /// With the connection held: `mine`'s outcome if a leader before us wrote it, else write
    /// every queued update (ours among them) in one transaction and return ours.
    pub(super) fn run(
        &self,
        db: &Connection,
        mine: &Pending,
        write: WriteOne,
    ) -> Result<OffsetDateTime, StorageError> {
        if let Some(done) = take(mine) {
            return done;
        }
        let batch = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        let results = write_batch(db, &batch, write);
        for (p, r) in batch.iter().zip(results) {
            *p.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        }
        take(mine).unwrap_or_else(|| {
            Err(StorageError::new(
                StorageErrorKind::Unavailable,
                "an update was not in the batch that held the connection",
            ))
        })
    }
}

fn take(p: &Pending) -> Option<Result<OffsetDateTime, StorageError>> {
    p.outcome.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// One transaction, one savepoint per update; the outcome of each, in order.
fn write_batch(
    db: &Connection,
    batch: &[Arc<Pending>],
    write: WriteOne,
) -> Vec<Result<OffsetDateTime, StorageError>> {
    let failed = |what: &str, cause: String| {
        batch
            .iter()
            .map(|_| {
                Err(StorageError::caused(
                    StorageErrorKind::Unavailable,
                    what.to_string(),
                    cause.clone(),
                ))
            })
            .collect()
    };
    if let Err(e) = db.execute_batch("BEGIN") {
        return failed("SQLite BEGIN", e.to_string());
    }
    let mut out: Vec<Result<OffsetDateTime, StorageError>> = Vec::with_capacity(batch.len());
    for p in batch {
        match write(db, &p.gun, &p.updates, &p.jobs) {
            Ok(now) => out.push(Ok(crate::storage::time_of(now))),
            // Found before anything of this update was written: the others go on.
            Err(e) if e.is_conflict() => out.push(Err(e)),
            Err(e) => {
                // Part of this update may be written: nothing of the batch is kept.
                let _ = db.execute_batch("ROLLBACK");
                let cause = e.to_string();
                return batch
                    .iter()
                    .map(|q| {
                        Err(match std::ptr::eq(q.as_ref(), p.as_ref()) {
                            true => StorageError::caused(e.kind, "SQLite update", cause.clone()),
                            false => StorageError::caused(
                                StorageErrorKind::Unavailable,
                                "SQLite update, rolled back with another in its batch",
                                cause.clone(),
                            ),
                        })
                    })
                    .collect();
            }
        }
    }
    if let Err(e) = db.execute_batch("COMMIT") {
        let _ = db.execute_batch("ROLLBACK");
        return failed("SQLite COMMIT", e.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::storage::sqlite::SqliteStore;
    use crate::storage::{MetaStore, Update};

    fn file(role: &str, version: i64, tag: &str) -> Update {
        Update {
            role: role.into(),
            version,
            data: format!("{{\"{role}\":{version},\"by\":\"{tag}\"}}")
                .as_bytes()
                .into(),
        }
    }

    /// Sixteen writers at once, each publishing versions 1..=20 of its own GUN and racing
    /// with the others for version 1..=20 of a shared one: every update either commits or
    /// gets a conflict, exactly one writer wins each shared version, and what answered Ok is
    /// what is stored — whichever batches the updates shared.
    #[test]
    fn concurrent_updates_commit_or_conflict_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
        let writers: Vec<_> = (0..16)
            .map(|w| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut won = Vec::new();
                    for v in 1..=20 {
                        let own = format!("own/{w}");
                        store
                            .update_many(
                                &own,
                                &[file("targets", v, "me"), file("timestamp", v, "me")],
                                &[],
                            )
                            .expect("an update of its own GUN commits");
                        let tag = format!("w{w}");
                        match store.update_many("shared/gun", &[file("targets", v, &tag)], &[]) {
                            Ok(_) => won.push(v),
                            Err(e) => assert!(e.is_conflict(), "{e}"),
                        }
                    }
                    won
                })
            })
            .collect();
        let mut winners: std::collections::BTreeMap<i64, usize> = Default::default();
        for (w, h) in writers.into_iter().enumerate() {
            for v in h.join().unwrap() {
                assert!(winners.insert(v, w).is_none(), "version {v} won twice");
                let stored = store
                    .by_version("shared/gun", "targets", v)
                    .unwrap()
                    .unwrap();
                assert!(
                    String::from_utf8_lossy(&stored.data).contains(&format!("\"w{w}\"")),
                    "version {v} is the winner's bytes"
                );
            }
        }
        assert_eq!(winners.len(), 20, "every shared version was won once");
        for w in 0..16 {
            let latest = store
                .latest(&format!("own/{w}"), "timestamp")
                .unwrap()
                .unwrap();
            assert_eq!(latest.version, 20);
        }
    }
}
