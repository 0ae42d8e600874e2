//! notary-signer's `private_keys` table (`migrations/signer/*`, gorm `GormPrivateKey`) behind
//! one trait, kept in SQLite ([`super::sqlite`]), or in notary-signer's own PostgreSQL
//! ([`super::postgres`]) or MySQL/MariaDB ([`super::mysql`]) database. The columns are
//! notary's, so a notary-signer database serves as it is: the same JWE rows, the same
//! passphrase aliases, no export. Deletes are soft (`deleted_at`), as gorm's are.

use crate::error::Result;

/// The JWE algorithms notary-signer records with every key (`keydbstore.EncryptionAlg`, `KeywrapAlg`).
pub const ENCRYPTION_ALG: &str = "A256GCM";
pub const KEYWRAP_ALG: &str = "PBES2-HS256+A128KW";

/// One live (not soft-deleted) row.
#[derive(Clone, Debug)]
pub struct KeyRow {
    pub key_id: String,
    pub algorithm: String,
    pub passphrase_alias: String,
    pub public: Vec<u8>,
    /// The compact JWE, as ASCII.
    pub private: String,
    pub gun: String,
    pub role: String,
    pub created_at: Option<String>,
    pub last_used: Option<String>,
}

/// The rows a [`super::KeyStore`] reads and writes. Every call is blocking (the service runs
/// them on the blocking pool); several signer processes may share one SQL database.
pub trait KeyRows: Send + Sync {
    /// The live row of `key_id`.
    fn get(&self, key_id: &str) -> Result<Option<KeyRow>>;
    /// Every live row, ordered by key ID.
    fn list(&self) -> Result<Vec<KeyRow>>;
    /// The unused key CreateKey hands out again: lowest key ID with `last_used` NULL for
    /// (role, gun, algorithm), as `SQLKeyDBStore.Create` picks it.
    fn unused(&self, role: &str, gun: &str, algorithm: &str) -> Result<Option<KeyRow>>;
    /// Insert a row, replacing a soft-deleted row with the same key ID (a restore).
    fn insert(&self, row: &KeyRow) -> Result<()>;
    /// Insert the rows whose key ID has no live row, in one transaction; returns how many.
    fn insert_missing(&self, rows: &[KeyRow]) -> Result<usize>;
    /// Record a signature (`last_used`), which takes the key out of CreateKey's reuse.
    fn mark_used(&self, key_id: &str) -> Result<()>;
    /// Soft delete; returns whether a live row existed.
    fn soft_delete(&self, key_id: &str) -> Result<bool>;
    /// Replace the `public` column of a live row in one statement (a certificate chain row
    /// renewed in place), only while it still holds `expected` when that is given (so of two
    /// signers renewing at once, one writes); returns whether the row was replaced.
    fn set_public(&self, key_id: &str, expected: Option<&[u8]>, public: &[u8]) -> Result<bool>;
    /// Replace the encrypted private half of rows, `(key_id, alias, jwe)`, all or none.
    fn set_private(&self, rows: &[(String, String, String)]) -> Result<()>;
}

/// UTC now, as the SQLite rows and the admin CLI show times (RFC 3339).
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// An RFC 3339 time as a SQL `timestamp`/`datetime` literal (`YYYY-MM-DD HH:MM:SS`, UTC), for
/// the PostgreSQL and MySQL columns notary declares without a zone.
pub fn sql_time(rfc3339: &str) -> Option<String> {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?
        .to_offset(time::UtcOffset::UTC);
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.format(&f).ok()
}
