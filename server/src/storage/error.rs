//! The storage seam's error, shaped as tough's `TransportError {kind, url, source}`: what kind
//! of failure (so callers can branch on it: a conflict is the client's `VERSION`, not a 500),
//! what was being done, and the backend's own error kept as the cause.

use std::fmt;

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, as far as a caller can act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageErrorKind {
    /// A write lost to a stored version ≥ its own (notary's `ErrOldVersion`; the client
    /// answers `VERSION`).
    Conflict,
    /// The row asked for is not there.
    NotFound,
    /// The database cannot be reached or refused the statement (retry may help).
    Unavailable,
    /// Stored bytes or rows that do not read back as written.
    Corrupt,
    /// A database URL, path or schema the store cannot work with (a start-up error).
    Config,
}

/// A failed storage call.
#[derive(Debug)]
pub struct StorageError {
    pub kind: StorageErrorKind,
    /// What the store was doing (`PostgreSQL`, `create /var/lib/x`, ...).
    pub what: String,
    source: Option<Cause>,
}

impl StorageError {
    pub fn new(kind: StorageErrorKind, what: impl Into<String>) -> Self {
        StorageError {
            kind,
            what: what.into(),
            source: None,
        }
    }

    /// The same, caused by `source` (kept for `Error::source()`, not glued into a string).
    pub fn caused(
        kind: StorageErrorKind,
        what: impl Into<String>,
        source: impl Into<Cause>,
    ) -> Self {
        StorageError {
            kind,
            what: what.into(),
            source: Some(source.into()),
        }
    }

    /// A version ≤ a stored one (nothing was written).
    pub fn conflict() -> Self {
        StorageError::new(
            StorageErrorKind::Conflict,
            "a version at least as new is stored",
        )
    }

    pub fn is_conflict(&self) -> bool {
        self.kind == StorageErrorKind::Conflict
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The causes' text is shown too (each once): storage errors end up in one log line,
        // and tokio-postgres keeps the server's message and the TLS alert in the chain.
        let mut out = self.what.clone();
        let mut cur = self.source.as_deref().map(|s| s as &dyn std::error::Error);
        while let Some(s) = cur {
            let t = s.to_string();
            if !out.contains(&t) {
                out.push_str(": ");
                out.push_str(&t);
            }
            cur = s.source();
        }
        f.write_str(&out)
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        let kind = match &e {
            rusqlite::Error::QueryReturnedNoRows => StorageErrorKind::NotFound,
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StorageErrorKind::Conflict
            }
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..) => StorageErrorKind::Corrupt,
            _ => StorageErrorKind::Unavailable,
        };
        StorageError::caused(kind, "SQLite", e)
    }
}
