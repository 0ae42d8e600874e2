//! The signer seam's error, shaped as tough's `TransportError {kind, url, source}`.

use tonic::Code;

/// What kind of failure a signer call met, as far as the caller can act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignerErrorKind {
    /// The signer could not be reached or did not answer in time (notary-server's "gRPC
    /// transport failure"): retry, or serve reads meanwhile.
    Unavailable,
    /// The signer does not hold the key asked for.
    NoKey,
    /// The signer answered and refused (bad request, unknown algorithm, not serving).
    Refused,
    /// The link cannot be set up (address, CA or client certificate): a start-up error.
    Config,
}

/// A failed signer call: its kind, the endpoint and RPC, and the gRPC status or I/O error kept
/// as the cause.
#[derive(Debug, thiserror::Error)]
#[error("signer at {addr} ({rpc}): {message}")]
pub struct SignerError {
    pub kind: SignerErrorKind,
    pub addr: String,
    pub rpc: &'static str,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl SignerError {
    pub fn new(
        kind: SignerErrorKind,
        addr: &str,
        rpc: &'static str,
        message: impl Into<String>,
    ) -> Self {
        SignerError {
            kind,
            addr: addr.to_string(),
            rpc,
            message: message.into(),
            source: None,
        }
    }

    pub fn caused(
        kind: SignerErrorKind,
        addr: &str,
        rpc: &'static str,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        SignerError {
            source: Some(source.into()),
            ..SignerError::new(kind, addr, rpc, message)
        }
    }

    /// A gRPC status: transport failures and deadlines are `Unavailable`, the rest `Refused`.
    pub(super) fn status(addr: &str, rpc: &'static str, s: tonic::Status) -> Self {
        let kind = match s.code() {
            Code::Unavailable | Code::DeadlineExceeded => SignerErrorKind::Unavailable,
            Code::NotFound => SignerErrorKind::NoKey,
            _ => SignerErrorKind::Refused,
        };
        let message = match kind {
            SignerErrorKind::Unavailable => format!("unavailable: {}", s.message()),
            _ => s.message().to_string(),
        };
        SignerError::caused(kind, addr, rpc, message, s)
    }
}
