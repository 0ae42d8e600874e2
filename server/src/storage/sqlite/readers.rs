//! Connections for file reads beside the writer, and the planner setting every connection of
//! the store uses.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

use super::storage;
use crate::storage::error::StorageError;

/// How many read connections a file-backed store opens.
const READERS: usize = 4;

/// Plans that do not depend on bound values (SQLite's query planner stability guarantee).
/// Without it the bundled SQLite (3.54) marks a parameter as plan-relevant whenever it weighs
/// a `column = ?` term that a candidate index leaves unused (`sqlite3ExprIsInteger` ->
/// `sqlite3VdbeReprepareOnBind`) and then re-prepares the statement each time that parameter
/// is bound to a new value: a cached statement was parsed and planned again on nearly every
/// run, half the CPU of a GET served from the store (perf, cold GETs at 3k repositories).
/// Every statement here is planned on its indexes, not on values.
pub(super) fn stable_plans(c: &Connection) -> Result<(), StorageError> {
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map(|_| ())
    .map_err(storage)
}

/// Query-only connections for file reads (GETs of repositories not in the cache, an
/// update's stored ancestors). WAL readers see every committed transaction and wait for no
/// commit, so such a read no longer queues behind the writer on the store's connection.
/// Empty for an in-memory database (one connection is the whole database).
#[derive(Default)]
pub(super) struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Readers {
    /// Open the readers of the database at `path` (its schema already made).
    pub(super) fn open(path: &Path) -> Result<Self, StorageError> {
        let conns = (0..READERS)
            .map(|_| {
                let c = Connection::open(path).map_err(storage)?;
                c.busy_timeout(Duration::from_secs(5)).map_err(storage)?;
                c.pragma_update(None, "query_only", true).map_err(storage)?;
                stable_plans(&c)?;
                Ok(Mutex::new(c))
            })
            .collect::<Result<_, StorageError>>()?;
        Ok(Readers {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// A free reader (the first tried is taken round-robin), else the next one in turn;
    /// None when there are none.
    pub(super) fn get(&self) -> Option<MutexGuard<'_, Connection>> {
        let n = self.conns.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(c) = self.conns[(start + i) % n].try_lock() {
                return Some(c);
            }
        }
        Some(
            self.conns[start % n]
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }
}
