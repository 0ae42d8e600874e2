//! trustbridge-client: the notary client's workflow as a library, and the `trustbridge` CLI.
//!
//! * [`remote`]: the Notary v1 HTTP protocol with token auth.
//! * [`keystore`]: private keys in the `~/.docker/trust/private` layout notary and docker use.
//! * [`config`]: the notary CLI's config file (server, TLS, trust pinning).
//! * [`cache`]: the trust directory's verified metadata and notary-format changelist.
//! * [`update`]: download and verify (root chain, pinning, rollback, hashes, delegations).
//! * [`publish`] and [`rotate`]: init, the changelist applied and signed, key rotation.
//! * [`import`]: copying a repository's history from a live notary server.
//! * [`cosign`]: reading a Cosign signature from a registry (`verify-both`).

pub mod cache;
pub mod config;
pub mod cosign;
mod error;
pub mod import;
pub mod keystore;
pub mod notation;
pub mod publish;
pub mod registry;
pub mod remote;
pub mod rotate;
pub mod update;

pub use error::{Error, Result};
