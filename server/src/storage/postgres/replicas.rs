//! The link between replicas: LISTEN for other replicas' commits (their GUNs' cached views
//! are dropped), and the bridge lease, a session advisory lock held while the link lives.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::{AsyncMessage, NoTls};

use crate::storage::Watcher;

/// Held by the replica that runs the Cosign bridge.
const BRIDGE_LOCK: i64 = 0x7462_0002;
/// Commits notify this channel with `<instance>\t<gun>`.
pub(super) const CHANNEL: &str = "trustbridge_changes";

/// The replica link: LISTEN for other replicas' commits, hold the bridge lease while it can.
/// Reconnects forever; after a gap every view is dropped, since notifications were missed.
pub(super) async fn listen(
    config: tokio_postgres::Config,
    lease: Arc<AtomicBool>,
    watchers: Arc<Mutex<Vec<Watcher>>>,
    instance: String,
) {
    let notify = |gun: Option<&str>| {
        let ws: Vec<Watcher> = watchers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for w in ws {
            w(gun);
        }
    };
    loop {
        if let Ok((client, mut conn)) = config.connect(NoTls).await {
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
            {
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
