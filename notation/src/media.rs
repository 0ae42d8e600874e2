//! Media types, header names and annotation keys of Notation signatures.

/// The signature manifest's `artifactType` (what `notation list` and the referrers filter
/// look for).
pub const SIGNATURE_ARTIFACT: &str = "application/vnd.cncf.notary.signature";
/// The one layer of a signature manifest: the JWS envelope (flattened JSON serialization).
pub const JWS_ENVELOPE: &str = "application/jose+json";
/// The protected header `cty`: what the payload is.
pub const PAYLOAD_CTY: &str = "application/vnd.cncf.notary.payload.v1+json";
/// Protected header naming the signing scheme; always listed in `crit`.
pub const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
/// The scheme for signatures whose chain ends in a CA the verifier trusts (no TSA).
pub const SCHEME_X509: &str = "notary.x509";
/// Protected header with the (untrusted) signing time, RFC 3339 without fractions; required
/// by `notary.x509`.
pub const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
/// Unprotected header naming the program that signed.
pub const SIGNING_AGENT: &str = "io.cncf.notary.signingAgent";
/// Manifest annotation: JSON array of the lowercase hex SHA-256 of every certificate in the
/// chain, leaf first.
pub const THUMBPRINT: &str = "io.cncf.notary.x509chain.thumbprint#S256";
