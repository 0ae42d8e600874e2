//! The link between replicas: LISTEN for other replicas' commits (their GUNs' cached views
//! are dropped at once), a look at the changefeed every second (for writers that do not
//! notify: notary-server on the same database), and the bridge lease, a session advisory lock
//! held while the link lives.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::AsyncMessage;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};

use crate::storage::Watcher;

/// Held by the replica that runs the Cosign bridge.
const BRIDGE_LOCK: i64 = 0x7462_0002;
/// Commits notify this channel with `<instance>\t<gun>`.
pub(super) const CHANNEL: &str = "trustbridge_changes";

/// The replica link: LISTEN for other replicas' commits, hold the bridge lease while it can.
/// Reconnects forever; after a gap every view is dropped, since notifications were missed.
pub(super) async fn listen<T>(
    config: tokio_postgres::Config,
    tls: T,
    lease: Arc<AtomicBool>,
    watchers: Arc<Mutex<Vec<Watcher>>>,
    instance: String,
) where
    T: MakeTlsConnect<tokio_postgres::Socket> + Clone + Send + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<tokio_postgres::Socket>>::Future: Send,
{
    let notify = |gun: Option<&str>| {
        let ws: Vec<Watcher> = watchers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for w in ws {
            w(gun);
        }
    };
    loop {
        if let Ok((client, mut conn)) = config.connect(tls.clone()).await {
            let (ntx, mut nrx) = tokio::sync::mpsc::unbounded_channel::<String>();
            let driver = tokio::spawn(async move {
                while let Some(m) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                    match m {
                        Ok(AsyncMessage::Notification(n)) => {
                            let _ = ntx.send(n.payload().to_string());
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            });
            if client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .await
                .is_ok()
                && let Ok(row) = client
                    .query_one("SELECT COALESCE(MAX(id), 0)::bigint FROM changefeed", &[])
                    .await
            {
                // Writers that do not notify (notary-server side by side on the same
                // database) are seen through the changefeed, within a second.
                let mut seen: i64 = row.get(0);
                notify(None);
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        msg = nrx.recv() => match msg {
                            Some(p) => {
                                let (from, gun) = p.split_once('\t').unwrap_or(("", &p));
                                if from != instance {
                                    notify(Some(gun));
                                }
                            }
                            None => break,
                        },
                        _ = tick.tick() => {
                            if client.is_closed() {
                                break;
                            }
                            match client.query("SELECT id::bigint, gun FROM changefeed WHERE id > $1::bigint ORDER BY id", &[&seen]).await {
                                Ok(rows) => {
                                    for r in rows {
                                        seen = r.get(0);
                                        notify(Some(r.get::<_, &str>(1)));
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "PostgreSQL: reading the changefeed failed; reconnecting");
                                    break;
                                }
                            }
                            if !lease.load(Ordering::Relaxed) {
                                match client.query_one("SELECT pg_try_advisory_lock($1)", &[&BRIDGE_LOCK]).await {
                                    Ok(r) => lease.store(r.get::<_, bool>(0), Ordering::Relaxed),
                                    Err(_) => break,
                                }
                            }
                        }
                    }
                }
            }
            driver.abort();
        }
        if lease.swap(false, Ordering::Relaxed) {
            tracing::warn!("PostgreSQL: lost the replica link; the bridge lease is released");
        }
        notify(None);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
