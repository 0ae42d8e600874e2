//! Repository views in memory, within a byte budget, and the per-GUN writer locks.
//!
//! Hot repositories are answered from memory; cold ones are read from the store (one indexed
//! read per role) and cached only while they fit the budget: quick_cache evicts by weight
//! (S3-FIFO, close to LRU for this access pattern), so memory stays bounded at any number of
//! GUNs. Every change goes through one gate that bumps a generation, and a view read from the
//! store is put in only if the generation did not move meanwhile: a slow reader can never put
//! back metadata older than a concurrent update or delete.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use super::GunView;

/// `trustbridge.cache`: how much memory cached repository views may take.
#[derive(Clone, Copy, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// The budget for cached views, in MiB (default 64). A repository whose view alone is
    /// larger than a shard's part of it (a quarter of the budget from 64 MiB up) is served
    /// from the store every time. 64 MiB holds the whole views of about 8.6k typical
    /// repositories (≈7.7 KiB each: root with its certificates, targets, snapshot,
    /// timestamp), or the timestamps alone of about 60k polled ones (≈1 KiB each), and
    /// keeps the server at 97 MiB with 100k repositories (106 after reading all of them;
    /// bench/scale.sh; 242 MiB with 256). A cold GET of timestamp.json is one indexed read
    /// (p99 4.7 to 7.6 ms at 100k, 32 at a time, over two runs).
    pub max_mib: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings { max_mib: 64 }
    }
}

/// What a cached view costs: its files' bytes plus the bookkeeping around each, measured
/// coarsely (a `Stored` with its role and hash strings, a map slot) so the budget tracks RSS.
#[derive(Clone, Copy, Default)]
struct ViewWeight;

impl quick_cache::Weighter<String, Arc<GunView>> for ViewWeight {
    fn weight(&self, gun: &String, view: &Arc<GunView>) -> u64 {
        view_weight(gun, view)
    }
}

pub(super) fn view_weight(gun: &str, view: &GunView) -> u64 {
    const PER_FILE: usize = 256;
    const PER_VIEW: usize = 256;
    let files: usize = view
        .current
        .iter()
        .map(|(role, s)| s.data.len() + 2 * role.len() + PER_FILE)
        .sum();
    // The root is parsed beside its bytes on first need: counted up front, about its size again.
    let root = view.current.get("root").map_or(0, |s| s.data.len());
    (files + root + gun.len() + PER_VIEW) as u64
}

pub(super) struct ViewCache {
    views: quick_cache::sync::Cache<String, Arc<GunView>, ViewWeight>,
    /// The generation, bumped by every change; held while changing `views`.
    gate: Mutex<u64>,
}

impl ViewCache {
    pub(super) fn new(settings: CacheSettings) -> Self {
        let budget = settings.max_mib.max(1) << 20;
        // Few shards, so one view of a big repository still fits one: at the default 64 MiB,
        // 4 shards of 16 MiB hold a 100k-target repository's view (9.5 MiB), which with 8
        // shards of 8 MiB was read from the store again, a 9 MiB copy per concurrent GET
        // (bench/scale.sh). Smaller budgets: one shard.
        let shards = if budget >= 64 << 20 { 4 } else { 1 };
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity((budget / 8192).max(16) as usize)
            .weight_capacity(budget)
            .shards(shards)
            .build()
            .expect("cache options are valid");
        ViewCache {
            views: quick_cache::sync::Cache::with_options(
                options,
                ViewWeight,
                Default::default(),
                Default::default(),
            ),
            gate: Mutex::new(0),
        }
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, u64> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn get(&self, gun: &str) -> Option<Arc<GunView>> {
        self.views.get(gun)
    }

    /// The generation now: pass it to [`ViewCache::put_if_unchanged`] after reading the store.
    pub(super) fn generation(&self) -> u64 {
        *self.gate()
    }

    /// Cache a view read from the store, unless anything changed the cache since `before`.
    pub(super) fn put_if_unchanged(&self, gun: &str, view: Arc<GunView>, before: u64) {
        let g = self.gate();
        if *g == before {
            self.views.insert(gun.to_string(), view);
        }
    }

    /// Cache the view a write produced.
    pub(super) fn put(&self, gun: &str, view: Arc<GunView>) {
        let mut g = self.gate();
        *g += 1;
        self.views.insert(gun.to_string(), view);
    }

    /// Drop `gun`'s view, or every view.
    pub(super) fn forget(&self, gun: Option<&str>) {
        let mut g = self.gate();
        *g += 1;
        match gun {
            Some(gun) => {
                self.views.remove(gun);
            }
            None => self.views.clear(),
        }
    }

    /// (bytes held, budget, views held), for `/metrics`.
    pub(super) fn usage(&self) -> (u64, u64, usize) {
        (self.views.weight(), self.views.capacity(), self.views.len())
    }
}

/// A write in flight whose outcome the cache must follow even when the request that made it
/// is dropped (its client went away, hyper cancelled the handler): the write goes on in the
/// store's writer, so if this is dropped before the outcome is known, a task waits for it and
/// then drops the GUN's view. Reads may serve the old view until then, never after: the view
/// a reader took before the commit is not put back, since forgetting moves the generation.
pub(super) struct Landing<F: Future + Send + Unpin + 'static>
where
    F::Output: Send,
{
    cache: Arc<ViewCache>,
    gun: String,
    outcome: Option<F>,
}

impl<F: Future + Send + Unpin + 'static> Landing<F>
where
    F::Output: Send,
{
    pub(super) fn new(cache: &Arc<ViewCache>, gun: &str, outcome: F) -> Self {
        Landing {
            cache: cache.clone(),
            gun: gun.to_string(),
            outcome: Some(outcome),
        }
    }

    /// The write's outcome (the caller then updates or drops the view itself).
    pub(super) async fn outcome(mut self) -> F::Output {
        let out = self.outcome.as_mut().expect("awaited once").await;
        self.outcome = None;
        out
    }
}

impl<F: Future + Send + Unpin + 'static> Drop for Landing<F>
where
    F::Output: Send,
{
    fn drop(&mut self) {
        let Some(outcome) = self.outcome.take() else {
            return;
        };
        let (cache, gun) = (self.cache.clone(), std::mem::take(&mut self.gun));
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let _ = outcome.await;
                    cache.forget(Some(&gun));
                });
            }
            Err(_) => cache.forget(Some(&gun)),
        }
    }
}

/// One writer per GUN at a time (updates, renewals, deletes, imports). A lock lives only while
/// someone holds or waits for it: idle ones are dropped once the map has doubled since the
/// last sweep, so memory does not grow with every GUN ever written.
#[derive(Default)]
pub(super) struct GunLocks {
    /// The locks by GUN, and how many were left after the last sweep.
    map: Mutex<(HashMap<String, GunLock>, usize)>,
}

type GunLock = Arc<tokio::sync::Mutex<()>>;

impl GunLocks {
    pub(super) fn get(&self, gun: &str) -> GunLock {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (map, swept) = &mut *m;
        if map.len() >= (*swept * 2).max(1024) {
            // Only this map holds an idle lock.
            map.retain(|_, l| Arc::strong_count(l) > 1);
            *swept = map.len();
        }
        map.entry(gun.to_string()).or_default().clone()
    }

    pub(super) fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Stored;

    fn view(bytes: usize) -> Arc<GunView> {
        let mut v = GunView::default();
        v.current.insert(
            "targets".into(),
            Stored {
                role: "targets".into(),
                version: 1,
                data: Arc::from(vec![b'x'; bytes]),
                sha256: String::new(),
                created_at: time::OffsetDateTime::UNIX_EPOCH,
            },
        );
        Arc::new(v)
    }

    #[test]
    fn the_budget_holds_with_more_guns_than_fit() {
        let c = ViewCache::new(CacheSettings { max_mib: 1 });
        for i in 0..2000 {
            c.put(&format!("example.com/g{i}"), view(4096));
            let (held, budget, _) = c.usage();
            assert!(held <= budget, "{held} > {budget} after {i}");
        }
        let (_, _, n) = c.usage();
        assert!(n > 50 && n < 2000, "{n} views held");
    }

    #[test]
    fn a_read_older_than_a_write_is_not_cached() {
        let c = ViewCache::new(CacheSettings::default());
        let before = c.generation();
        c.forget(Some("a"));
        c.put_if_unchanged("a", view(1), before);
        assert!(c.get("a").is_none());
        let before = c.generation();
        c.put_if_unchanged("a", view(1), before);
        assert!(c.get("a").is_some());
    }

    /// A write whose waiter is dropped (its request cancelled) before the outcome still
    /// drops the view once the write is answered; a waiter that sees the outcome leaves the
    /// view to its caller.
    #[tokio::test]
    async fn a_cancelled_write_drops_the_view_when_it_lands() {
        let c = Arc::new(ViewCache::new(CacheSettings::default()));
        c.put("a", view(1));
        let (answer, ticket) = tokio::sync::oneshot::channel::<u32>();
        let waiting = tokio::spawn(Landing::new(&c, "a", ticket).outcome());
        tokio::task::yield_now().await;
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        assert!(c.get("a").is_some(), "dropped before the write landed");
        answer
            .send(7)
            .expect("the write's outcome is still awaited");
        for _ in 0..100 {
            if c.get("a").is_none() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(c.get("a").is_none(), "the view outlived the write");

        c.put("b", view(1));
        let (answer, ticket) = tokio::sync::oneshot::channel::<u32>();
        answer.send(7).unwrap();
        assert_eq!(Landing::new(&c, "b", ticket).outcome().await, Ok(7));
        assert!(c.get("b").is_some(), "the caller decides after an answer");
    }

    #[test]
    fn idle_locks_are_dropped() {
        let l = GunLocks::default();
        let held = l.get("kept");
        for i in 0..5000 {
            drop(l.get(&format!("g{i}")));
        }
        assert!(l.len() < 2100, "{} locks kept", l.len());
        assert!(
            Arc::ptr_eq(&held, &l.get("kept")),
            "a held lock is never replaced"
        );
    }
}
