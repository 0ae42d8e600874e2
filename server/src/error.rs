//! The server's one error type, and its mapping to notary's wire errors (reference §1.3):
//! `{"errors":[{"code","message","detail"}]}` with notary's codes and HTTP statuses.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::signer_link::{SignerError, SignerErrorKind};
use crate::storage::StorageError;
pub use crate::wire::{ApiError, WireCode};

/// A failed update check, named as notary's `tuf/validation` errors are: the client parses
/// `detail` = `{"Name": ..., "Error": {...}}` back into these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("An error occurred during validation: {0}")]
    Validation(String),
    #[error("Metadata hierarchy is incomplete: {msg}")]
    BadHierarchy { missing: String, msg: String },
    #[error("The root metadata is invalid: {0}")]
    BadRoot(String),
    #[error("The targets metadata is invalid: {0}")]
    BadTargets(String),
    #[error("The snapshot metadata is invalid: {0}")]
    BadSnapshot(String),
}

impl ValidationError {
    /// notary's `SerializableError` JSON.
    pub fn detail(&self) -> Value {
        match self {
            ValidationError::Validation(m) => json!({"Name":"ErrValidation","Error":{"Msg":m}}),
            ValidationError::BadHierarchy { missing, msg } => {
                json!({"Name":"ErrBadHierarchy","Error":{"Missing":missing,"Msg":msg}})
            }
            ValidationError::BadRoot(m) => json!({"Name":"ErrBadRoot","Error":{"Msg":m}}),
            ValidationError::BadTargets(m) => json!({"Name":"ErrBadTargets","Error":{"Msg":m}}),
            ValidationError::BadSnapshot(m) => json!({"Name":"ErrBadSnapshot","Error":{"Msg":m}}),
        }
    }
}

/// Why the server (or an offline command) could not start: nothing was served yet, so these
/// go to the operator's terminal, never on the wire.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// Settings that parse but cannot work (a command that needs a section the config lacks).
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Tls {
        what: String,
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("signer: {0}")]
    Signer(#[from] SignerError),
    #[error("auth.options.rootcertbundle: {0}")]
    Auth(#[from] crate::auth::jwt::TokenError),
    #[error("trustbridge.token_issuer: {0}")]
    Issuer(#[from] crate::auth::issuer::IssuerError),
}

impl StartError {
    pub fn io(what: impl std::fmt::Display, source: std::io::Error) -> Self {
        StartError::Io {
            what: what.to_string(),
            source,
        }
    }

    pub fn tls(
        what: impl std::fmt::Display,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        StartError::Tls {
            what: what.to_string(),
            source: source.into(),
        }
    }
}

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A request's (or an offline command's) failure; [`Error::for_update`] and
/// [`Error::for_read`] map it to notary's wire error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    #[error("metadata not found")]
    NotFound,
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("signer: {0}")]
    Signer(#[from] SignerError),
    #[error("no file name given for an uploaded part")]
    NoFilename,
    #[error("invalid role {0:?}")]
    InvalidRole(String),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("malformed upload: {0}")]
    MalformedUpload(String),
    #[error("invalid parameters: {0}")]
    InvalidParameters(String),
    #[error("Require GUNs with prefix: {0:?}")]
    InvalidGun(Vec<String>),
    /// What should not happen: stored bytes that no longer parse, a signature we made that
    /// does not encode. Answered as notary's `UNKNOWN`; the cause is logged.
    #[error("{what}: {source}")]
    Internal { what: String, source: Cause },
}

impl Error {
    pub fn internal(what: impl std::fmt::Display, source: impl Into<Cause>) -> Self {
        Error::Internal {
            what: what.to_string(),
            source: source.into(),
        }
    }

    /// A version ≤ a stored one (notary's `ErrOldVersion`, answered `VERSION`).
    pub fn old_version() -> Self {
        Error::Storage(StorageError::conflict())
    }

    pub fn is_old_version(&self) -> bool {
        matches!(self, Error::Storage(e) if e.is_conflict())
    }
}

impl Error {
    /// The wire error for a failed update (POST).
    pub fn for_update(self) -> ApiError {
        match self {
            Error::Invalid(v) => ApiError::new(WireCode::InvalidUpdate, Some(v.detail())),
            e if e.is_old_version() => ApiError::new(WireCode::Version, Some(json!({}))),
            Error::NoFilename => ApiError::new(WireCode::NoFilename, None),
            Error::InvalidRole(r) => ApiError::new(WireCode::InvalidRole, Some(Value::String(r))),
            Error::MalformedJson(_) => ApiError::new(WireCode::MalformedJson, None),
            Error::MalformedUpload(_) => ApiError::new(WireCode::MalformedUpload, None),
            Error::InvalidGun(p) => ApiError::new(
                WireCode::InvalidGun,
                Some(Value::String(format!("Require GUNs with prefix: {p:?}"))),
            ),
            Error::Storage(_) => ApiError::new(WireCode::Updating, None),
            // The signer could not sign the server-held snapshot or timestamp: said in the
            // detail (as an ErrValidation message, which the notary client prints), so the
            // publisher learns the signer is down rather than that the update was bad.
            Error::Signer(e) => ApiError::new(
                WireCode::InvalidUpdate,
                Some(ValidationError::Validation(e.to_string()).detail()),
            ),
            // Non-validation failures during validation (the signer down, a stored file that
            // no longer parses): notary answers INVALID_UPDATE without detail.
            _ => ApiError::new(WireCode::InvalidUpdate, None),
        }
    }

    /// The wire error for reads and the other routes.
    pub fn for_read(self) -> ApiError {
        match self {
            Error::NotFound => ApiError::new(WireCode::MetadataNotFound, Some(json!({}))),
            Error::Signer(e) if e.kind == SignerErrorKind::NoKey => {
                ApiError::new(WireCode::MetadataNotFound, Some(json!({})))
            }
            Error::InvalidParameters(d) => {
                ApiError::new(WireCode::InvalidParameters, Some(Value::String(d)))
            }
            Error::InvalidRole(r) => ApiError::new(WireCode::InvalidRole, Some(Value::String(r))),
            Error::InvalidGun(_) => ApiError::new(WireCode::MetadataNotFound, None),
            _ => ApiError::new(WireCode::Unknown, None),
        }
    }
}
