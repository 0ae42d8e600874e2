//! trustbridge-cosign: Cosign's formats, one owner for each fact (../shared/reference/
//! cosign-bridge.md): the media types and annotations, the simple-signing payload the bridge
//! signs, cosign v3's in-toto statement and Sigstore bundle, the `sha256-<hex>.sig` and
//! fallback-index tag names, and how an image name maps to a registry and repository. The
//! server's bridge writes with it; the client's `verify-both` reads with it.
//!
//! No I/O and no crypto provider of its own beyond ring's SHA-256: signing is the signer's,
//! transport the callers'.

pub mod bundle;
pub mod media;
pub mod names;
pub mod payload;

/// `sha256:<hex>` of `data` (an OCI digest).
pub fn sha256(data: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
    )
}
