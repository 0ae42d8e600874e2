//! Load generator for bench/server.sh: PUBLISHERS concurrent publishers, each owning one GUN
//! with server-managed snapshot and timestamp (as docker trust repositories are), publishing
//! new targets versions as fast as the server accepts them for SECONDS. Metadata is made with
//! the trustbridge core, the same bytes for every server, so Go notary-server and
//! trustbridge-server see identical work. Prints publishes per second.
//!
//!   publish-load URL CA_FILE [PUBLISHERS=16] [SECONDS=10]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use trustbridge_tuf::metadata::{FileMeta, expiry};
use trustbridge_tuf::{GoTime, KeyType, PrivateKey, PublicKey, Root, Signed, Targets, x509};

type Err = Box<dyn std::error::Error + Send + Sync>;

fn client(ca: &[u8]) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for der in x509::certificate_ders(ca).expect("CA PEM") {
        roots.add(der.into()).expect("CA cert");
    }
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .expect("client")
}

async fn server_key(c: &reqwest::Client, base: &str, role: &str) -> Result<PublicKey, Err> {
    let r = c.get(format!("{base}/{role}.key")).send().await?;
    let status = r.status();
    let body = r.bytes().await?;
    if !status.is_success() {
        return Err(format!(
            "GET {role}.key: {status} {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    Ok(serde_json::from_slice(&body)?)
}

async fn post(c: &reqwest::Client, base: &str, parts: Vec<(&str, Vec<u8>)>) -> Result<(), Err> {
    let mut form = reqwest::multipart::Form::new();
    for (role, data) in parts {
        form = form.part(
            "files",
            reqwest::multipart::Part::bytes(data)
                .file_name(role.to_string())
                .mime_str("application/octet-stream")?,
        );
    }
    let r = c.post(format!("{base}/")).multipart(form).send().await?;
    if !r.status().is_success() {
        let s = r.status();
        return Err(format!("POST: {s} {}", r.text().await.unwrap_or_default()).into());
    }
    Ok(())
}

async fn publisher(
    c: reqwest::Client,
    url: String,
    gun: String,
    deadline: Instant,
    done: Arc<AtomicU64>,
) -> Result<(), Err> {
    let base = format!("{url}/v2/{gun}/_trust/tuf");
    let ts = server_key(&c, &base, "timestamp").await?;
    let sn = server_key(&c, &base, "snapshot").await?;
    let root_key = PrivateKey::generate(KeyType::Ecdsa)?;
    let cert = x509::generate_root_certificate(&gun, &root_key, 10)?;
    let targets_key = PrivateKey::generate(KeyType::Ecdsa)?;
    let root = Root::initial([
        ("root", cert.clone()),
        ("targets", targets_key.public_key().clone()),
        ("snapshot", sn),
        ("timestamp", ts),
    ]);
    let root = Signed::sign_with_ids(root, vec![(cert.id(), &root_key)])?;
    let mut targets = Targets {
        type_: "Targets".into(),
        delegations: Default::default(),
        expires: GoTime::now().plus_years(expiry::TARGETS_YEARS),
        targets: BTreeMap::new(),
        version: 1,
    };
    let first = Signed::sign(targets.clone(), &[&targets_key])?;
    post(
        &c,
        &base,
        vec![
            ("root", root.raw().to_vec()),
            ("targets", first.raw().to_vec()),
        ],
    )
    .await?;
    while Instant::now() < deadline {
        targets.version += 1;
        let name = format!("tag-{}", targets.version);
        targets
            .targets
            .insert(name.clone(), FileMeta::from_bytes(name.as_bytes()));
        // A CI-style repository: a rolling window of the 20 newest tags, so every publish
        // carries the same amount of metadata instead of a file growing without bound.
        if targets.targets.len() > 20 {
            let oldest = format!("tag-{}", targets.version - 20);
            targets.targets.remove(&oldest);
        }
        let t = Signed::sign(targets.clone(), &[&targets_key])?;
        post(&c, &base, vec![("targets", t.raw().to_vec())]).await?;
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
