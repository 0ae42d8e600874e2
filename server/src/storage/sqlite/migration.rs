//! The control room's tables in SQLite (see [`crate::storage::migration`]): written inside the
//! store's own transactions, read with the shared SQL.

use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use super::{SqliteStore, now_nanos, storage};
use crate::storage::error::StorageError;
use crate::storage::migration::{
    self as m, Expiring, GunSummary, Migration, PageQuery, Totals, TrustState, Trusted, Usage,
};

fn sql(s: &str) -> String {
    m::sqlite_sql(s)
}

/// Replace `gun`'s trust rows.
pub(super) fn write_trust(
    tx: &Connection,
    gun: &str,
    trust: &TrustState,
) -> Result<(), StorageError> {
    tx.execute(&sql(m::DELETE_TAGS), [gun]).map_err(storage)?;
    tx.execute(&sql(m::DELETE_ROLES), [gun]).map_err(storage)?;
    let mut st = tx.prepare_cached(&sql(m::INSERT_TAG)).map_err(storage)?;
    for t in trust.tags() {
        st.execute(params![
            gun,
            t.tag,
            t.digest_hex,
            t.role,
            t.signers,
            t.expires.map(m::nanos)
        ])
        .map_err(storage)?;
    }
    let mut st = tx.prepare_cached(&sql(m::INSERT_ROLE)).map_err(storage)?;
    for (role, expires) in &trust.roles {
        st.execute(params![gun, role, m::nanos(*expires)])
            .map_err(storage)?;
    }
    Ok(())
}

fn counts(tx: &Connection, gun: &str) -> Result<Option<m::Counts>, StorageError> {
    tx.prepare_cached(&sql(m::COUNTS_OF))
        .and_then(|mut st| {
            st.query_row([gun], |r| {
                Ok([
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ])
            })
            .optional()
        })
        .map_err(storage)
}

/// Recompute `gun`'s summary (or drop it when the GUN has no live metadata), and move the
/// totals by the difference.
pub(super) fn refresh(tx: &Connection, gun: &str) -> Result<(), StorageError> {
    let before = counts(tx, gun)?;
    resummarize(tx, gun)?;
    if let Some(d) = m::totals_delta(before, counts(tx, gun)?) {
        tx.prepare_cached(&sql(m::ADD_TOTALS))
            .and_then(|mut st| {
                st.execute(params![
                    m::shard_of(gun),
                    d[0],
                    d[1],
                    d[2],
                    d[3],
                    d[4],
                    d[5],
                    d[6],
                    d[7]
                ])
            })
            .map_err(storage)?;
    }
    Ok(())
}

fn resummarize(tx: &Connection, gun: &str) -> Result<(), StorageError> {
    let live: bool = tx
        .prepare_cached(&sql(m::GUN_EXISTS))
        .and_then(|mut st| st.query_row([gun], |r| r.get(0)))
        .map_err(storage)?;
    if live {
        tx.prepare_cached(&sql(m::REFRESH))
            .and_then(|mut st| st.execute(params![gun, now_nanos()]))
            .map_err(storage)?;
    } else {
        tx.execute(&sql(m::DELETE_SUMMARY), [gun])
            .map_err(storage)?;
        tx.execute(&sql(m::DELETE_TAGS), [gun]).map_err(storage)?;
        tx.execute(&sql(m::DELETE_ROLES), [gun]).map_err(storage)?;
    }
    Ok(())
}

/// Mark `gun` for the summarizer (in the caller's transaction).
pub(super) fn mark(tx: &Connection, gun: &str, trust: bool) -> Result<(), StorageError> {
    tx.prepare_cached(&sql(m::MARK))
        .and_then(|mut st| st.execute(params![gun, i64::from(trust)]))
        .map(|_| ())
        .map_err(storage)
}

/// Mark every GUN a job statement touched.
pub(super) fn mark_guns(tx: &Connection, guns: &[String]) -> Result<(), StorageError> {
    let mut seen = std::collections::BTreeSet::new();
    for g in guns {
        if seen.insert(g) {
            mark(tx, g, false)?;
        }
    }
    Ok(())
}

fn expiring(r: &Row<'_>) -> rusqlite::Result<Expiring> {
    Ok(Expiring {
        gun: r.get(0)?,
        role: r.get(1)?,
        expires: m::time_of(r.get(2)?),
    })
}

fn summary(r: &Row<'_>) -> rusqlite::Result<GunSummary> {
    Ok(GunSummary {
        gun: r.get(0)?,
        tags: r.get(1)?,
        mirrored: r.get(2)?,
        verified: r.get(3)?,
        queued: r.get(4)?,
        dead: r.get(5)?,
        drift: r.get(6)?,
        expires: r.get::<_, Option<i64>>(7)?.map(m::time_of),
        last_read: r.get(8)?,
    })
}

impl Migration for SqliteStore {
    fn dirty(&self, limit: i64) -> Result<Vec<m::Dirty>, StorageError> {
        let db = self.db();
        let mut st = db.prepare_cached(&sql(m::DIRTY)).map_err(storage)?;
        let rows = st
            .query_map([limit], |r| {
                Ok(m::Dirty {
                    gun: r.get(0)?,
                    trust: r.get::<_, i64>(1)? != 0,
                    seq: r.get(2)?,
                })
            })
            .map_err(storage)?;
        rows.collect::<rusqlite::Result<_>>().map_err(storage)
    }

    fn refresh_summary(&self, gun: &str) -> Result<(), StorageError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(storage)?;
        refresh(&tx, gun)?;
        tx.commit().map_err(storage)
    }

    fn mark_unadopted(&self) -> Result<usize, StorageError> {
        self.db()
            .execute(&sql(m::MARK_UNADOPTED), [])
            .map_err(storage)
    }

    fn settle(&self, d: &m::Dirty) -> Result<(), StorageError> {
        self.db()
            .execute(&sql(m::SETTLE), params![d.gun, d.seq])
            .map(|_| ())
            .map_err(storage)
    }

    fn set_trust(&self, gun: &str, trust: &TrustState) -> Result<(), StorageError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(storage)?;
        write_trust(&tx, gun, trust)?;
        refresh(&tx, gun)?;
        tx.commit().map_err(storage)
    }

    fn summarize(&self, batch: &[(m::Dirty, Option<TrustState>)]) -> Result<(), StorageError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(storage)?;
        for (d, trust) in batch {
            if let Some(t) = trust {
                write_trust(&tx, &d.gun, t)?;
            }
            refresh(&tx, &d.gun)?;
            tx.prepare_cached(&sql(m::SETTLE))
                .and_then(|mut st| st.execute(params![d.gun, d.seq]))
                .map_err(storage)?;
        }
        tx.commit().map_err(storage)
    }

    fn trust_of(&self, gun: &str) -> Result<Vec<Trusted>, StorageError> {
        let db = self.db();
        let mut st = db.prepare_cached(&sql(m::TAGS_OF)).map_err(storage)?;
        let rows = st
            .query_map([gun], |r| {
                Ok(Trusted {
                    tag: r.get(0)?,
                    digest_hex: r.get(1)?,
                    role: r.get(2)?,
                    signers: r.get(3)?,
                    expires: r.get::<_, Option<i64>>(4)?.map(m::time_of),
                })
            })
            .map_err(storage)?;
        rows.collect::<rusqlite::Result<_>>().map_err(storage)
    }

    fn summary(&self, gun: &str) -> Result<Option<GunSummary>, StorageError> {
        self.db()
            .prepare_cached(&sql(m::ONE))
            .and_then(|mut st| st.query_row([gun], summary).optional())
            .map_err(storage)
    }

    fn summaries(&self, q: &PageQuery) -> Result<Vec<GunSummary>, StorageError> {
        let db = self.db();
        let (page, from) = q.sql();
        let mut st = db.prepare_cached(&sql(page)).map_err(storage)?;
        let rows = st
            .query_map(
                params![
                    from,
                    m::upper_bound(&q.prefix),
                    q.limit,
                    q.ready.map(i64::from)
                ],
                summary,
            )
            .map_err(storage)?;
        rows.collect::<rusqlite::Result<_>>().map_err(storage)
    }

    fn totals(
        &self,
        now: OffsetDateTime,
        horizon: OffsetDateTime,
        day_7: i64,
        day_30: i64,
    ) -> Result<Totals, StorageError> {
        let db = self.db();
        let mut t = db
            .prepare_cached(&sql(m::TOTALS))
            .and_then(|mut st| {
                st.query_row(params![day_7, day_30], |r| {
                    Ok(Totals {
                        guns: r.get(0)?,
                        tags: r.get(1)?,
                        mirrored: r.get(2)?,
                        verified: r.get(3)?,
                        queued: r.get(4)?,
                        dead: r.get(5)?,
                        drift: r.get(6)?,
                        ready_guns: r.get(7)?,
                        read_7d: r.get(8)?,
                        read_30d: r.get(9)?,
                        ..Totals::default()
                    })
                })
            })
            .map_err(storage)?;
        let (expired, within): (i64, i64) = db
            .prepare_cached(&sql(m::ROLE_COUNTS))
            .and_then(|mut st| {
                st.query_row(params![m::nanos(now), m::nanos(horizon)], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
            })
            .map_err(storage)?;
        t.expired_roles = expired;
        t.expiring_roles = within - expired;
        Ok(t)
    }

    fn expiring(
        &self,
        prefix: &str,
        horizon: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<Expiring>, StorageError> {
        let db = self.db();
        let mut st = db.prepare_cached(&sql(m::EXPIRING)).map_err(storage)?;
        let rows = st
            .query_map(
                params![prefix, m::upper_bound(prefix), m::nanos(horizon), limit],
                expiring,
            )
            .map_err(storage)?;
        rows.collect::<rusqlite::Result<_>>().map_err(storage)
    }

    fn roles_of(&self, gun: &str) -> Result<Vec<Expiring>, StorageError> {
        let db = self.db();
        let mut st = db.prepare_cached(&sql(m::ROLES_OF)).map_err(storage)?;
        let rows = st.query_map([gun], expiring).map_err(storage)?;
        rows.collect::<rusqlite::Result<_>>().map_err(storage)
    }

    fn add_usage(&self, batch: &[Usage]) -> Result<(), StorageError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(storage)?;
        {
            let mut add = tx.prepare_cached(&sql(m::ADD_USAGE)).map_err(storage)?;
            let mut mark = tx.prepare_cached(&sql(m::MARK_READ)).map_err(storage)?;
            for u in batch {
                add.execute(params![
                    u.gun,
                    u.day,
                    u.client,
                    u.version,
                    u.reads,
                    m::nanos(u.last_seen)
                ])
                .map_err(storage)?;
                mark.execute(params![u.gun, u.day]).map_err(storage)?;
            }
        }
        tx.commit().map_err(storage)
    }

    fn set_read_only(&self, gun: &str, on: bool) -> Result<bool, StorageError> {
        let db = self.db();
        let n = if on {
            db.execute(&sql(m::SET_READ_ONLY), params![gun, now_nanos()])
        } else {
            db.execute(&sql(m::CLEAR_READ_ONLY), [gun])
        }
        .map_err(storage)?;
        Ok(n > 0)
    }

    fn read_only_since(&self, gun: &str) -> Result<Option<OffsetDateTime>, StorageError> {
        // Asked on every publish: on a reader, never waiting on the writer's commit.
        self.reader()
            .prepare_cached(&sql(m::READ_ONLY_SINCE))
            .and_then(|mut st| st.query_row([gun], |r| r.get::<_, i64>(0)).optional())
            .map(|t| t.map(m::time_of))
            .map_err(storage)
    }

    fn usage(
        &self,
        prefix: &str,
        exact: bool,
        since_day: i64,
        limit: i64,
    ) -> Result<Vec<Usage>, StorageError> {
        let db = self.db();
        let mut st = db.prepare_cached(&sql(m::USAGE)).map_err(storage)?;
        let rows = st
            .query_map(
                params![
                    prefix,
                    m::upper_bound(prefix),
                    since_day,
                    limit,
                    exact.then_some(prefix)
                ],
                |r| {
                    Ok(Usage {
                        gun: r.get(0)?,
                        day: r.get(1)?,
                        client: r.get(2)?,
                        version: r.get(3)?,
                        reads: r.get(4)?,
                        last_seen: m::time_of(r.get(5)?),
                    })
                },
            )
            .map_err(storage)?;
        rows.collect::<rusqlite::Result<_>>().map_err(storage)
    }
}
