//! trustbridge-notation: the Notary Project signature formats (notaryproject/specifications,
//! `specs/signature-specification.md`, `signature-envelope-jws.md`), one owner for each fact:
//! the media types and annotation keys, the JWS envelope the bridge writes (and verify-both
//! and the reconciler read back), and the X.509 rules a signing chain must meet. The server's
//! bridge writes with it, the signer checks chains with it, the client verifies with it.
//!
//! No I/O and no crypto provider beyond ring: signing is the signer's, transport the callers'.

pub mod chain;
pub mod envelope;
pub mod media;

/// Why a chain or an envelope was refused: what was wrong, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

impl Error {
    pub(crate) fn new(s: impl Into<String>) -> Self {
        Error(s.into())
    }
}
