//! DCT usage: who still reads trust data, by GUN, client kind and version, per day — the
//! question Docker answered for Docker Hub before switching DCT off.
//!
//! The read path only counts in memory (a sharded map keyed by a hash, so a repeated read
//! allocates nothing); [`Recorder::drain`] hands the counts to a flusher that writes them in
//! one transaction every `usage_flush_seconds`. Prometheus gets counters by client kind and
//! major version only, never by GUN, and at most [`MAX_SERIES`] of them.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use time::OffsetDateTime;

use crate::metrics::Metrics;
use crate::storage::migration::{Usage, day_of};

/// Which client read: docker CLI (`Docker-Client/<version> (<os>)`), the notary CLI and other
/// Go clients (`Go-http-client/<proto>`: notary sends Go's default), our own CLI, anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    Docker,
    Go,
    Trustbridge,
    Other,
}

impl Client {
    pub fn as_str(self) -> &'static str {
        match self {
            Client::Docker => "docker",
            Client::Go => "go",
            Client::Trustbridge => "trustbridge",
            Client::Other => "other",
        }
    }

    /// The kind [`Self::as_str`] names (anything else is `Other`).
    pub fn parse(s: &str) -> Client {
        [Client::Docker, Client::Go, Client::Trustbridge]
            .into_iter()
            .find(|c| c.as_str() == s)
            .unwrap_or(Client::Other)
    }

    /// What the page says of a client kind.
    pub fn describe(kind: &str) -> &'static str {
        match kind {
            "docker" => "docker CLI",
            "go" => "notary CLI or another Go client",
            "trustbridge" => "trustbridge CLI",
            _ => "other client",
        }
    }
}

/// At most this many (client, major version) series on `/metrics`; later ones count as
/// major `other`.
pub const MAX_SERIES: usize = 32;

/// The client kind and version a `User-Agent` names (the version cut to 32 safe characters).
pub fn parse_agent(ua: &str) -> (Client, &str) {
    let version_after = |marker: &str| -> Option<&str> {
        let at = ua.find(marker)? + marker.len();
        let rest = &ua[at..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || ".+-_~".contains(c)))
            .unwrap_or(rest.len())
            .min(32);
        Some(&rest[..end])
    };
    if let Some(v) = version_after("Docker-Client/") {
        (Client::Docker, v)
    } else if let Some(v) = ua
        .strip_prefix("Go-http-client/")
        .and(version_after("Go-http-client/"))
    {
        (Client::Go, v)
    } else if let Some(v) = ua
        .strip_prefix("trustbridge/")
        .and(version_after("trustbridge/"))
    {
        (Client::Trustbridge, v)
    } else {
        (Client::Other, "")
    }
}

/// The major version for metrics: up to three digits, else `other`.
fn major(version: &str) -> &str {
    let m = version.split('.').next().unwrap_or("");
    if !m.is_empty() && m.len() <= 3 && m.bytes().all(|b| b.is_ascii_digit()) {
        m
    } else {
        "other"
    }
}

struct Count {
    gun: String,
    day: i64,
    client: Client,
    version: String,
    reads: i64,
    last_seen: OffsetDateTime,
}

const SHARDS: usize = 16;

/// Counts held before the flusher is asked to write them early. A count costs about 200
/// bytes; before this bound, reads of 100k distinct GUNs within one flush interval (10 s)
/// took the server from 97 to 152 MiB.
pub const FLUSH_AT: usize = 20_000;

/// Reads counted since the last flush.
pub struct Recorder {
    shards: Vec<Mutex<HashMap<u64, Vec<Count>>>>,
    /// Counts held (new (GUN, day, client, version) entries since the last drain).
    held: std::sync::atomic::AtomicUsize,
    /// Woken when `held` reaches [`FLUSH_AT`]: the flusher writes then, not at its next tick.
    full: tokio::sync::Notify,
    metrics: Metrics,
    /// The (client, major) series `/metrics` has (at most [`MAX_SERIES`]: a scan, no
    /// allocation on the read path).
    series: std::sync::RwLock<Vec<(Client, String)>>,
}

impl Recorder {
    pub fn new(metrics: Metrics) -> Self {
        Recorder {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            held: Default::default(),
            full: Default::default(),
            metrics,
            series: std::sync::RwLock::new(Vec::new()),
        }
    }

    /// Count one read of `gun`'s trust data by the client `user_agent` names.
    pub fn record(&self, gun: &str, user_agent: Option<&str>, now: OffsetDateTime) {
        let (client, version) = parse_agent(user_agent.unwrap_or(""));
        // Only new reads ask for an early flush: counts put back after a failed write do
        // not, or a store that is down would be retried in a loop.
        if self.add(gun, day_of(now), client, version, 1, now) == FLUSH_AT {
            self.full.notify_one();
        }
        self.count_metric(client, major(version));
    }

    /// Add `reads` to one (GUN, day, client, version) count; only a first read of it
    /// allocates. Returns how many counts are held when this one is new, else 0.
    fn add(
        &self,
        gun: &str,
        day: i64,
        client: Client,
        version: &str,
        reads: i64,
        seen: OffsetDateTime,
    ) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (gun, day, client, version).hash(&mut h);
        let key = h.finish();
        let mut shard = self.shards[(key as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // One count per key but on a 64-bit hash collision: room for one, not Vec's first
        // four (a 352-byte allocation per GUN read).
        let bucket = shard.entry(key).or_insert_with(|| Vec::with_capacity(1));
        match bucket
            .iter_mut()
            .find(|c| c.gun == gun && c.day == day && c.client == client && c.version == version)
        {
            Some(c) => {
                c.reads += reads;
                c.last_seen = c.last_seen.max(seen);
            }
            None => {
                bucket.push(Count {
                    gun: gun.to_string(),
                    day,
                    client,
                    version: version.to_string(),
                    reads,
                    last_seen: seen,
                });
                return self.held.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            }
        }
        0
    }

    /// Resolves when [`FLUSH_AT`] counts are held (a notification given while nobody waited
    /// is kept for the next waiter).
    pub async fn full(&self) {
        self.full.notified().await
    }

    fn count_metric(&self, client: Client, major: &str) {
        let is = |(c, m): &(Client, String)| *c == client && m == major;
        let known = self
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(is);
        let major = if known {
            major
        } else {
            let mut series = self.series.write().unwrap_or_else(|p| p.into_inner());
            if series.iter().any(is) {
                major
            } else if series.len() < MAX_SERIES {
                series.push((client, major.to_string()));
                major
            } else {
                "other"
            }
        };
        self.metrics.dct_read(client.as_str(), major);
    }

    /// Everything counted since the last drain.
    pub fn drain(&self) -> Vec<Usage> {
        self.held.store(0, std::sync::atomic::Ordering::Relaxed);
        let mut out = Vec::new();
        for shard in &self.shards {
            let taken = std::mem::take(&mut *shard.lock().unwrap_or_else(|p| p.into_inner()));
            out.extend(taken.into_values().flatten().map(|c| Usage {
                gun: c.gun,
                day: c.day,
                client: c.client.as_str().to_string(),
                version: c.version,
                reads: c.reads,
                last_seen: c.last_seen,
            }));
        }
        out
    }

    /// Put back a batch that could not be written, to be tried with the next one.
    pub fn restore(&self, batch: Vec<Usage>) {
        for u in batch {
            let client = Client::parse(&u.client);
            let _ = self.add(&u.gun, u.day, client, &u.version, u.reads, u.last_seen);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads of more distinct GUNs than [`FLUSH_AT`] within one interval ask for an early
    /// flush, so the counts held stay bounded; after the drain the count starts again.
    #[tokio::test]
    async fn many_guns_ask_for_an_early_flush() {
        let r = Recorder::new(Metrics::new());
        let now = OffsetDateTime::now_utc();
        let early = || tokio::time::timeout(std::time::Duration::from_millis(50), r.full());
        for i in 0..FLUSH_AT - 1 {
            r.record(
                &format!("example.com/g{i}"),
                Some("Docker-Client/28.2.2"),
                now,
            );
        }
        r.record("example.com/g0", Some("Docker-Client/28.2.2"), now);
        assert!(early().await.is_err(), "asked before the bound");
        r.record("example.com/last", None, now);
        assert!(early().await.is_ok(), "not asked at the bound");
        assert_eq!(r.drain().len(), FLUSH_AT);
        r.record("example.com/again", None, now);
        assert!(early().await.is_err(), "asked again right after a drain");
    }

    #[test]
    fn agents_name_their_clients() {
        assert_eq!(
            parse_agent("Docker-Client/28.2.2 (linux)"),
            (Client::Docker, "28.2.2")
        );
        assert_eq!(
            parse_agent("docker/28.2.2 go/go1.24 UpstreamClient(Docker-Client/28.2.2 \\(linux\\))"),
            (Client::Docker, "28.2.2")
        );
        assert_eq!(parse_agent("Go-http-client/1.1"), (Client::Go, "1.1"));
        assert_eq!(
            parse_agent("trustbridge/0.1.0"),
            (Client::Trustbridge, "0.1.0")
        );
        assert_eq!(parse_agent("curl/8.0"), (Client::Other, ""));
        assert_eq!(parse_agent("x Go-http-client/1.1"), (Client::Other, ""));
        let long = format!("Docker-Client/{}<script>", "9".repeat(80));
        let (_, v) = parse_agent(&long);
        assert_eq!(v.len(), 32);
        assert_eq!(major("28.2.2"), "28");
        assert_eq!(major("99999"), "other");
        assert_eq!(major(""), "other");
    }

    #[test]
    fn reads_add_up_per_gun_client_and_day_and_drain_once() {
        let r = Recorder::new(Metrics::new());
        let now = OffsetDateTime::now_utc();
        for _ in 0..3 {
            r.record("a/b", Some("Docker-Client/28.2.2 (linux)"), now);
        }
        r.record("a/b", Some("Go-http-client/1.1"), now);
        r.record("a/c", None, now);
        let mut got = r.drain();
        got.sort_by(|a, b| (&a.gun, &a.client).cmp(&(&b.gun, &b.client)));
        let short: Vec<_> = got
            .iter()
            .map(|u| (u.gun.as_str(), u.client.as_str(), u.reads))
            .collect();
        assert_eq!(
            short,
            [("a/b", "docker", 3), ("a/b", "go", 1), ("a/c", "other", 1)]
        );
        assert!(r.drain().is_empty());
        r.restore(got);
        assert_eq!(r.drain().iter().map(|u| u.reads).sum::<i64>(), 5);
    }
}
