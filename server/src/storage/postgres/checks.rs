//! The reconciler's findings (`bridge_checks`), one row per (GUN, tag), replaced per GUN.

use time::OffsetDateTime;

use super::{PgStore, pg, pool_err, time_of};
use crate::storage::TagCheck;
use crate::storage::error::StorageError;
use crate::storage::nanos;

impl PgStore {
    pub(super) fn put_checks(&self, gun: &str, checks: &[TagCheck]) -> Result<(), StorageError> {
        let (gun, checks) = (gun.to_string(), checks.to_vec());
        self.run(move |pool| async move {
            let mut c = pool.get().await.map_err(pool_err)?;
            let tx = c.transaction().await.map_err(pg)?;
            tx.execute("DELETE FROM bridge_checks WHERE gun = $1", &[&gun])
                .await
                .map_err(pg)?;
            for k in &checks {
                tx.execute(
                    "INSERT INTO bridge_checks (gun, tag, digest, verified_at, registry_digest, drift, error, checked_at, expires) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &gun,
                        &k.tag,
                        &k.digest_hex,
                        &k.verified_at.map(nanos),
                        &k.registry_digest,
                        &k.drift,
                        &k.error,
                        &nanos(k.checked_at),
                        &k.expires.map(nanos),
                    ],
                )
                .await
                .map_err(pg)?;
            }
            super::migration::mark(&tx, &gun, false).await?;
            tx.commit().await.map_err(pg)
        })
    }

    pub(super) fn get_checks(&self, gun: &str) -> Result<Vec<TagCheck>, StorageError> {
        let gun = gun.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let rows = c
                .query(
                    "SELECT tag, digest, verified_at, registry_digest, drift, error, checked_at, expires FROM bridge_checks WHERE gun = $1 ORDER BY tag",
                    &[&gun],
                )
                .await
                .map_err(pg)?;
            Ok(rows
                .iter()
                .map(|r| TagCheck {
                    tag: r.get(0),
                    digest_hex: r.get::<_, String>(1).trim().to_string(),
                    verified_at: r.get::<_, Option<i64>>(2).map(time_of),
                    registry_digest: r
                        .get::<_, Option<String>>(3)
                        .map(|d| d.trim().to_string()),
                    drift: r.get(4),
                    error: r.get(5),
                    checked_at: time_of(r.get(6)),
                    expires: r.get::<_, Option<i64>>(7).map(time_of),
                })
                .collect())
        })
    }

    pub(super) fn count_checks(&self, now: OffsetDateTime) -> Result<(i64, i64), StorageError> {
        let now = nanos(now);
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let row = c
                .query_one(
                    "SELECT COUNT(*) FILTER (WHERE drift), COUNT(*) FILTER (WHERE expires < $1) FROM bridge_checks",
                    &[&now],
                )
                .await
                .map_err(pg)?;
            Ok((row.get(0), row.get(1)))
        })
    }
}
