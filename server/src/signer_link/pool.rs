//! Several signers behind one server: one lazy mutual-TLS channel per endpoint, calls spread
//! round-robin over the endpoints last seen healthy, and a call that cannot reach one signer
//! tried on the next within the same request (every RPC of notary-signer's API may be sent
//! twice: Sign is deterministic in what it proves, GetKeyInfo reads, and a CreateKey answered
//! by two signers leaves one unused key that the next CreateKey for that role takes). A health
//! task marks endpoints down and up between requests, so a dead signer costs a request
//! nothing once it is known. notary-server had one `hostname:port` and failed every publish
//! while its signer was away (Docker Hub's "gRPC transport failure" outages).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::error::{SignerError, SignerErrorKind};
use super::unary::UnaryChannel;
use super::{HEALTH_NAMES, TrustService};
use crate::metrics::Metrics;

/// How often the health task asks every endpoint (with more than one).
pub const HEALTH_EVERY: Duration = Duration::from_secs(2);

/// One signer endpoint.
pub(super) struct Endpoint {
    pub(super) addr: String,
    pub(super) channel: UnaryChannel,
    up: AtomicBool,
}

pub(super) struct Pool {
    pub(super) endpoints: Vec<Endpoint>,
    next: AtomicUsize,
    metrics: Metrics,
}

fn read(addr: &str, path: &std::path::Path) -> Result<Vec<u8>, SignerError> {
    std::fs::read(path).map_err(|e| {
        SignerError::caused(
            SignerErrorKind::Config,
            addr,
            "connect",
            format!("read {}", path.display()),
            e,
        )
    })
}

/// Whether a failed call never reached a signer that could answer it, so another may: the
/// transport's own codes, and the codes tonic makes up on the client side when the
/// connection breaks mid-call (they carry the transport error as their source; a signer's
/// own Internal or Unknown answer has none).
pub(super) fn unreachable(s: &tonic::Status) -> bool {
    match s.code() {
        Code::Unavailable | Code::DeadlineExceeded => true,
        Code::Unknown | Code::Cancelled | Code::Internal => std::error::Error::source(s).is_some(),
        _ => false,
    }
}

impl Pool {
    pub(super) fn new(cfg: &TrustService, metrics: Metrics) -> Result<Self, SignerError> {
        let mut endpoints = Vec::new();
        for (host, port) in cfg.endpoints() {
            let addr = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            // The signer's certificate is checked against the name dialled, as notary does
            // with `hostname`.
            let mut tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read(&addr, &cfg.ca_file)?))
                .domain_name(host.clone());
            if let Some(c) = &cfg.client_cert {
                tls = tls.identity(Identity::from_pem(
                    read(&addr, &c.cert)?,
                    read(&addr, &c.key)?,
                ));
            }
            let config = |what: &str, e: tonic::transport::Error| {
                SignerError::caused(SignerErrorKind::Config, &addr, "connect", what, e)
            };
            let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
                .map_err(|e| config("trust_service address", e))?
                .tls_config(tls)
                .map_err(|e| config("trust_service TLS", e))?
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(10))
                .connect_lazy();
            let channel = UnaryChannel::new(channel);
            metrics.signer_up(&addr, true);
            endpoints.push(Endpoint {
                addr,
                channel,
                up: AtomicBool::new(true),
            });
        }
        Ok(Pool {
            endpoints,
            next: AtomicUsize::new(0),
            metrics,
        })
    }

    /// The primary endpoint's address (for errors that name no call).
    pub(super) fn primary(&self) -> &str {
        &self.endpoints[0].addr
    }

    fn mark(&self, e: &Endpoint, up: bool) {
        if e.up.swap(up, Ordering::Relaxed) != up {
            if up {
                tracing::info!(endpoint = %e.addr, "signer is back");
            } else {
                tracing::warn!(endpoint = %e.addr, "signer is unreachable; using the others");
            }
        }
        self.metrics.signer_up(&e.addr, up);
    }

    /// The order to try endpoints in for one call: round-robin over those up, then those
    /// down (a down one may be back before the health task has seen it).
    fn order(&self) -> Vec<&Endpoint> {
        let n = self.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let turn = (0..n).map(|i| &self.endpoints[(start + i) % n]);
        let (up, down): (Vec<_>, Vec<_>) = turn.partition(|e| e.up.load(Ordering::Relaxed));
        up.into_iter().chain(down).collect()
    }

    /// Run `f` on one endpoint after another until one answers (an answer may be an error
    /// status: only a call that reached no signer is tried again). The error of the last
    /// endpoint tried is returned, with its address.
    pub(super) async fn call<T, F, Fut>(
        &self,
        rpc: &'static str,
        f: F,
    ) -> Result<(T, &str), (tonic::Status, &str)>
    where
        F: Fn(UnaryChannel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let mut last = None;
        for e in self.order() {
            match f(e.channel.clone()).await {
                Ok(v) => {
                    self.mark(e, true);
                    return Ok((v, &e.addr));
                }
                Err(s) if unreachable(&s) => {
                    tracing::debug!(endpoint = %e.addr, rpc, status = %s, "signer call did not get through");
                    self.mark(e, false);
                    last = Some((s, e.addr.as_str()));
                }
                Err(s) => return Err((s, &e.addr)),
            }
        }
        Err(last.unwrap_or_else(|| {
            (
                tonic::Status::unavailable("no signer endpoint"),
                self.primary(),
            )
        }))
    }

    /// notary-server's "Trust operational" check on one endpoint: both health names SERVING.
    pub(super) async fn check(&self, e: &Endpoint) -> Result<(), SignerError> {
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_client::HealthClient;
        let mut client = HealthClient::new(e.channel.clone());
        for name in HEALTH_NAMES {
            let r = client
                .check(HealthCheckRequest {
                    service: name.into(),
                })
                .await
                .map_err(|s| SignerError::status(&e.addr, "Health", s))?
                .into_inner();
            if r.status != 1 {
                return Err(SignerError::new(
                    SignerErrorKind::Refused,
                    &e.addr,
                    "Health",
                    format!("{name} is not serving"),
                ));
            }
        }
        Ok(())
    }

    /// Ask every endpoint once and mark it; returns the first failure when none serves.
    pub(super) async fn check_all(&self) -> Result<(), SignerError> {
        let mut first_err = None;
        let mut any = false;
        for e in &self.endpoints {
            match self.check(e).await {
                Ok(()) => {
                    self.mark(e, true);
                    any = true;
                }
                Err(err) => {
                    self.mark(e, false);
                    first_err.get_or_insert(err);
                }
            }
        }
        match (any, first_err) {
            (true, _) | (false, None) => Ok(()),
            (false, Some(e)) => Err(e),
        }
    }
}

/// The health task: every [`HEALTH_EVERY`], ask each endpoint and mark it (only started with
/// more than one endpoint; with one, calls mark it).
pub(super) fn watch(pool: Arc<Pool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEALTH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let _ = pool.check_all().await;
        }
    })
}
