//! Notary's database settings, read once for every process that opens a database: the
//! server's metadata store and the signer's `private_keys` rows take the same `db_url`
//! strings as notary-server and notary-signer, so a deployment's config carries over.
//!
//! - [`postgres`]: `postgres://user[:pw]@host:port/db?sslmode=…` (lib/pq's form, as notary
//!   passes it to `sql.Open("postgres", …)`), TLS through [`pg_tls`].
//! - [`mysql`]: go-sql-driver's DSN `user:pw@tcp(host:3306)/db?parseTime=True` (notary's
//!   documented form; notary forces `parseTime=true`).

pub mod mysql;
pub mod pg_tls;
pub mod postgres;

/// A `db_url` that cannot be used, with the fix in its message.
#[derive(Debug, thiserror::Error)]
#[error("storage.db_url: {reason}")]
pub struct DsnError {
    pub reason: String,
}

impl DsnError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        DsnError {
            reason: reason.into(),
        }
    }
}
