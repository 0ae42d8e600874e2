//! trustbridge-signer: holds server-side private keys and signs over gRPC with mutual TLS,
//! wire-compatible with notary-signer 0.7.0 (../shared/reference/notary-v1-protocol.md §5).

pub mod admin;
pub mod backup;
pub mod config;
pub mod cosign;
pub mod error;
pub mod keystore;
pub mod notation;
pub mod serve;
pub mod service;
pub mod token_key;

pub use config::Config;
pub use error::{Error, Result};

/// notary-signer's gRPC stubs, from the crate the server shares them through.
pub use trustbridge_signer_proto::proto;
