//! Load generator for bench/scale.sh: many repositories, key creation as keys accumulate, GETs
//! of hot and cold repositories, one very large publish. The same requests for every server.
//!
//!   scale-load populate URL CA PREFIX FROM COUNT CONCURRENCY
//!       create repositories PREFIX/FROM .. PREFIX/(FROM+COUNT-1) (server-held snapshot and
//!       timestamp: two CreateKeys and one publish each); prints repositories per second
//!   scale-load keys URL CA PREFIX COUNT
//!       GET timestamp.key of COUNT new GUNs one at a time (each a CreateKey); prints the
//!       median and mean ms per key
//!   scale-load get URL CA PREFIX COUNT SECONDS CONCURRENCY hot|cold
//!       GET timestamp.json of random repositories among the first 100 (hot), or of all COUNT
//!       each once in a scrambled order (cold); prints requests per second, p50 and p99
//!   scale-load big URL CA GUN TARGETS
//!       create GUN and publish one targets.json with TARGETS entries; prints its size and
//!       the publish's latency

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use trustbridge_e2e::load::{LoadError, Repository, client};

/// A small xorshift generator: the load needs spread, not quality.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

async fn populate(
    url: &str,
    ca: &[u8],
    prefix: &str,
    from: u64,
    count: u64,
    conc: u64,
) -> Result<(), LoadError> {
    let c = client(ca);
    let next = Arc::new(AtomicU64::new(from));
    let start = Instant::now();
    let tasks: Vec<_> = (0..conc)
        .map(|_| {
            let (c, url, prefix, next) =
                (c.clone(), url.to_string(), prefix.to_string(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= from + count {
                        return Ok::<(), LoadError>(());
                    }
                    Repository::create(&c, &url, &format!("{prefix}/{i}")).await?;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let s = start.elapsed().as_secs_f64();
    println!(
        "{:.1} repositories/s ({count} in {s:.1} s)",
        count as f64 / s
    );
    Ok(())
}

async fn keys(url: &str, ca: &[u8], prefix: &str, count: u64) -> Result<(), LoadError> {
    let c = client(ca);
    let mut lat = Vec::with_capacity(count as usize);
    for i in 0..count {
        let base = format!("{url}/v2/{prefix}/{i}/_trust/tuf");
        let start = Instant::now();
        trustbridge_e2e::load::server_key(&c, &base, "timestamp").await?;
        lat.push(start.elapsed());
    }
    let mean = lat.iter().sum::<Duration>().as_secs_f64() * 1000.0 / lat.len().max(1) as f64;
    lat.sort();
    // The median leads: a key's cost is its lookup and insert, and the mean also carries the
    // few keys whose commit met a slow fsync (±10% between runs of the same binary).
    let median = percentile_ms(&lat, 0.50);
    println!("{median:.3} ms per key (median; mean {mean:.3}; {count} CreateKeys, one at a time)");
    Ok(())
}

async fn get(
    url: &str,
    ca: &[u8],
    prefix: &str,
    count: u64,
    secs: u64,
    conc: u64,
    hot: bool,
) -> Result<(), LoadError> {
    let c = client(ca);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    // Cold reads visit the repositories in a scrambled order, each once until all were read
    // (i * step mod count, step coprime to count): a cold read is one no earlier request of
    // the run could have cached.
    let next = Arc::new(AtomicU64::new(0));
    let mut step = 0x9e37_79b1 % count.max(1);
    while count > 1 && gcd(step, count) != 1 {
        step += 1;
    }
    let tasks: Vec<_> = (0..conc)
        .map(|t| {
            let (c, url, prefix, next) =
                (c.clone(), url.to_string(), prefix.to_string(), next.clone());
            tokio::spawn(async move {
                let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let i = match hot {
                        true => rng.below(count.min(100)),
                        false => {
                            next.fetch_add(1, Ordering::Relaxed) % count.max(1) * step
                                % count.max(1)
                        }
                    };
                    let t0 = Instant::now();
                    let r = c
                        .get(format!("{url}/v2/{prefix}/{i}/_trust/tuf/timestamp.json"))
                        .send()
                        .await?;
                    let ok = r.status().is_success();
                    r.bytes().await?;
                    if !ok {
                        return Err::<Vec<Duration>, LoadError>(
                            format!("GET {prefix}/{i}: not found").into(),
                        );
                    }
                    lat.push(t0.elapsed());
                }
                Ok(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort();
    let s = start.elapsed().as_secs_f64();
    println!(
        "{:.0} GET/s p50 {:.2} ms p99 {:.2} ms ({} {} requests)",
        all.len() as f64 / s,
        percentile_ms(&all, 0.50),
        percentile_ms(&all, 0.99),
        all.len(),
        if hot { "hot" } else { "cold" }
    );
    Ok(())
}

/// The `p` quantile of `sorted` latencies, in ms (0 when there are none).
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

async fn big(url: &str, ca: &[u8], gun: &str, targets: usize) -> Result<(), LoadError> {
    let c = client(ca);
    let mut repo = Repository::create(&c, url, gun).await?;
    let body = repo.next(targets, 0)?;
    let size = body.len();
    let t0 = Instant::now();
    trustbridge_e2e::load::post(&c, &repo.base, vec![("targets", body)]).await?;
    println!(
        "{:.0} ms to publish {targets} targets ({:.1} MiB targets.json)",
        t0.elapsed().as_secs_f64() * 1000.0,
        size as f64 / (1 << 20) as f64
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a: Vec<String> = std::env::args().collect();
    let usage = "usage: scale-load populate|keys|get|big URL CA ... (see the source's header)";
    let arg = |i: usize| a.get(i).expect(usage).as_str();
    let num = |i: usize| arg(i).parse::<u64>().expect(usage);
    let url = arg(2).trim_end_matches('/').to_string();
    let ca = std::fs::read(arg(3)).expect("CA file");
    let res = match arg(1) {
        "populate" => populate(&url, &ca, arg(4), num(5), num(6), num(7)).await,
        "keys" => keys(&url, &ca, arg(4), num(5)).await,
        "get" => get(&url, &ca, arg(4), num(5), num(6), num(7), arg(8) == "hot").await,
        "big" => big(&url, &ca, arg(4), num(5) as usize).await,
        _ => panic!("{usage}"),
    };
    if let Err(e) = res {
        eprintln!("scale-load: {e}");
        std::process::exit(1);
    }
}
