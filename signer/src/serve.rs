//! Running the service: mutual TLS (a client certificate chaining to `client_ca_file` is
//! required; rustls' WebPKI verifier refuses a missing, foreign-CA or expired certificate at the
//! handshake), the two notary services, and the standard health service with the names
//! notary-server checks.

use std::net::SocketAddr;
use std::sync::Arc;

use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::keystore::KeyStore;
use crate::proto::key_management_server::KeyManagementServer;
use crate::proto::signer_server::SignerServer;
use crate::service::SignerService;

/// Health service names notary-signer registers (`cmd/notary-signer/main.go`); notary-server
/// checks both before it reports itself healthy.
pub const HEALTH_KEY_MANAGEMENT: &str = "grpc.health.v1.Health.KeyManagement";
pub const HEALTH_SIGNER: &str = "grpc.health.v1.Health.Signer";

fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

pub fn tls_config(config: &Config) -> Result<ServerTlsConfig> {
    let cert = read(&config.tls_cert_file)?;
    let key = read(&config.tls_key_file)?;
    let ca = read(&config.client_ca_file)?;
    if pem::parse_many(&ca).map(|v| v.is_empty()).unwrap_or(true) {
        return Err(Error::Tls(format!(
            "{} holds no PEM certificate",
            config.client_ca_file.display()
        )));
    }
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(cert, key))
        .client_ca_root(Certificate::from_pem(ca))
        .client_auth_optional(false))
}

/// `host:port`, `[v6]:port` or Go's `:port` (all interfaces).
pub async fn resolve(addr: &str) -> Result<SocketAddr> {
    let addr = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_string()
    };
    tokio::net::lookup_host(&addr)
        .await
        .map_err(|e| Error::Invalid(format!("server.grpc_addr {addr:?}: {e}")))?
        .next()
        .ok_or_else(|| Error::Invalid(format!("server.grpc_addr {addr:?} resolves to nothing")))
}

/// Renew a generated Notation leaf before it expires ([`crate::notation::renew_if_due`]); the
/// server sees the new chain on its next GetKeyInfo and re-signs every mirrored tag.
async fn renew_notation_leaf(store: Arc<KeyStore>, every: std::time::Duration) {
    loop {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || crate::notation::renew_if_due(&s)).await {
            Ok(Ok(Some(until))) => {
                tracing::info!(valid_until = %until, "Notation leaf certificate renewed")
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Notation leaf renewal failed; retried at the next check")
            }
            Err(e) => tracing::warn!(error = %e, "Notation leaf renewal task failed"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Serve until `shutdown` completes. The store must already have passed its passphrase check.
pub async fn serve(
    config: &Config,
    store: Arc<KeyStore>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<()> {
    let tls = tls_config(config)?;
    let addr = resolve(&config.grpc_addr).await?;
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in [HEALTH_KEY_MANAGEMENT, HEALTH_SIGNER] {
        reporter
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }
    tokio::spawn(renew_notation_leaf(
        store.clone(),
        config.notation_renew_check,
    ));
    let service = SignerService::new(store);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Invalid(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    tracing::info!(addr = %local, "trustbridge-signer serving gRPC with mutual TLS");
    Server::builder()
        .tls_config(tls)
        .map_err(|e| Error::Tls(e.to_string()))?
        .add_service(health)
        .add_service(KeyManagementServer::new(service.clone()))
        .add_service(SignerServer::new(service))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
        .map_err(|e| Error::Invalid(format!("gRPC server: {e}")))?;
    tracing::info!("trustbridge-signer stopped");
    Ok(())
}
