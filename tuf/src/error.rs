//! The one error type of the TUF core. Each variant names the role, key and rule that failed,
//! so the server can map it to notary's `INVALID_UPDATE` detail and the CLI can print one line.

/// Everything that can go wrong reading, writing, signing or verifying notary metadata.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("canonical JSON: {0}")]
    Canonical(String),
    #[error("{role}: _type is {found:?}, expected {expected:?}")]
    WrongType {
        role: String,
        expected: String,
        found: String,
    },
    #[error("{role}: invalid metadata: {reason}")]
    Structure { role: String, reason: String },
    #[error("{role}: version {version} is lower than the required minimum {min}")]
    LowVersion {
        role: String,
        version: i64,
        min: i64,
    },
    #[error("{role}: expired at {expires}")]
    Expired { role: String, expires: String },
    #[error("{role}: {valid} valid signature(s) of {required} required (keys tried: {tried})")]
    Threshold {
        role: String,
        valid: usize,
        required: i64,
        tried: String,
    },
    #[error("{role}: signature by key {key_id} does not verify")]
    BadSignature { role: String, key_id: String },
    #[error("{role}: no entry for {missing} in meta")]
    MissingMeta { role: String, missing: String },
    #[error("{role}: {name} has {algorithm} hash {found}, expected {expected}")]
    HashMismatch {
        role: String,
        name: String,
        algorithm: String,
        expected: String,
        found: String,
    },
    #[error("{role}: {name} is {found} bytes long, expected {expected}")]
    LengthMismatch {
        role: String,
        name: String,
        expected: i64,
        found: i64,
    },
    #[error("{role}: {name} lists no sha256 or sha512 hash")]
    NoHashes { role: String, name: String },
    #[error("key {key_id}: {reason}")]
    Key { key_id: String, reason: String },
    #[error("unsupported key type {0:?}")]
    UnsupportedKeyType(String),
    #[error("unsupported signature method {method:?} for key type {key_type}")]
    UnsupportedMethod { method: String, key_type: String },
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("root of {gun}: {reason}")]
    RootInvalid { gun: String, reason: String },
    #[error("root of {gun}: rotation not signed by the previous root's threshold: {reason}")]
    RootRotation { gun: String, reason: String },
    #[error("private key: {0}")]
    PrivateKey(String),
    #[error("private key: wrong passphrase or corrupt key file")]
    WrongPassphrase,
    #[error("encrypted key (JWE): {0}")]
    Jwe(String),
    #[error("signing with key {key_id}: {reason}")]
    Signing { key_id: String, reason: String },
}

impl Error {
    pub fn structure(role: &str, reason: impl Into<String>) -> Self {
        Error::Structure {
            role: role.to_string(),
            reason: reason.into(),
        }
    }
}
