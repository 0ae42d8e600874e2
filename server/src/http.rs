//! Serving the API: HTTPS with rustls (ALPN h2 and http/1.1, as Go's server offers) or plain
//! HTTP when no certificate is configured, until the shutdown future completes.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, StartError};

pub use crate::tls::TlsFiles;

/// The HTTPS acceptor; with `client_ca` (notary's `server.client_ca_file`) every client must
/// present a certificate chaining to it (rustls' WebPKI verifier, refused at the handshake).
pub fn tls_acceptor(
    files: &TlsFiles,
    client_ca: Option<&std::path::Path>,
) -> Result<TlsAcceptor, StartError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| StartError::tls(files.cert.display(), e))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| StartError::tls(files.key.display(), e))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in
                CertificateDer::pem_file_iter(ca).map_err(|e| StartError::tls(ca.display(), e))?
            {
                let c = c.map_err(|e| StartError::tls(ca.display(), e))?;
                roots.add(c).map_err(|e| StartError::tls(ca.display(), e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(roots.into())
                .build()
                .map_err(|e| StartError::tls("server.client_ca_file", e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| StartError::tls("server TLS", e))?;
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

/// What the accept loop knows of one open connection: whether a request is in flight, when
/// it was last busy, and how to ask it to close.
struct Conn {
    in_flight: std::sync::atomic::AtomicUsize,
    /// Milliseconds since the server started, when the last request ended (or it connected).
    last_active: std::sync::atomic::AtomicU64,
    close: tokio::sync::Notify,
}

/// Open connections by ID. At the cap, the idlest one (no request in flight, longest
/// quiet: a keep-alive client gone silent, a slowloris, a connection still in its TLS
/// handshake) is asked to close so a new client is served, instead of waiting in the kernel's
/// listen queue behind clients that do nothing.
#[derive(Default)]
struct Conns {
    open: std::sync::Mutex<std::collections::HashMap<u64, Arc<Conn>>>,
    next: std::sync::atomic::AtomicU64,
}

impl Conns {
    fn add(&self, now: u64) -> (u64, Arc<Conn>) {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let c = Arc::new(Conn {
            in_flight: Default::default(),
            last_active: now.into(),
            close: tokio::sync::Notify::new(),
        });
        self.lock().insert(id, c.clone());
        (id, c)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ask the idlest connection to close; false when every one is busy.
    fn close_idlest(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let mut open = self.lock();
        let idlest = open
            .iter()
            .filter(|(_, c)| c.in_flight.load(Relaxed) == 0)
            .min_by_key(|(_, c)| c.last_active.load(Relaxed))
            .map(|(id, _)| *id);
        match idlest.and_then(|id| open.remove(&id)) {
            Some(c) => {
                c.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Counts a request in flight on its connection while it runs.
struct Busy(Arc<Conn>, std::time::Instant);

impl Busy {
    fn new(c: Arc<Conn>, started: std::time::Instant) -> Self {
        c.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Busy(c, started)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.0
            .last_active
            .store(self.1.elapsed().as_millis() as u64, Relaxed);
        self.0.in_flight.fetch_sub(1, Relaxed);
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
    let conns = Arc::new(Conns::default());
    let started = std::time::Instant::now();
    tokio::pin!(shutdown);
    // Each connection task holds a clone: the strong count tells how many are open.
    let alive = Arc::new(());
    loop {
        let (sock, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => { tracing::warn!(error = %e, "accept failed"); continue; }
            },
            _ = &mut shutdown => break,
        };
        // At the cap, close the idlest connection for this one; when all are busy, wait for
        // one to end (new clients meanwhile wait in the kernel's queue, not in memory).
        let slot = match slots.clone().try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                if conns.close_idlest() {
                    tracing::debug!(%peer, "connection cap reached: closed the idlest connection");
                }
                tokio::select! {
                    s = slots.clone().acquire_owned() => match s {
                        Ok(s) => s,
                        Err(_) => break,
                    },
                    _ = &mut shutdown => break,
                }
            }
        };
        let _ = sock.set_nodelay(true);
        let (id, conn) = conns.add(started.elapsed().as_millis() as u64);
        // The peer address rides along for the token issuer's rate limit.
        let svc = {
            let conn = conn.clone();
            let app = app.clone();
            hyper::service::service_fn(move |mut r: http::Request<hyper::body::Incoming>| {
                r.extensions_mut().insert(peer);
                let busy = Busy::new(conn.clone(), started);
                let app = app.clone();
                async move {
                    let resp = tower::ServiceExt::oneshot(app, r).await;
                    drop(busy);
                    resp
                }
            })
        };
        let tls = tls.clone();
        let guard = alive.clone();
        let conns = conns.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let _slot = slot;
            serve_one(sock, peer, tls, svc, limits, &conn).await;
            conns.lock().remove(&id);
        });
    }
    // Give in-flight requests a moment to finish.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while Arc::strong_count(&alive) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(())
}

/// One connection: the TLS handshake within its limit, then HTTP/1 or HTTP/2 until the client
/// leaves or the accept loop asks it to close (then in-flight requests finish first).
async fn serve_one<S>(
    sock: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    svc: S,
    limits: Limits,
    conn: &Conn,
) where
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Limits::secs(limits.header_read_seconds));
    macro_rules! run {
        ($io:expr) => {{
            let c = builder.serve_connection($io, svc);
            tokio::pin!(c);
            let res = tokio::select! {
                r = c.as_mut() => r,
                _ = conn.close.notified() => {
                    c.as_mut().graceful_shutdown();
                    c.await
                }
            };
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }};
    }
    match tls {
        Some(acc) => {
            let handshake = Limits::secs(limits.tls_handshake_seconds);
            let s = tokio::select! {
                r = tokio::time::timeout(handshake, acc.accept(sock)) => match r {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
                _ = conn.close.notified() => return,
            };
            run!(TokioIo::new(s))
        }
        None => run!(TokioIo::new(sock)),
    }
}
