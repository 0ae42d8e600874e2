//! Slow and silent clients are dropped (issue: no TLS-handshake or header-read timeout let a
//! slowloris client hold connections forever): a TCP connection that never starts TLS, and a
//! TLS client that never finishes its headers, are closed after the configured time, while
//! the real notary client is served all along.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trustbridge_e2e::bridge::start_bridge_with;
use trustbridge_e2e::init;
use trustbridge_e2e::server::notary;

/// Seconds until the server closes `s` (reads until EOF or error), at most 20.
fn closed_after(mut s: impl Read) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return start.elapsed(),
            Ok(_) => {}
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never closed");
    }
}

#[test]
fn silent_and_slow_clients_are_dropped() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let st = start_bridge_with(
        tmp.path(),
        "",
        r#","http":{"tls_handshake_seconds":1,"header_read_seconds":1}"#,
    );
    let addr = format!("127.0.0.1:{}", st.port);

    // Many silent connections at once (no TLS ClientHello): each is closed after ~1 s.
    let silent: Vec<TcpStream> = (0..50)
        .map(|_| {
            let s = TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s
        })
        .collect();
    // A TLS client that sends half a request and then nothing (slowloris).
    let cfg = tls_client(&st.ca);
    let conn = rustls::ClientConnection::new(cfg, "127.0.0.1".try_into().unwrap()).unwrap();
    let sock = TcpStream::connect(&addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"GET /_notary_server/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    tls.flush().unwrap();

    // Meanwhile the real client is served.
    let out = notary(
        &st.url,
        &st.ca,
        &tmp.path().join("trust"),
        &["init", "127.0.0.1/limits/app", "-p"],
    );
    assert!(!out.contains("fatal"), "{out}");

    let slow = closed_after(&mut tls);
    assert!(
        slow < Duration::from_secs(6),
        "the slowloris client was kept {slow:?}"
    );
    for s in silent {
        let t = closed_after(s);
        assert!(
            t < Duration::from_secs(6),
            "a silent connection was kept {t:?}"
        );
    }
}

/// A TLS client trusting `ca` (the dev PKI's root).
fn tls_client(ca: &std::path::Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types_certs(&std::fs::read(ca).unwrap()) {
        roots.add(c).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

fn rustls_pki_types_certs(pem_bytes: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    pem::parse_many(pem_bytes)
        .unwrap()
        .into_iter()
        .map(|p| rustls::pki_types::CertificateDer::from(p.contents().to_vec()))
        .collect()
}

/// At the connection cap, the idlest connections make room: eight keep-alive clients that
/// finished a request and went quiet, plus silent TCP connections, fill a cap of 8; a real
/// notary client is still served at once (the idlest ones are closed for it), where before it
/// waited in the listen queue until a timeout freed a slot.
#[test]
fn idle_connections_are_closed_first_at_the_cap() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let st = start_bridge_with(
        tmp.path(),
        "",
        r#","http":{"tls_handshake_seconds":120,"header_read_seconds":120,"max_connections":8}"#,
    );
    let addr = format!("127.0.0.1:{}", st.port);
    let cfg = tls_client(&st.ca);
    // Keep-alive clients: one request answered, then idle.
    let mut idle = Vec::new();
    for _ in 0..6 {
        let conn =
            rustls::ClientConnection::new(cfg.clone(), "127.0.0.1".try_into().unwrap()).unwrap();
        let sock = TcpStream::connect(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = tls.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        idle.push(tls);
    }
    // Silent TCP connections fill the rest of the cap.
    let silent: Vec<TcpStream> = (0..4)
        .map(|_| {
            let s = TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let out = notary(
        &st.url,
        &st.ca,
        &tmp.path().join("trust"),
        &["init", "127.0.0.1/limits/cap", "-p"],
    );
    let took = start.elapsed();
    assert!(!out.contains("fatal"), "{out}");
    assert!(
        took < Duration::from_secs(20),
        "the notary client waited {took:?} for a connection slot"
    );
    // Some of the idle or silent connections were closed to make room.
    let mut closed = 0;
    for s in &silent {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut b = [0u8; 1];
        if matches!((&*s).read(&mut b), Ok(0)) {
            closed += 1;
        }
    }
    for t in &mut idle {
        t.sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut b = [0u8; 1];
        let gone = match t.read(&mut b) {
            Ok(n) => n == 0,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        if gone {
            closed += 1;
        }
    }
    assert!(closed >= 1, "no idle connection was closed");
}
