//! Group commit of updates on the store's own writer thread: updates that arrive while
//! another batch commits are written together in the next transaction.
//!
//! A commit's cost is mostly the pages it writes to the WAL (a whole page per page touched:
//! the `tuf_files` leaf and index pages, the changefeed's, the renewal and dirty marks) and
//! the checkpoints that copy them back; concurrent publishes touch the same pages. Measured
//! with bench/scale.sh's 16 publishers: the commit was about a fifth of the CPU per publish.
//! One thread owns the writing, so a publish costs no blocking-pool thread and no chain of
//! callers waking each other through the connection's lock: the writer takes every queued
//! update, commits, and answers each caller through its own channel (an async caller awaits
//! it on its worker; [`crate::storage::MetaStore::update_many`] blocks on it).
//!
//! Semantics are those of one transaction per update: updates are written in arrival order
//! and each sees the ones before it; one that loses to a stored version gets its conflict
//! (found before it writes anything, so no savepoint is needed: a savepoint copies every page
//! it touches to a statement journal first, which cost more than the batching saved); any
//! other failure rolls the whole batch back and every update in it fails; nobody gets an
//! answer before the transaction that holds their update has committed, and if that commit
//! fails every update in it fails. No update waits for company: the writer starts on the
//! first one it finds.

use std::sync::{Arc, Condvar, Mutex};

use rusqlite::Connection;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::storage::error::{StorageError, StorageErrorKind};
use crate::storage::{NewJob, Update};

type Outcome = Result<OffsetDateTime, StorageError>;

/// One caller's update and where its outcome goes.
struct Pending {
    gun: String,
    updates: Vec<Update>,
    jobs: Vec<NewJob>,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct State {
    queue: Vec<Pending>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    work: Condvar,
}

/// What writes one update on an open transaction (the store's `update_many` body).
pub(super) type WriteOne = fn(&Connection, &str, &[Update], &[NewJob]) -> Result<i64, StorageError>;

/// The writer thread and its queue; dropping it lets the thread finish what is queued and
/// waits for it (the connection is then free to close).
pub(super) struct Writer {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    pub(super) fn start(conn: Arc<Mutex<Connection>>, write: WriteOne) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(&s, &conn, write))?;
        Ok(Writer {
            shared,
            thread: Some(thread),
        })
    }

    /// Queue an update; its outcome arrives on the returned channel once its batch committed
    /// (or failed).
    pub(super) fn submit(
        &self,
        gun: &str,
        updates: &[Update],
        jobs: &[NewJob],
    ) -> oneshot::Receiver<Outcome> {
        let (reply, rx) = oneshot::channel();
        let p = Pending {
            gun: gun.to_string(),
            updates: updates.to_vec(),
            jobs: jobs.to_vec(),
            reply,
        };
        let mut st = lock(&self.shared.state);
        if st.closed {
            let _ = p.reply.send(Err(StorageError::new(
                StorageErrorKind::Unavailable,
                "the SQLite store is closing",
            )));
        } else {
            st.queue.push(p);
            self.shared.work.notify_one();
        }
        rx
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.work.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The writer: take everything queued, write it in one transaction, answer, repeat; leave
/// once closed and drained.
fn run(shared: &Shared, conn: &Mutex<Connection>, write: WriteOne) {
    loop {
        let batch = {
            let mut st = lock(&shared.state);
            while st.queue.is_empty() && !st.closed {
                st = shared.work.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.queue.is_empty() {
                return;
            }
            std::mem::take(&mut st.queue)
        };
        let results = write_batch(&lock(conn), &batch, write);
        for (p, r) in batch.into_iter().zip(results) {
            // A caller that stopped waiting (its request was dropped) still had its update
            // committed; nothing to tell it.
            let _ = p.reply.send(r);
        }
    }
}

/// One transaction; the outcome of each update, in order.
fn write_batch(db: &Connection, batch: &[Pending], write: WriteOne) -> Vec<Outcome> {
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
    // IMMEDIATE: the write lock is taken first, so another process holding it (an offline
    // command on the same file) is waited for (busy_timeout), not met halfway through.
    if let Err(e) = db.execute_batch("BEGIN IMMEDIATE") {
        return failed("SQLite BEGIN", e.to_string());
    }
    let mut out: Vec<Outcome> = Vec::with_capacity(batch.len());
    for (i, p) in batch.iter().enumerate() {
        match write(db, &p.gun, &p.updates, &p.jobs) {
            Ok(now) => out.push(Ok(crate::storage::time_of(now))),
            // Found before anything of this update was written: the others go on.
            Err(e) if e.is_conflict() => out.push(Err(e)),
            Err(e) => {
                // Part of this update may be written: nothing of the batch is kept.
                let _ = db.execute_batch("ROLLBACK");
                let cause = e.to_string();
                return (0..batch.len())
                    .map(|j| {
                        Err(match j == i {
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

    /// A multi-megabyte file comes back byte for byte, by version and by checksum, beside a
    /// small one of the same update, and a later conflicting update leaves it as it was.
    #[test]
    fn large_files_are_stored_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        let big: Vec<u8> = (0..(3usize << 20) + 7)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let updates = [
            Update {
                role: "targets".into(),
                version: 1,
                data: big.clone().into(),
            },
            file("timestamp", 1, "small"),
        ];
        store.update_many("big/gun", &updates, &[]).unwrap();
        let e = store
            .update_many("big/gun", &[file("targets", 1, "again")], &[])
            .unwrap_err();
        assert!(e.is_conflict(), "{e}");
        let sha = crate::storage::sha256_hex(&big);
        for got in [
            store.latest("big/gun", "targets").unwrap().unwrap(),
            store.by_version("big/gun", "targets", 1).unwrap().unwrap(),
            store
                .by_checksum("big/gun", "targets", &sha)
                .unwrap()
                .unwrap(),
        ] {
            assert_eq!(got.sha256, sha);
            assert!(got.data[..] == big[..], "the stored bytes are the upload's");
        }
        let ts = store.latest("big/gun", "timestamp").unwrap().unwrap();
        assert_eq!(&ts.data[..], &updates[1].data[..]);
    }
}
