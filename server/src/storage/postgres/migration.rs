//! The control room's tables in PostgreSQL (see [`crate::storage::migration`]): written
//! inside the store's own transactions, read with the shared SQL.

use deadpool_postgres::Transaction;
use time::OffsetDateTime;
use tokio_postgres::Row;

use super::{Param, PgStore, now_nanos, pg, pool_err};
use crate::storage::error::StorageError;
use crate::storage::migration::{
    self as m, Expiring, GunSummary, Migration, PageQuery, Totals, TrustState, Trusted, Usage,
};

/// Replace `gun`'s trust rows.
pub(super) async fn write_trust(
    tx: &Transaction<'_>,
    gun: &str,
    trust: &TrustState,
) -> Result<(), StorageError> {
    tx.execute(m::DELETE_TAGS, &[&gun]).await.map_err(pg)?;
    tx.execute(m::DELETE_ROLES, &[&gun]).await.map_err(pg)?;
    if !trust.is_empty() {
        let st = tx.prepare_cached(m::INSERT_TAG).await.map_err(pg)?;
        for t in trust.tags() {
            tx.execute(
                &st,
                &[
                    &gun,
                    &t.tag,
                    &t.digest_hex,
                    &t.role,
                    &t.signers,
                    &t.expires.map(m::nanos),
                ],
            )
            .await
            .map_err(pg)?;
        }
    }
    if !trust.roles.is_empty() {
        let st = tx.prepare_cached(m::INSERT_ROLE).await.map_err(pg)?;
        for (role, expires) in &trust.roles {
            tx.execute(&st, &[&gun, role, &m::nanos(*expires)])
                .await
                .map_err(pg)?;
        }
    }
    Ok(())
}

async fn counts(tx: &Transaction<'_>, gun: &str) -> Result<Option<m::Counts>, StorageError> {
    let st = tx.prepare_cached(m::COUNTS_OF).await.map_err(pg)?;
    Ok(tx
        .query_opt(&st, &[&gun])
        .await
        .map_err(pg)?
        .map(|r| [r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)]))
}

/// Recompute `gun`'s summary (or drop it when the GUN has no live metadata), and move the
/// totals by the difference.
pub(super) async fn refresh(tx: &Transaction<'_>, gun: &str) -> Result<(), StorageError> {
    let before = counts(tx, gun).await?;
    resummarize(tx, gun).await?;
    if let Some(d) = m::totals_delta(before, counts(tx, gun).await?) {
        let st = tx.prepare_cached(m::ADD_TOTALS).await.map_err(pg)?;
        tx.execute(
            &st,
            &[
                &m::shard_of(gun),
                &d[0],
                &d[1],
                &d[2],
                &d[3],
                &d[4],
                &d[5],
                &d[6],
                &d[7],
            ],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}

async fn resummarize(tx: &Transaction<'_>, gun: &str) -> Result<(), StorageError> {
    let live: bool = tx
        .query_one(m::GUN_EXISTS, &[&gun])
        .await
        .map_err(pg)?
        .get(0);
    if live {
        let st = tx.prepare_cached(m::REFRESH).await.map_err(pg)?;
        tx.execute(&st, &[&gun, &now_nanos()]).await.map_err(pg)?;
    } else {
        for sql in [m::DELETE_SUMMARY, m::DELETE_TAGS, m::DELETE_ROLES] {
            tx.execute(sql, &[&gun]).await.map_err(pg)?;
        }
    }
    Ok(())
}

/// Mark `gun` for the summarizer (in the caller's transaction).
pub(super) async fn mark(tx: &Transaction<'_>, gun: &str, trust: bool) -> Result<(), StorageError> {
    let st = tx.prepare_cached(m::MARK).await.map_err(pg)?;
    tx.execute(&st, &[&gun, &i64::from(trust)])
        .await
        .map(|_| ())
        .map_err(pg)
}

fn expiring(r: &Row) -> Expiring {
    Expiring {
        gun: r.get(0),
        role: r.get(1),
        expires: m::time_of(r.get(2)),
    }
}

fn summary(r: &Row) -> GunSummary {
    GunSummary {
        gun: r.get(0),
        tags: r.get(1),
        mirrored: r.get(2),
        verified: r.get(3),
        queued: r.get(4),
        dead: r.get(5),
        drift: r.get(6),
        expires: r.get::<_, Option<i64>>(7).map(m::time_of),
        last_read: r.get(8),
    }
}

impl PgStore {
    /// Run a job `UPDATE ... RETURNING gun` and mark the GUNs it touched,
    /// in one transaction; returns how many rows it changed.
    pub(super) fn update_jobs(
        &self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<u64, StorageError> {
        self.run(move |pool| async move {
            let mut c = pool.get().await.map_err(pool_err)?;
            let tx = c.transaction().await.map_err(pg)?;
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(Param::as_sql).collect();
            let rows = tx.query(sql, &refs).await.map_err(pg)?;
            let guns: std::collections::BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
            for g in &guns {
                mark(&tx, g, false).await?;
            }
            tx.commit().await.map_err(pg)?;
            Ok(rows.len() as u64)
        })
    }
}

impl Migration for PgStore {
    fn dirty(&self, limit: i64) -> Result<Vec<m::Dirty>, StorageError> {
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let rows = c.query(m::DIRTY, &[&limit]).await.map_err(pg)?;
            Ok(rows
                .iter()
                .map(|r| m::Dirty {
                    gun: r.get(0),
                    trust: r.get::<_, i64>(1) != 0,
                    seq: r.get(2),
                })
                .collect())
        })
    }

    fn refresh_summary(&self, gun: &str) -> Result<(), StorageError> {
        let gun = gun.to_string();
        self.run(move |pool| async move {
            let mut c = pool.get().await.map_err(pool_err)?;
            let tx = c.transaction().await.map_err(pg)?;
            // Replicas summarizing the same GUN take turns: the totals move once per change.
            super::lock_gun(&tx, &gun).await?;
            refresh(&tx, &gun).await?;
            tx.commit().await.map_err(pg)
        })
    }

    fn mark_unadopted(&self) -> Result<usize, StorageError> {
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            c.execute(m::MARK_UNADOPTED, &[])
                .await
                .map(|n| n as usize)
                .map_err(pg)
        })
    }

    fn settle(&self, d: &m::Dirty) -> Result<(), StorageError> {
        let d = d.clone();
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            c.execute(m::SETTLE, &[&d.gun, &d.seq])
                .await
                .map(|_| ())
                .map_err(pg)
        })
    }

    fn set_trust(&self, gun: &str, trust: &TrustState) -> Result<(), StorageError> {
        let (gun, trust) = (gun.to_string(), trust.clone());
        self.run(move |pool| async move {
            let mut c = pool.get().await.map_err(pool_err)?;
            let tx = c.transaction().await.map_err(pg)?;
            super::lock_gun(&tx, &gun).await?;
            write_trust(&tx, &gun, &trust).await?;
            refresh(&tx, &gun).await?;
            tx.commit().await.map_err(pg)
        })
    }

    fn trust_of(&self, gun: &str) -> Result<Vec<Trusted>, StorageError> {
        let gun = gun.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let rows = c.query(m::TAGS_OF, &[&gun]).await.map_err(pg)?;
            Ok(rows
                .iter()
                .map(|r| Trusted {
                    tag: r.get(0),
                    digest_hex: r.get::<_, String>(1).trim().to_string(),
                    role: r.get(2),
                    signers: r.get(3),
                    expires: r.get::<_, Option<i64>>(4).map(m::time_of),
                })
                .collect())
        })
    }

    fn summary(&self, gun: &str) -> Result<Option<GunSummary>, StorageError> {
        let gun = gun.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let row = c.query_opt(m::ONE, &[&gun]).await.map_err(pg)?;
            Ok(row.as_ref().map(summary))
        })
    }

    fn summaries(&self, q: &PageQuery) -> Result<Vec<GunSummary>, StorageError> {
        let q = q.clone();
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let (page, from) = q.sql();
            let st = c.prepare_cached(page).await.map_err(pg)?;
            let rows = c
                .query(
                    &st,
                    &[
                        &from,
                        &m::upper_bound(&q.prefix),
                        &q.limit,
                        &q.ready.map(i64::from),
                    ],
                )
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(summary).collect())
        })
    }

    fn totals(
        &self,
        now: OffsetDateTime,
        horizon: OffsetDateTime,
        day_7: i64,
        day_30: i64,
    ) -> Result<Totals, StorageError> {
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let r = c
                .query_one(m::TOTALS, &[&day_7, &day_30])
                .await
                .map_err(pg)?;
            let roles = c
                .query_one(m::ROLE_COUNTS, &[&m::nanos(now), &m::nanos(horizon)])
                .await
                .map_err(pg)?;
            let (expired, within): (i64, i64) = (roles.get(0), roles.get(1));
            Ok(Totals {
                guns: r.get(0),
                tags: r.get(1),
                mirrored: r.get(2),
                verified: r.get(3),
                queued: r.get(4),
                dead: r.get(5),
                drift: r.get(6),
                ready_guns: r.get(7),
                read_7d: r.get(8),
                read_30d: r.get(9),
                expired_roles: expired,
                expiring_roles: within - expired,
            })
        })
    }

    fn expiring(
        &self,
        prefix: &str,
        horizon: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<Expiring>, StorageError> {
        let prefix = prefix.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let rows = c
                .query(
                    m::EXPIRING,
                    &[
                        &prefix,
                        &m::upper_bound(&prefix),
                        &m::nanos(horizon),
                        &limit,
                    ],
                )
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(expiring).collect())
        })
    }

    fn roles_of(&self, gun: &str) -> Result<Vec<Expiring>, StorageError> {
        let gun = gun.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let rows = c.query(m::ROLES_OF, &[&gun]).await.map_err(pg)?;
            Ok(rows.iter().map(expiring).collect())
        })
    }

    fn add_usage(&self, batch: &[Usage]) -> Result<(), StorageError> {
        let batch = batch.to_vec();
        self.run(move |pool| async move {
            let mut c = pool.get().await.map_err(pool_err)?;
            let tx = c.transaction().await.map_err(pg)?;
            let add = tx.prepare_cached(m::ADD_USAGE).await.map_err(pg)?;
            let mark = tx.prepare_cached(m::MARK_READ).await.map_err(pg)?;
            for u in &batch {
                tx.execute(
                    &add,
                    &[
                        &u.gun,
                        &u.day,
                        &u.client,
                        &u.version,
                        &u.reads,
                        &m::nanos(u.last_seen),
                    ],
                )
                .await
                .map_err(pg)?;
                tx.execute(&mark, &[&u.gun, &u.day]).await.map_err(pg)?;
            }
            tx.commit().await.map_err(pg)
        })
    }

    fn set_read_only(&self, gun: &str, on: bool) -> Result<bool, StorageError> {
        let gun = gun.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let n = if on {
                c.execute(m::SET_READ_ONLY, &[&gun, &now_nanos()]).await
            } else {
                c.execute(m::CLEAR_READ_ONLY, &[&gun]).await
            }
            .map_err(pg)?;
            Ok(n > 0)
        })
    }

    fn read_only_since(&self, gun: &str) -> Result<Option<OffsetDateTime>, StorageError> {
        let gun = gun.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let row = c.query_opt(m::READ_ONLY_SINCE, &[&gun]).await.map_err(pg)?;
            Ok(row.map(|r| m::time_of(r.get(0))))
        })
    }

    fn usage(
        &self,
        prefix: &str,
        exact: bool,
        since_day: i64,
        limit: i64,
    ) -> Result<Vec<Usage>, StorageError> {
        let prefix = prefix.to_string();
        self.run(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let exact_gun = exact.then(|| prefix.clone());
            let rows = c
                .query(
                    m::USAGE,
                    &[
                        &prefix,
                        &m::upper_bound(&prefix),
                        &since_day,
                        &limit,
                        &exact_gun,
                    ],
                )
                .await
                .map_err(pg)?;
            Ok(rows
                .iter()
                .map(|r| Usage {
                    gun: r.get(0),
                    day: r.get(1),
                    client: r.get(2),
                    version: r.get(3),
                    reads: r.get(4),
                    last_seen: m::time_of(r.get(5)),
                })
                .collect())
        })
    }
}
