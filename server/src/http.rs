//! Serving the API: HTTPS with rustls (ALPN h2 and http/1.1, as Go's server offers) or plain
//! HTTP when no certificate is configured, until the shutdown future completes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::error::Error;

/// A certificate chain and its key, as PEM files (the HTTPS listener's, a client
/// certificate's).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The HTTPS acceptor; with `client_ca` (notary's `server.client_ca_file`) every client must
/// present a certificate chaining to it (rustls' WebPKI verifier, refused at the handshake).
pub fn tls_acceptor(
    files: &TlsFiles,
    client_ca: Option<&std::path::Path>,
) -> Result<TlsAcceptor, Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Start(format!("{}: {e}", files.cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| Error::Start(format!("{}: {e}", files.key.display())))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .map_err(|e| Error::Start(format!("{}: {e}", ca.display())))?
            {
                let c = c.map_err(|e| Error::Start(format!("{}: {e}", ca.display())))?;
                roots
                    .add(c)
                    .map_err(|e| Error::Start(format!("{}: {e}", ca.display())))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(roots.into())
                .build()
                .map_err(|e| Error::Start(format!("server.client_ca_file: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| Error::Start(format!("server TLS: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// How long a client may take before it is dropped, and how many may be connected at once
/// (`trustbridge.http`). notary-server (Go's `http.Server` with no timeouts) let a client
/// that never finishes its TLS handshake or its headers (slowloris) hold a connection
/// forever.
#[derive(Clone, Copy, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The TLS handshake must finish within this (default 10 s).
    pub tls_handshake_seconds: f64,
    /// A request's headers must arrive within this (HTTP/1; default 30 s, hyper's).
    pub header_read_seconds: f64,
    /// At most this many connections at once; more wait in the listen queue (default 4096).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tls_handshake_seconds: 10.0,
            header_read_seconds: 30.0,
            max_connections: 4096,
        }
    }
}

impl Limits {
    fn secs(v: f64) -> std::time::Duration {
        std::time::Duration::from_secs_f64(v.clamp(0.05, 3600.0))
    }
}

pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: axum::Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    // Each connection task holds a clone: the strong count tells how many are open.
    let conns = Arc::new(());
    loop {
        // At the cap, stop accepting: new clients wait in the kernel's queue, not in memory.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (sock, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => { tracing::warn!(error = %e, "accept failed"); continue; }
            },
            _ = &mut shutdown => break,
        };
        let _ = sock.set_nodelay(true);
        // The peer address rides along for the token issuer's rate limit.
        let svc = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut r: http::Request<hyper::body::Incoming>| {
                r.extensions_mut().insert(peer);
                r
            },
        ));
        let tls = tls.clone();
        let guard = conns.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let _slot = slot;
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Limits::secs(limits.header_read_seconds));
            let res = match tls {
                Some(acc) => {
                    let handshake = Limits::secs(limits.tls_handshake_seconds);
                    match tokio::time::timeout(handshake, acc.accept(sock)).await {
                        Ok(Ok(s)) => builder.serve_connection(TokioIo::new(s), svc).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
                None => builder.serve_connection(TokioIo::new(sock), svc).await,
            };
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    // Give in-flight requests a moment to finish.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while Arc::strong_count(&conns) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(())
}
