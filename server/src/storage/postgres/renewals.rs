//! The renewal schedule in PostgreSQL (see [`crate::storage::renewals`]).

use super::{PgStore, pg, pool_err};
use crate::storage::StorageError;
use crate::storage::renewals::{self, DELETE, DUE, Renewals, SCHEDULE, UNSCHEDULED, UPSERT};

/// In an update's transaction: record the expiries it brings.
pub(super) async fn on_update(
    tx: &deadpool_postgres::Transaction<'_>,
    gun: &str,
    updates: &[crate::storage::Update],
) -> Result<(), StorageError> {
    let (ts, snap) = renewals::expiries(updates);
    if ts.is_some() || snap.is_some() {
        tx.execute(UPSERT, &[&gun, &ts, &snap]).await.map_err(pg)?;
    }
    Ok(())
}

/// In a delete's transaction: nothing of `gun` is left to renew.
pub(super) async fn on_delete(
    tx: &deadpool_postgres::Transaction<'_>,
    gun: &str,
) -> Result<(), StorageError> {
    tx.execute(DELETE, &[&gun]).await.map_err(pg)?;
    Ok(())
}

impl Renewals for PgStore {
    fn due_renewals(
        &self,
        timestamp_by: i64,
        snapshot_by: i64,
        limit: i64,
    ) -> Result<Vec<String>, StorageError> {
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let rows = c
                .query(DUE, &[&timestamp_by, &snapshot_by, &limit])
                .await
                .map_err(pg)?;
            Ok(renewals::once(rows.iter().map(|r| r.get(0)).collect()))
        })
    }

    fn schedule(
        &self,
        gun: &str,
        timestamp: Option<i64>,
        snapshot: Option<i64>,
    ) -> Result<(), StorageError> {
        let gun = gun.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            c.execute(SCHEDULE, &[&gun, &timestamp, &snapshot])
                .await
                .map_err(pg)?;
            Ok(())
        })
    }

    fn unscheduled(&self, limit: i64) -> Result<Vec<String>, StorageError> {
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let rows = c.query(UNSCHEDULED, &[&limit]).await.map_err(pg)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}
