//! The tables (notary-server's PostgreSQL schema, then ours) and notary's `db_url`.

/// notary's schema (migrations/server/postgresql), then ours.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS tuf_files (
  id serial PRIMARY KEY, created_at timestamp NULL, updated_at timestamp NULL,
  deleted_at timestamp NULL, gun varchar(255) NOT NULL, role varchar(255) NOT NULL,
  version integer NOT NULL, data bytea NOT NULL, sha256 char(64) DEFAULT NULL,
  UNIQUE (gun, role, version));
CREATE INDEX IF NOT EXISTS tuf_files_sha256_idx ON tuf_files (sha256);
CREATE TABLE IF NOT EXISTS change_category (category VARCHAR(20) PRIMARY KEY);
INSERT INTO change_category VALUES ('update'), ('deletion') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS changefeed (
  id serial PRIMARY KEY, created_at timestamp DEFAULT CURRENT_TIMESTAMP,
  gun varchar(255) NOT NULL, version integer NOT NULL, sha256 CHAR(64) DEFAULT NULL,
  category VARCHAR(20) NOT NULL DEFAULT 'update' REFERENCES change_category);
CREATE INDEX IF NOT EXISTS idx_changefeed_gun ON changefeed (gun);
CREATE TABLE IF NOT EXISTS tuf_files_deleted (LIKE tuf_files);
CREATE INDEX IF NOT EXISTS tuf_files_deleted_gun ON tuf_files_deleted (gun);
CREATE TABLE IF NOT EXISTS bridge_jobs (
  id bigserial PRIMARY KEY, created_at bigint NOT NULL, updated_at bigint NOT NULL,
  gun varchar(255) NOT NULL, tag varchar(255) NOT NULL, digest char(64) NOT NULL,
  role varchar(255) NOT NULL, action varchar(10) NOT NULL DEFAULT 'sign',
  state varchar(20) NOT NULL DEFAULT 'pending', attempts bigint NOT NULL DEFAULT 0,
  last_error text NULL, next_at bigint NOT NULL, signers text NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS idx_bridge_jobs_due ON bridge_jobs (state, next_at);
CREATE INDEX IF NOT EXISTS idx_bridge_jobs_gun ON bridge_jobs (gun);
CREATE TABLE IF NOT EXISTS bridge_checks (
  gun varchar(255) NOT NULL, tag varchar(255) NOT NULL, digest char(64) NOT NULL,
  verified_at bigint NULL, registry_digest char(64) NULL, drift boolean NOT NULL DEFAULT false,
  error text NULL, checked_at bigint NOT NULL, expires bigint NULL, PRIMARY KEY (gun, tag));
CREATE INDEX IF NOT EXISTS idx_bridge_checks_drift ON bridge_checks (drift);
CREATE INDEX IF NOT EXISTS idx_bridge_checks_expires ON bridge_checks (expires);
"#;

/// Held while the schema is created, so replicas starting together do not race.
pub(super) const SCHEMA_LOCK: i64 = 0x7462_0001;

/// notary's `storage.db_url`, read by the crate both processes share.
pub use trustbridge_db::postgres::DbUrl;

/// Parse notary's `storage.db_url`; a bad one is a configuration error.
pub fn parse_url(url: &str) -> Result<DbUrl, crate::storage::StorageError> {
    trustbridge_db::postgres::parse_url(url).map_err(|e| {
        crate::storage::StorageError::new(crate::storage::StorageErrorKind::Config, e.to_string())
    })
}
