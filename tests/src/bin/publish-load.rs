//! Load generator for bench/server.sh: PUBLISHERS concurrent publishers, each owning one GUN
//! with server-managed snapshot and timestamp (as docker trust repositories are), publishing
//! new targets versions as fast as the server accepts them for SECONDS. Metadata is made with
//! the trustbridge core, the same bytes for every server, so Go notary-server and
//! trustbridge-server see identical work. Prints publishes per second.
//!
//!   publish-load URL CA_FILE [PUBLISHERS=16] [SECONDS=10]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use trustbridge_e2e::load::{LoadError, Repository, client};

async fn publisher(
    c: reqwest::Client,
    url: String,
    gun: String,
    deadline: Instant,
    done: Arc<AtomicU64>,
) -> Result<(), LoadError> {
    let mut repo = Repository::create(&c, &url, &gun).await?;
    while Instant::now() < deadline {
        // A CI-style repository: a rolling window of the 20 newest tags, so every publish
        // carries the same amount of metadata instead of a file growing without bound.
        repo.publish(&c, 1, 20).await?;
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a: Vec<String> = std::env::args().collect();
    let usage = "usage: publish-load URL CA_FILE [PUBLISHERS] [SECONDS]";
    let url = a.get(1).expect(usage).trim_end_matches('/').to_string();
    let ca = std::fs::read(a.get(2).expect(usage)).expect("CA file");
    let n: usize = a.get(3).map_or(16, |s| s.parse().expect(usage));
    let secs: u64 = a.get(4).map_or(10, |s| s.parse().expect(usage));
    let c = client(&ca);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let run = format!("{}-{}", std::process::id(), start.elapsed().as_nanos());
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            tokio::spawn(publisher(
                c.clone(),
                url.clone(),
                format!("bench.example/pub-{run}/{i}"),
                deadline,
                done.clone(),
            ))
        })
        .collect();
    let mut failed = 0;
    for t in tasks {
        if let Err(e) = t.await.expect("task") {
            eprintln!("publisher failed: {e}");
            failed += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let total = done.load(Ordering::Relaxed);
    println!(
        "{:.1} publishes/s ({total} publishes, {n} publishers, {failed} failed, {secs:.1} s)",
        total as f64 / secs
    );
}
