//! Early renewal of server-signed timestamp and snapshot (notary re-signed only after expiry).

use time::OffsetDateTime;
use trustbridge_tuf::metadata::{FileMeta, expiry};
use trustbridge_tuf::{GoTime, Signed, Snapshot};

use super::Repo;
use crate::error::Error;
use crate::storage::Update;

impl Repo {
    /// Renew every GUN whose timestamp or server-held snapshot is due, so a repository that
    /// nobody reads for a while is still fresh when someone does. Returns how many were renewed
    /// or failed.
    pub async fn sweep(&self) -> (usize, usize) {
        let guns = match self.read(|s| s.guns()) {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "renewal sweep: listing GUNs failed");
                return (0, 0);
            }
        };
        let (mut renewed, mut failed) = (0, 0);
        // `renew` reads each GUN once, under its lock, and does nothing when it is not due.
        for gun in guns {
            match self.renew(&gun).await {
                Ok(true) => renewed += 1,
                Ok(false) => {}
                Err(e) => {
                    failed += 1;
                    tracing::warn!(%gun, error = %e, "renewal sweep: renewing failed");
                }
            }
        }
        (renewed, failed)
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
