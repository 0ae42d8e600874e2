//! Early renewal of server-signed timestamp and snapshot (notary re-signed only after expiry).

use time::OffsetDateTime;
use trustbridge_tuf::metadata::{FileMeta, expiry};
use trustbridge_tuf::{GoTime, Signed, Snapshot};

use super::Repo;
use crate::error::Error;
use crate::storage::Update;

/// Most GUNs one sweep renews or schedules (the next sweep takes the rest).
const SWEEP_BATCH: i64 = 10_000;

impl Repo {
    /// Renew every GUN whose timestamp or server-held snapshot is due, so a repository that
    /// nobody reads for a while is still fresh when someone does. Due GUNs come from the
    /// renewal schedule (an indexed query, O(due)); GUNs without a schedule (stored before
    /// it existed, or by another server) are scheduled on this process's first sweep.
    /// Returns how many were renewed or failed.
    pub async fn sweep(&self) -> (usize, usize) {
        if !self
            .scheduled
            .swap(true, std::sync::atomic::Ordering::Relaxed)
            && let Err(e) = self.schedule_unscheduled().await
        {
            self.scheduled
                .store(false, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(error = %e, "renewal sweep: scheduling stored GUNs failed");
        }
        let now = crate::storage::now_nanos();
        let by = |d: time::Duration| now.saturating_add(d.whole_nanoseconds() as i64);
        let (ts_by, snap_by) = (by(self.renewal.timestamp), by(self.renewal.snapshot));
        let guns = match self.read(|s| s.due_renewals(ts_by, snap_by, SWEEP_BATCH)) {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "renewal sweep: finding due GUNs failed");
                return (0, 0);
            }
        };
        let (mut renewed, mut failed) = (0, 0);
        // `renew` reads each GUN once, under its lock, and does nothing when it is not due.
        for gun in guns {
            match self.renew(&gun).await {
                Ok(true) => renewed += 1,
                Ok(false) => {
                    // Due by the schedule, not by its files (another server renewed it):
                    // schedule it from what is stored.
                    if let Err(e) = self.reschedule(&gun).await {
                        tracing::warn!(%gun, error = %e, "renewal sweep: rescheduling failed");
                    }
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(%gun, error = %e, "renewal sweep: renewing failed");
                }
            }
        }
        (renewed, failed)
    }

    /// Schedule every GUN that has none, from its current files.
    async fn schedule_unscheduled(&self) -> Result<usize, Error> {
        let mut done = 0;
        loop {
            let guns = self.read(|s| s.unscheduled(SWEEP_BATCH))?;
            for gun in &guns {
                self.reschedule(gun).await?;
            }
            done += guns.len();
            if (guns.len() as i64) < SWEEP_BATCH {
                return Ok(done);
            }
        }
    }

    /// Record `gun`'s expiries as its current files say.
    async fn reschedule(&self, gun: &str) -> Result<(), Error> {
        let view = self.resolve_view(gun, &[])?;
        let exp = |role: &str| view.expires(role).map(crate::storage::nanos);
        let (ts, snap) = (exp("timestamp"), exp("snapshot"));
        let owned = gun.to_string();
        crate::storage::write(self.store(), move |s| s.schedule(&owned, ts, snap)).await?;
        Ok(())
    }

    /// Re-sign the snapshot (if due and held) and the timestamp of `gun` (§4.2, early).
    /// Returns false when nothing was due (or someone else renewed it meanwhile).
    pub(super) async fn renew(&self, gun: &str) -> Result<bool, Error> {
        let lock = self.lock_for(gun);
        let _guard = lock.lock().await;
        let view = self.resolve_view(gun, &[])?;
        let now = OffsetDateTime::now_utc();
        if view.renew_at.is_none_or(|t| t > now) {
            return Ok(false);
        }
        let root_bytes = view.current.get("root").ok_or(Error::NotFound)?;
        let root = view
            .root()
            .ok_or_else(|| Error::internal(format!("stored root of {gun}"), "it does not parse"))?;
        let snap = view.current.get("snapshot").ok_or(Error::NotFound)?;
        let snap_doc = Signed::<Snapshot>::from_bytes("snapshot", &snap.data)
            .map_err(|e| Error::internal(format!("stored snapshot of {gun}"), e))?;
        let mut updates = Vec::new();
        let mut snapshot_bytes = snap.data.clone();
        if snap_doc.signed.expires.as_offset_datetime() - self.renewal.snapshot <= now {
            let mut body = snap_doc.signed.clone();
            body.version += 1;
            body.expires = GoTime::now().plus_years(expiry::SNAPSHOT_YEARS);
            body.meta
                .insert("root".into(), FileMeta::from_bytes(&root_bytes.data));
            match self
                .server_sign(gun, "snapshot", &root.signed, body.clone())
                .await?
            {
                Some(s) => {
                    snapshot_bytes = s.raw().to_vec().into();
                    updates.push(Update {
                        role: "snapshot".into(),
                        version: body.version,
                        data: snapshot_bytes.clone(),
                    });
                }
                None => {
                    if snap_doc.signed.expires.as_offset_datetime() <= now {
                        return Err(Error::internal(
                            format!("renewing {gun}"),
                            "snapshot expired and the server does not hold its key",
                        ));
                    }
                }
            }
        }
        let ts = self
            .make_timestamp(
                gun,
                &root.signed,
                view.current.get("timestamp"),
                &snapshot_bytes,
            )
            .await?;
        updates.push(ts);
        self.store_and_remember(gun, &view, updates, vec![])
            .await
            .map(|()| true)
    }
}
