//! What MySQL cannot push: a thread of the store's own, on a connection of its own, reads the
//! changefeed every [`POLL`] and tells the watchers which GUNs others wrote (notary-server
//! writes a changefeed row for every timestamp and every deletion; so do we), and holds the
//! bridge lease (a named lock that MySQL releases when this connection goes, so another
//! replica takes it over). After a lost connection every watcher hears `None`: changes may
//! have been missed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::mysql::prelude::Queryable;
use ::mysql::{Conn, Opts};

use super::schema::BRIDGE_LOCK;
use crate::storage::Watcher;

/// How stale another replica's (or notary-server's) write may be here at most. An empty poll
/// is one primary-key range probe (tens of microseconds of the database's time), so a short
/// interval is cheap, and it keeps replicas as close as PostgreSQL's NOTIFY keeps them: a
/// client that published through one replica and reads through another at once sees its write.
pub(super) const POLL: Duration = Duration::from_millis(10);

/// Changefeed rows read per poll.
const BATCH: i64 = 1000;

pub(super) fn start(
    opts: Opts,
    lease: Arc<AtomicBool>,
    watchers: Arc<Mutex<Vec<Watcher>>>,
    own: Arc<Mutex<HashSet<i64>>>,
    stop: Arc<AtomicBool>,
) {
    let notify = move |gun: Option<&str>| {
        for w in watchers.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            w(gun);
        }
    };
    let spawned = std::thread::Builder::new()
        .name("trustbridge-mysql-watch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match Conn::new(opts.clone()) {
                    Ok(mut conn) => {
                        let end = follow(&mut conn, &lease, &notify, &own, &stop);
                        lease.store(false, Ordering::Relaxed);
                        if let Err(e) = end {
                            tracing::warn!(error = %e, "MySQL changefeed watch lost its connection");
                        }
                    }
                    Err(e) => {
                        lease.store(false, Ordering::Relaxed);
                        tracing::warn!(error = %e, "MySQL changefeed watch cannot connect");
                    }
                }
                notify(None);
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the MySQL changefeed watch");
    }
}

/// Poll until the connection fails or the store is dropped.
fn follow(
    conn: &mut Conn,
    lease: &AtomicBool,
    notify: &dyn Fn(Option<&str>),
    own: &Mutex<HashSet<i64>>,
    stop: &AtomicBool,
) -> Result<(), ::mysql::Error> {
    let mut seen: i64 = conn
        .query_first("SELECT CAST(COALESCE(MAX(id), 0) AS SIGNED) FROM changefeed")?
        .unwrap_or(0);
    // Whatever was cached before this connection may be stale.
    notify(None);
    while !stop.load(Ordering::Relaxed) {
        if !lease.load(Ordering::Relaxed) {
            let got: Option<Option<i64>> =
                conn.exec_first("SELECT GET_LOCK(?, 0)", (BRIDGE_LOCK,))?;
            if got == Some(Some(1)) {
                lease.store(true, Ordering::Relaxed);
                tracing::info!("this replica runs the Cosign bridge (MySQL lease)");
            }
        }
        let rows: Vec<(i64, String)> = conn.exec(
            "SELECT id, gun FROM changefeed WHERE id > ? ORDER BY id LIMIT ?",
            (seen, BATCH),
        )?;
        let mut own = own.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = Vec::new();
        for (id, gun) in rows {
            seen = id;
            if !own.remove(&id) {
                changed.push(gun);
            }
        }
        // A row recorded as ours after this poll passed it will never be read again.
        own.retain(|&id| id > seen);
        drop(own);
        for gun in &changed {
            notify(Some(gun));
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}
