//! `trustbridge-server bridge backfill`: mirror every target already stored, e.g. when the
//! bridge is turned on for an existing server. Jobs are added only for targets that never had
//! one, so running it again is a no-op (`redeliver` queues them all again: delivery is
//! idempotent per layout, so only what the registry lacks is written); delivery is the worker's, run here in the foreground
//! with a progress bar until nothing is due.

use indicatif::{ProgressBar, ProgressStyle};

use super::Bridge;
use crate::error::Error;
use crate::repo::Repo;
use crate::storage::MetaStore;

pub struct Report {
    pub added: usize,
    pub mirrored: usize,
    pub failed: usize,
}

pub async fn backfill(
    repo: &Repo,
    bridge: &Bridge,
    prefix: &str,
    redeliver: bool,
) -> Result<Report, Error> {
    let store = repo.store().clone();
    let mut added = 0;
    for gun in store.guns()?.into_iter().filter(|g| g.starts_with(prefix)) {
        let (set, _) = repo.mirror_set(&gun, bridge.cfg.on_expiry).await?;
        store.set_trust(&gun, &repo.trust_state(&gun).await?)?;
        let mut jobs = Vec::new();
        for job in crate::mirror::jobs_between(&Default::default(), &set) {
            if redeliver || !store.has_job(&gun, &job)? {
                jobs.push(job);
            }
        }
        added += jobs.len();
        store.enqueue(&gun, &jobs)?;
    }
    let mut report = deliver_due(bridge, store.as_ref()).await?;
    report.added = added;
    Ok(report)
}

/// Deliver what is due in the foreground, with a progress bar, until nothing is (or only
/// failures remain).
pub async fn deliver_due(bridge: &Bridge, store: &dyn MetaStore) -> Result<Report, Error> {
    let bar = ProgressBar::new(store.due_jobs(100_000)?.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} mirrored ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut mirrored, mut failed) = (0, 0);
    loop {
        let tried = bridge.run_once().await;
        if tried.is_empty() {
            break;
        }
        for ok in tried {
            if ok {
                mirrored += 1;
                bar.inc(1);
            } else {
                failed += 1;
            }
        }
        if failed > 0 && store.due_jobs(1)?.is_empty() {
            break;
        }
    }
    bar.finish();
    Ok(Report {
        added: 0,
        mirrored,
        failed,
    })
}
