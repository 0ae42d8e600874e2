//! Load generator for bench/signer.sh: creates one ECDSA key on a notary-signer-compatible
//! signer, then issues Sign RPCs over mutual TLS from CONCURRENCY tasks for SECONDS and prints
//! the rate. Works against Go notary-signer and trustbridge-signer alike.
//!
//!   sign-load PORT CERTS_DIR [SECONDS=10] [CONCURRENCY=32] [CONNECTIONS=4]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use trustbridge_e2e::signer::{ClientTls, channel};
use trustbridge_signer::proto::key_management_client::KeyManagementClient;
use trustbridge_signer::proto::signer_client::SignerClient;
use trustbridge_signer::proto::{CreateKeyRequest, KeyId, SignatureRequest};

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: sign-load PORT CERTS_DIR [SECONDS] [CONCURRENCY] [CONNECTIONS]";
    let port: u16 = args.get(1).expect(usage).parse().expect(usage);
    let certs = std::path::PathBuf::from(args.get(2).expect(usage));
    let secs: u64 = args.get(3).map_or(10, |s| s.parse().expect(usage));
    let conc: usize = args.get(4).map_or(32, |s| s.parse().expect(usage));
    let conns: usize = args.get(5).map_or(4, |s| s.parse().expect(usage));
    let tls = ClientTls::dev(&certs);
    let mut channels = Vec::new();
    for _ in 0..conns {
        channels.push(channel(port, &tls).await.expect("connect"));
    }
    let key = KeyManagementClient::new(channels[0].clone())
        .create_key(CreateKeyRequest {
            algorithm: "ecdsa".into(),
            gun: "bench/sign".into(),
            role: "timestamp".into(),
        })
        .await
        .expect("CreateKey")
        .into_inner()
        .key_info
        .unwrap()
        .key_id
        .unwrap()
        .id;
    // A timestamp-sized message (notary signs the canonical JSON of the role).
    let content = vec![b'x'; 400];
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    // Warm-up: the first Sign decrypts the key.
    SignerClient::new(channels[0].clone())
        .sign(SignatureRequest {
            key_id: Some(KeyId { id: key.clone() }),
            content: content.clone(),
        })
        .await
        .expect("Sign");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..conc {
        let mut client = SignerClient::new(channels[i % conns].clone());
        let (key, content, done, failed) =
            (key.clone(), content.clone(), done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let r = client
                    .sign(SignatureRequest {
                        key_id: Some(KeyId { id: key.clone() }),
                        content: content.clone(),
                    })
                    .await;
                match r {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "{:.0} signs/s ({n} ok, {} failed, {elapsed:.1} s, concurrency {conc}, {conns} connections)",
        n as f64 / elapsed,
        failed.load(Ordering::Relaxed)
    );
}
