//! The server's one error type, and its mapping to notary's wire errors (reference §1.3):
//! `{"errors":[{"code","message","detail"}]}` with notary's codes and HTTP statuses.

use std::path::PathBuf;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{0}")]
    Start(String),

    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// A storage conflict: a version ≤ a stored one.
    #[error("newer version already available")]
    OldVersion,
    #[error("metadata not found")]
    NotFound,
    #[error("storage: {0}")]
    Storage(String),
    #[error("signer: {0}")]
    Signer(String),
    /// The signer does not hold the key asked for.
    #[error("signer does not hold key {0}")]
    KeyNotFound(String),
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
    #[error("unknown error: {0}")]
    Unknown(String),
}

/// (HTTP status, notary code, message) for each wire code notary defines.
fn wire(code: &str) -> (StatusCode, &'static str) {
    match code {
        // docker/distribution's errcode, used by the token issuer's login rate limit.
        "TOOMANYREQUESTS" => (StatusCode::TOO_MANY_REQUESTS, "too many requests"),
        "NO_FILENAME" => (StatusCode::BAD_REQUEST, "No file/role name provided"),
        "INVALID_ROLE" => (
            StatusCode::BAD_REQUEST,
            "The role you are attempting to operate on is invalid.",
        ),
        "MALFORMED_JSON" => (
            StatusCode::BAD_REQUEST,
            "JSON sent by the client could not be parsed by the server",
        ),
        "UPDATING" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "An error has occurred while updating the TUF repository.",
        ),
        "VERSION" => (
            StatusCode::BAD_REQUEST,
            "A newer version of metadata is already available.",
        ),
        "METADATA_NOT_FOUND" => (
            StatusCode::NOT_FOUND,
            "You have requested metadata that does not exist.",
        ),
        "INVALID_UPDATE" => (
            StatusCode::BAD_REQUEST,
            "Update sent by the client is invalid.",
        ),
        "MALFORMED_UPLOAD" => (
            StatusCode::BAD_REQUEST,
            "The body of your request is malformed.",
        ),
        "INVALID_GUN" => (
            StatusCode::BAD_REQUEST,
            "The server does not support actions on images of this name.",
        ),
        "INVALID_PARAMETERS" => (
            StatusCode::BAD_REQUEST,
            "The parameters provided are not valid.",
        ),
        "NO_KEYALGORITHM" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server does not have a key algorithm configured.",
        ),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "unknown error"),
    }
}

/// A notary error response.
pub struct ApiError {
    pub code: &'static str,
    pub detail: Option<Value>,
}

impl ApiError {
    pub fn new(code: &'static str, detail: Option<Value>) -> Self {
        ApiError { code, detail }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = wire(self.code);
        // Go's encoder writes struct fields in declaration order: code, message, detail.
        let mut body = format!(
            r#"{{"errors":[{{"code":{},"message":{}"#,
            Value::from(self.code),
            Value::from(message)
        );
        if let Some(d) = self.detail {
            body.push_str(",\"detail\":");
            body.push_str(&serde_json::to_string(&d).unwrap_or_default());
        }
        body.push_str("}]}\n");
        (
            status,
            [(
                http::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )],
            body,
        )
            .into_response()
    }
}

impl Error {
    /// The wire error for a failed update (POST).
    pub fn for_update(self) -> ApiError {
        match self {
            Error::Invalid(v) => ApiError::new("INVALID_UPDATE", Some(v.detail())),
            Error::OldVersion => ApiError::new("VERSION", Some(json!({}))),
            Error::NoFilename => ApiError::new("NO_FILENAME", None),
            Error::InvalidRole(r) => ApiError::new("INVALID_ROLE", Some(Value::String(r))),
            Error::MalformedJson(_) => ApiError::new("MALFORMED_JSON", None),
            Error::MalformedUpload(_) => ApiError::new("MALFORMED_UPLOAD", None),
            Error::InvalidGun(p) => ApiError::new(
                "INVALID_GUN",
                Some(Value::String(format!("Require GUNs with prefix: {p:?}"))),
            ),
            Error::Storage(_) => ApiError::new("UPDATING", None),
            // Non-validation failures during validation: notary answers INVALID_UPDATE
            // without detail.
            _ => ApiError::new("INVALID_UPDATE", None),
        }
    }

    /// The wire error for reads and the other routes.
    pub fn for_read(self) -> ApiError {
        match self {
            Error::NotFound | Error::KeyNotFound(_) => {
                ApiError::new("METADATA_NOT_FOUND", Some(json!({})))
            }
            Error::InvalidParameters(d) => {
                ApiError::new("INVALID_PARAMETERS", Some(Value::String(d)))
            }
            Error::InvalidRole(r) => ApiError::new("INVALID_ROLE", Some(Value::String(r))),
            Error::InvalidGun(_) => ApiError::new("METADATA_NOT_FOUND", None),
            _ => ApiError::new("UNKNOWN", None),
        }
    }
}
