//! The control room's tables, the renewal schedule and the reconciler's findings in MySQL:
//! the shared SQL of [`crate::storage::migration`] and [`crate::storage::renewals`] through
//! [`super::dialect`], written in the store's own transactions.

use ::mysql::prelude::Queryable;
use ::mysql::{Transaction, Value};
use time::OffsetDateTime;

use super::dialect::stmt;
use super::{MyStore, my};
use crate::storage::error::StorageError;
use crate::storage::migration::{
    self as m, Expiring, GunSummary, Migration, PageQuery, Totals, TrustState, Trusted, Usage,
};
use crate::storage::renewals::{self, Renewals};
use crate::storage::{TagCheck, Update, nanos, now_nanos, time_of};

/// Run one shared statement with `args` (`args[i]` is its `$i+1`).
fn run(q: &mut impl Queryable, sql: &str, args: &[Value]) -> Result<u64, StorageError> {
    let s = stmt(sql);
    let r = q.exec_iter(&s.sql, s.params(args)).map_err(my)?;
    Ok(r.affected_rows())
}

fn rows<T: ::mysql::prelude::FromRow>(
    q: &mut impl Queryable,
    sql: &str,
    args: &[Value],
) -> Result<Vec<T>, StorageError> {
    let s = stmt(sql);
    q.exec(&s.sql, s.params(args)).map_err(my)
}

fn first<T: ::mysql::prelude::FromRow>(
    q: &mut impl Queryable,
    sql: &str,
    args: &[Value],
) -> Result<Option<T>, StorageError> {
    let s = stmt(sql);
    q.exec_first(&s.sql, s.params(args)).map_err(my)
}

/// Mark `gun` for the summarizer (in the caller's transaction).
pub(super) fn mark(tx: &mut Transaction<'_>, gun: &str, trust: bool) -> Result<(), StorageError> {
    run(tx, m::MARK, &[gun.into(), i64::from(trust).into()]).map(|_| ())
}

/// In an update's transaction: record the expiries it brings.
pub(super) fn on_update(
    tx: &mut Transaction<'_>,
    gun: &str,
    updates: &[Update],
) -> Result<(), StorageError> {
    let (ts, snap) = renewals::expiries(updates);
    if ts.is_some() || snap.is_some() {
        run(tx, renewals::UPSERT, &[gun.into(), ts.into(), snap.into()])?;
    }
    Ok(())
}

/// In a delete's transaction: nothing of `gun` is left to renew.
pub(super) fn on_delete(tx: &mut Transaction<'_>, gun: &str) -> Result<(), StorageError> {
    run(tx, renewals::DELETE, &[gun.into()]).map(|_| ())
}

fn write_trust(
    tx: &mut Transaction<'_>,
    gun: &str,
    trust: &TrustState,
) -> Result<(), StorageError> {
    run(tx, m::DELETE_TAGS, &[gun.into()])?;
    run(tx, m::DELETE_ROLES, &[gun.into()])?;
    for t in trust.tags() {
        run(
            tx,
            m::INSERT_TAG,
            &[
                gun.into(),
                t.tag.into(),
                t.digest_hex.into(),
                t.role.into(),
                t.signers.into(),
                t.expires.map(m::nanos).into(),
            ],
        )?;
    }
    for (role, expires) in &trust.roles {
        run(
            tx,
            m::INSERT_ROLE,
            &[gun.into(), role.as_str().into(), m::nanos(*expires).into()],
        )?;
    }
    Ok(())
}

fn counts(tx: &mut Transaction<'_>, gun: &str) -> Result<Option<m::Counts>, StorageError> {
    let r: Option<(i64, i64, i64, i64, i64, i64)> = first(tx, m::COUNTS_OF, &[gun.into()])?;
    Ok(r.map(|c| [c.0, c.1, c.2, c.3, c.4, c.5]))
}

/// Recompute `gun`'s summary (or drop it when the GUN has no live metadata), and move the
/// totals by the difference.
fn refresh(tx: &mut Transaction<'_>, gun: &str) -> Result<(), StorageError> {
    let before = counts(tx, gun)?;
    let live: Option<bool> = first(tx, m::GUN_EXISTS, &[gun.into()])?;
    if live == Some(true) {
        run(tx, m::REFRESH, &[gun.into(), now_nanos().into()])?;
    } else {
        run(tx, m::DELETE_SUMMARY, &[gun.into()])?;
        run(tx, m::DELETE_TAGS, &[gun.into()])?;
        run(tx, m::DELETE_ROLES, &[gun.into()])?;
    }
    if let Some(d) = m::totals_delta(before, counts(tx, gun)?) {
        let mut args: Vec<Value> = vec![m::shard_of(gun).into()];
        args.extend(d.iter().map(|v| Value::from(*v)));
        run(tx, m::ADD_TOTALS, &args)?;
    }
    Ok(())
}

/// guns, tags, mirrored, verified, queued, dead, drift, ready GUNs, read in 7 and in 30 days.
type TotalsRow = (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64);

type SummaryRow = (
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

fn summary(r: SummaryRow) -> GunSummary {
    GunSummary {
        gun: r.0,
        tags: r.1,
        mirrored: r.2,
        verified: r.3,
        queued: r.4,
        dead: r.5,
        drift: r.6,
        expires: r.7.map(m::time_of),
        last_read: r.8,
    }
}

fn expiring((gun, role, expires): (String, String, i64)) -> Expiring {
    Expiring {
        gun,
        role,
        expires: m::time_of(expires),
    }
}

impl Migration for MyStore {
    fn dirty(&self, limit: i64) -> Result<Vec<m::Dirty>, StorageError> {
        let r: Vec<(String, i64, i64)> = rows(&mut self.conn()?, m::DIRTY, &[limit.into()])?;
        Ok(r.into_iter()
            .map(|(gun, trust, seq)| m::Dirty {
                gun,
                trust: trust != 0,
                seq,
            })
            .collect())
    }

    fn refresh_summary(&self, gun: &str) -> Result<(), StorageError> {
        // Replicas summarizing the same GUN take turns: the totals move once per change.
        self.tx(Some(gun), |tx| refresh(tx, gun))
    }

    fn mark_unadopted(&self) -> Result<usize, StorageError> {
        run(&mut self.conn()?, m::MARK_UNADOPTED, &[]).map(|n| n as usize)
    }

    fn settle(&self, d: &m::Dirty) -> Result<(), StorageError> {
        run(
            &mut self.conn()?,
            m::SETTLE,
            &[d.gun.as_str().into(), d.seq.into()],
        )
        .map(|_| ())
    }

    fn set_trust(&self, gun: &str, trust: &TrustState) -> Result<(), StorageError> {
        self.tx(Some(gun), |tx| {
            write_trust(tx, gun, trust)?;
            refresh(tx, gun)
        })
    }

    fn trust_of(&self, gun: &str) -> Result<Vec<Trusted>, StorageError> {
        let r: Vec<(String, String, String, String, Option<i64>)> =
            rows(&mut self.conn()?, m::TAGS_OF, &[gun.into()])?;
        Ok(r.into_iter()
            .map(|(tag, digest, role, signers, expires)| Trusted {
                tag,
                digest_hex: digest.trim().to_string(),
                role,
                signers,
                expires: expires.map(m::time_of),
            })
            .collect())
    }

    fn summary(&self, gun: &str) -> Result<Option<GunSummary>, StorageError> {
        Ok(first(&mut self.conn()?, m::ONE, &[gun.into()])?.map(summary))
    }

    fn summaries(&self, q: &PageQuery) -> Result<Vec<GunSummary>, StorageError> {
        let (page, from) = q.sql();
        let r: Vec<SummaryRow> = rows(
            &mut self.conn()?,
            page,
            &[
                from.into(),
                m::upper_bound(&q.prefix).into(),
                q.limit.into(),
                q.ready.map(i64::from).into(),
            ],
        )?;
        Ok(r.into_iter().map(summary).collect())
    }

    fn totals(
        &self,
        now: OffsetDateTime,
        horizon: OffsetDateTime,
        day_7: i64,
        day_30: i64,
    ) -> Result<Totals, StorageError> {
        let mut c = self.conn()?;
        let t: Option<TotalsRow> = first(&mut c, m::TOTALS, &[day_7.into(), day_30.into()])?;
        let t = t.unwrap_or_default();
        let roles: Option<(i64, i64)> = first(
            &mut c,
            m::ROLE_COUNTS,
            &[m::nanos(now).into(), m::nanos(horizon).into()],
        )?;
        let (expired, within) = roles.unwrap_or_default();
        Ok(Totals {
            guns: t.0,
            tags: t.1,
            mirrored: t.2,
            verified: t.3,
            queued: t.4,
            dead: t.5,
            drift: t.6,
            ready_guns: t.7,
            read_7d: t.8,
            read_30d: t.9,
            expired_roles: expired,
            expiring_roles: within - expired,
        })
    }

    fn expiring(
        &self,
        prefix: &str,
        horizon: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<Expiring>, StorageError> {
        let r: Vec<(String, String, i64)> = rows(
            &mut self.conn()?,
            m::EXPIRING,
            &[
                prefix.into(),
                m::upper_bound(prefix).into(),
                m::nanos(horizon).into(),
                limit.into(),
            ],
        )?;
        Ok(r.into_iter().map(expiring).collect())
    }

    fn roles_of(&self, gun: &str) -> Result<Vec<Expiring>, StorageError> {
        let r: Vec<(String, String, i64)> = rows(&mut self.conn()?, m::ROLES_OF, &[gun.into()])?;
        Ok(r.into_iter().map(expiring).collect())
    }

    fn add_usage(&self, batch: &[Usage]) -> Result<(), StorageError> {
        self.tx(None, |tx| {
            for u in batch {
                run(
                    tx,
                    m::ADD_USAGE,
                    &[
                        u.gun.as_str().into(),
                        u.day.into(),
                        u.client.as_str().into(),
                        u.version.as_str().into(),
                        u.reads.into(),
                        m::nanos(u.last_seen).into(),
                    ],
                )?;
                run(tx, m::MARK_READ, &[u.gun.as_str().into(), u.day.into()])?;
            }
            Ok(())
        })
    }

    fn set_read_only(&self, gun: &str, on: bool) -> Result<bool, StorageError> {
        let mut c = self.conn()?;
        let n = if on {
            run(&mut c, m::SET_READ_ONLY, &[gun.into(), now_nanos().into()])?
        } else {
            run(&mut c, m::CLEAR_READ_ONLY, &[gun.into()])?
        };
        Ok(n > 0)
    }

    fn read_only_since(&self, gun: &str) -> Result<Option<OffsetDateTime>, StorageError> {
        let r: Option<i64> = first(&mut self.conn()?, m::READ_ONLY_SINCE, &[gun.into()])?;
        Ok(r.map(m::time_of))
    }

    fn usage(
        &self,
        prefix: &str,
        exact: bool,
        since_day: i64,
        limit: i64,
    ) -> Result<Vec<Usage>, StorageError> {
        let r: Vec<(String, i64, String, String, i64, i64)> = rows(
            &mut self.conn()?,
            m::USAGE,
            &[
                prefix.into(),
                m::upper_bound(prefix).into(),
                since_day.into(),
                limit.into(),
                exact.then_some(prefix).into(),
            ],
        )?;
        Ok(r.into_iter()
            .map(|(gun, day, client, version, reads, last_seen)| Usage {
                gun,
                day,
                client,
                version,
                reads,
                last_seen: m::time_of(last_seen),
            })
            .collect())
    }
}

impl Renewals for MyStore {
    fn due_renewals(
        &self,
        timestamp_by: i64,
        snapshot_by: i64,
        limit: i64,
    ) -> Result<Vec<String>, StorageError> {
        let guns: Vec<String> = rows(
            &mut self.conn()?,
            renewals::DUE,
            &[timestamp_by.into(), snapshot_by.into(), limit.into()],
        )?;
        Ok(renewals::once(guns))
    }

    fn schedule(
        &self,
        gun: &str,
        timestamp: Option<i64>,
        snapshot: Option<i64>,
    ) -> Result<(), StorageError> {
        run(
            &mut self.conn()?,
            renewals::SCHEDULE,
            &[gun.into(), timestamp.into(), snapshot.into()],
        )
        .map(|_| ())
    }

    fn unscheduled(&self, limit: i64) -> Result<Vec<String>, StorageError> {
        rows(&mut self.conn()?, renewals::UNSCHEDULED, &[limit.into()])
    }
}

type CheckRow = (
    String,
    String,
    Option<i64>,
    Option<String>,
    bool,
    Option<String>,
    i64,
    Option<i64>,
);

impl MyStore {
    pub(super) fn put_checks(&self, gun: &str, checks: &[TagCheck]) -> Result<(), StorageError> {
        self.tx(None, |tx| {
            tx.exec_drop("DELETE FROM bridge_checks WHERE gun = ?", (gun,))
                .map_err(my)?;
            for k in checks {
                tx.exec_drop(
                    "INSERT INTO bridge_checks (gun, tag, digest, verified_at, registry_digest, drift, error, checked_at, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        gun,
                        &k.tag,
                        &k.digest_hex,
                        k.verified_at.map(nanos),
                        &k.registry_digest,
                        k.drift,
                        &k.error,
                        nanos(k.checked_at),
                        k.expires.map(nanos),
                    ),
                )
                .map_err(my)?;
            }
            mark(tx, gun, false)
        })
    }

    pub(super) fn get_checks(&self, gun: &str) -> Result<Vec<TagCheck>, StorageError> {
        let r: Vec<CheckRow> = self
            .conn()?
            .exec(
                "SELECT tag, digest, verified_at, registry_digest, drift, error, checked_at, expires FROM bridge_checks WHERE gun = ? ORDER BY tag",
                (gun,),
            )
            .map_err(my)?;
        Ok(r.into_iter()
            .map(|r| TagCheck {
                tag: r.0,
                digest_hex: r.1.trim().to_string(),
                verified_at: r.2.map(time_of),
                registry_digest: r.3.map(|d| d.trim().to_string()),
                drift: r.4,
                error: r.5,
                checked_at: time_of(r.6),
                expires: r.7.map(time_of),
            })
            .collect())
    }

    pub(super) fn count_checks(&self, now: OffsetDateTime) -> Result<(i64, i64), StorageError> {
        let r: Option<(i64, i64)> = self
            .conn()?
            .exec_first(
                "SELECT CAST(COALESCE(SUM(CASE WHEN drift THEN 1 ELSE 0 END), 0) AS SIGNED), CAST(COALESCE(SUM(CASE WHEN expires < ? THEN 1 ELSE 0 END), 0) AS SIGNED) FROM bridge_checks",
                (nanos(now),),
            )
            .map_err(my)?;
        Ok(r.unwrap_or_default())
    }
}
