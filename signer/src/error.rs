//! The signer's one error type. Each variant says what an operator can do about it; none
//! carries private key material.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config {path}: {reason}")]
    Config { path: PathBuf, reason: String },

    #[error("passphrase for alias {alias:?} is missing: set the environment variable {var}")]
    MissingPassphrase { alias: String, var: String },

    #[error(
        "passphrase for alias {alias:?} (environment variable {var}) is wrong: key {key_id} does not decrypt with it"
    )]
    WrongPassphrase {
        alias: String,
        var: String,
        key_id: String,
    },

    #[error("key {0} not found")]
    KeyNotFound(String),

    #[error("stored key {key_id} is corrupt: {reason}")]
    CorruptKey { key_id: String, reason: String },

    #[error("algorithm {0} not supported for create key")]
    UnsupportedAlgorithm(String),

    /// The key database failed (`backend`: SQLite, PostgreSQL, MySQL); the cause is kept.
    #[error("{backend} key store: {source}")]
    Storage {
        backend: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("{0}")]
    Tuf(#[from] trustbridge_tuf::Error),

    #[error("TLS: {0}")]
    Tls(String),

    /// The Notation signing key or its certificate chain (generate, import, renew).
    #[error("Notation key: {0}")]
    Notation(String),

    /// The PKCS#11 token (module, login, an operation) failed.
    #[error("PKCS#11 token: {0}")]
    Token(String),

    #[error("cosign key: {0}")]
    CosignKey(String),

    #[error("backup bundle: {0}")]
    Backup(String),

    #[error("{0}")]
    Invalid(String),

    #[error("I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::storage("SQLite", e)
    }
}

impl Error {
    pub(crate) fn storage(
        backend: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Storage {
            backend,
            source: Box::new(source),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
