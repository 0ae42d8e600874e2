//! The renewal schedule in SQLite (see [`crate::storage::renewals`]).

use rusqlite::{Connection, params};

use super::{SqliteStore, storage};
use crate::storage::StorageError;
use crate::storage::renewals::{self, DELETE, DUE, Renewals, SCHEDULE, UNSCHEDULED, UPSERT};

/// The shared statements with SQLite's `?N` for PostgreSQL's `$N`.
fn sql(s: &str) -> String {
    s.replace('$', "?")
}

/// In an update's transaction: record the expiries it brings.
pub(super) fn on_update(
    tx: &Connection,
    gun: &str,
    updates: &[crate::storage::Update],
) -> Result<(), StorageError> {
    let (ts, snap) = renewals::expiries(updates);
    if ts.is_some() || snap.is_some() {
        tx.prepare_cached(&sql(UPSERT))
            .and_then(|mut st| st.execute(params![gun, ts, snap]))
            .map_err(storage)?;
    }
    Ok(())
}

/// In a delete's transaction: nothing of `gun` is left to renew.
pub(super) fn on_delete(tx: &Connection, gun: &str) -> Result<(), StorageError> {
    tx.prepare_cached(&sql(DELETE))
        .and_then(|mut st| st.execute(params![gun]))
        .map_err(storage)?;
    Ok(())
}

fn guns(
    db: &Connection,
    statement: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<String>, StorageError> {
    let mut st = db.prepare_cached(&sql(statement)).map_err(storage)?;
    let rows = st.query_map(p, |r| r.get(0)).map_err(storage)?;
    rows.collect::<rusqlite::Result<_>>().map_err(storage)
}

impl Renewals for SqliteStore {
    fn due_renewals(
        &self,
        timestamp_by: i64,
        snapshot_by: i64,
        limit: i64,
    ) -> Result<Vec<String>, StorageError> {
        guns(&self.db(), DUE, params![timestamp_by, snapshot_by, limit]).map(renewals::once)
    }

    fn schedule(
        &self,
        gun: &str,
        timestamp: Option<i64>,
        snapshot: Option<i64>,
    ) -> Result<(), StorageError> {
        self.db()
            .prepare_cached(&sql(SCHEDULE))
            .and_then(|mut st| st.execute(params![gun, timestamp, snapshot]))
            .map_err(storage)?;
        Ok(())
    }

    fn unscheduled(&self, limit: i64) -> Result<Vec<String>, StorageError> {
        guns(&self.db(), UNSCHEDULED, params![limit])
    }
}

impl SqliteStore {
    /// SQLite's plan for the sweep's query (`EXPLAIN QUERY PLAN`), one line per step: the
    /// proof that finding due GUNs reads the two indexes, not the table.
    pub fn due_renewals_plan(&self) -> Result<Vec<String>, StorageError> {
        let db = self.db();
        let mut st = db
            .prepare(&format!("EXPLAIN QUERY PLAN {}", sql(DUE)))
            .map_err(storage)?;
        let rows = st
            .query_map(params![0i64, 0i64, 1i64], |r| r.get::<_, String>(3))
            .map_err(storage)?;
        rows.collect::<rusqlite::Result<_>>().map_err(storage)
    }
}
