//! trustbridge-tuf: Notary v1's TUF dialect, byte for byte as Go notary 0.7.0 reads and writes it.
//!
//! Compatibility is the product: a legacy Docker Content Trust client rejects metadata whose
//! bytes, hashes, key IDs or signature encodings differ from notary's in any way. This crate is
//! the one source of truth for those bytes, shared by the server, the signer and the client.
//!
//! * [`cjson`]: canonical JSON (signed bytes) and notary's file form (stored bytes).
//! * [`metadata`]: Root, Targets (with delegations), Snapshot, Timestamp and the signed
//!   envelope, keeping the bytes each document was read from.
//! * [`keys`]: public keys, key IDs (certificate vs canonical), signature verification.
//! * [`private`]: private keys in notary's encodings, generation and signing.
//! * [`keyfile`]: the encrypted PKCS#8 PEM files of `~/.docker/trust/private`.
//! * [`jwe`]: notary-signer's at-rest encryption of private keys.
//! * [`x509`]: root certificate generation and validation.
//! * [`history`]: a repository's whole history checked version by version (imports).
//! * [`resolve`]: which targets a client accepts from which role (delegation paths, order).
//!
//! From the tough family nothing is reused: tough's schema types need TUF 1.0 fields
//! (`spec_version`, lower-case `_type`) that notary never writes, and tough links aws-lc-rs.
//! olpc-cjson produces the canonical form correctly for ordinary metadata, but not notary's file
//! form (U+2028/U+2029 and `<>&` escaping), it NFC-normalises strings and it sorts keys by
//! their encoded form (`"a b"` before `"a"`), neither of which Go does (both found by the
//! property tests); both forms are a few dozen lines here, tested against the
//! golden vectors, so olpc-cjson is used only as an independent oracle in tests. Crypto is ring
//! only.

mod asn1;
mod b64;
pub mod canonical_check;
mod certpem;
pub mod cjson;
pub mod dsse;
mod error;
pub mod gotime;
pub mod history;
pub mod jwe;
pub mod keyfile;
pub mod keys;
pub mod metadata;
pub mod private;
pub mod resolve;
pub mod x509;

pub use error::Error;
pub use gotime::GoTime;
pub use keys::{KeyType, PublicKey};
pub use metadata::{Root, Signed, Snapshot, Targets, Timestamp};
pub use private::{PrivateKey, PssHash};
