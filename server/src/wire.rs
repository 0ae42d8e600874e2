//! Notary's error envelope on the wire (reference §1.3): `{"errors":[{"code","message",
//! "detail"}]}` with notary's codes, messages and HTTP statuses. A leaf: the request error
//! ([`crate::error::Error`]) and the routes that answer without one (auth, the issuer) both
//! build on it.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::Value;

/// Notary's wire error codes (`errcode` in notary-server, reference §1.3), each with its HTTP
/// status and message: a code is a value of this enum, so a typo cannot reach the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireCode {
    /// docker/distribution's errcode, used by the token issuer's login rate limit.
    TooManyRequests,
    NoFilename,
    InvalidRole,
    MalformedJson,
    Updating,
    Version,
    MetadataNotFound,
    InvalidUpdate,
    MalformedUpload,
    InvalidGun,
    InvalidParameters,
    NoKeyAlgorithm,
    Unknown,
}

impl WireCode {
    pub fn code(self) -> &'static str {
        match self {
            WireCode::TooManyRequests => "TOOMANYREQUESTS",
            WireCode::NoFilename => "NO_FILENAME",
            WireCode::InvalidRole => "INVALID_ROLE",
            WireCode::MalformedJson => "MALFORMED_JSON",
            WireCode::Updating => "UPDATING",
            WireCode::Version => "VERSION",
            WireCode::MetadataNotFound => "METADATA_NOT_FOUND",
            WireCode::InvalidUpdate => "INVALID_UPDATE",
            WireCode::MalformedUpload => "MALFORMED_UPLOAD",
            WireCode::InvalidGun => "INVALID_GUN",
            WireCode::InvalidParameters => "INVALID_PARAMETERS",
            WireCode::NoKeyAlgorithm => "NO_KEYALGORITHM",
            WireCode::Unknown => "UNKNOWN",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            WireCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            WireCode::MetadataNotFound => StatusCode::NOT_FOUND,
            WireCode::Updating | WireCode::NoKeyAlgorithm | WireCode::Unknown => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            WireCode::TooManyRequests => "too many requests",
            WireCode::NoFilename => "No file/role name provided",
            WireCode::InvalidRole => "The role you are attempting to operate on is invalid.",
            WireCode::MalformedJson => "JSON sent by the client could not be parsed by the server",
            WireCode::Updating => "An error has occurred while updating the TUF repository.",
            WireCode::Version => "A newer version of metadata is already available.",
            WireCode::MetadataNotFound => "You have requested metadata that does not exist.",
            WireCode::InvalidUpdate => "Update sent by the client is invalid.",
            WireCode::MalformedUpload => "The body of your request is malformed.",
            WireCode::InvalidGun => "The server does not support actions on images of this name.",
            WireCode::InvalidParameters => "The parameters provided are not valid.",
            WireCode::NoKeyAlgorithm => "The server does not have a key algorithm configured.",
            WireCode::Unknown => "unknown error",
        }
    }
}

/// A notary error response.
pub struct ApiError {
    pub code: WireCode,
    pub detail: Option<Value>,
}

impl ApiError {
    pub fn new(code: WireCode, detail: Option<Value>) -> Self {
        ApiError { code, detail }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Go's encoder writes struct fields in declaration order: code, message, detail.
        let mut body = format!(
            r#"{{"errors":[{{"code":{},"message":{}"#,
            Value::from(self.code.code()),
            Value::from(self.code.message())
        );
        if let Some(d) = self.detail {
            body.push_str(",\"detail\":");
            body.push_str(&serde_json::to_string(&d).unwrap_or_default());
        }
        body.push_str("}]}\n");
        (
            self.code.status(),
            [(
                http::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )],
            body,
        )
            .into_response()
    }
}
