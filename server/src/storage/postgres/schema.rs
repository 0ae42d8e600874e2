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

/// notary's `storage.db_url`, taken apart.
pub struct DbUrl {
    pub config: tokio_postgres::Config,
    /// TLS to the database (`sslmode=require|verify-ca|verify-full` with `sslrootcert`).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// Parse notary's `storage.db_url` (`postgres://user[:pw]@host:port/db?sslmode=...`).
/// `disable`, `allow` and `prefer` connect without TLS; the other modes need `sslrootcert`.
pub fn parse_url(url: &str) -> Result<DbUrl, crate::storage::StorageError> {
    parse(url)
        .map_err(|e| crate::storage::StorageError::new(crate::storage::StorageErrorKind::Config, e))
}

fn parse(url: &str) -> Result<DbUrl, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let (mut mode, mut root, mut cert, mut key) = ("prefer", None, None, None);
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "sslmode" => mode = v,
            "sslrootcert" => root = Some(v),
            "sslcert" => cert = Some(v),
            "sslkey" => key = Some(v),
            _ => kept.push(kv),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config = url
        .parse::<tokio_postgres::Config>()
        .map_err(|e| format!("storage.db_url: {e}"))?;
    let tls = match mode {
        "disable" | "allow" | "prefer" => {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            None
        }
        "require" | "verify-ca" | "verify-full" => {
            let root = root.ok_or(format!(
                "storage.db_url has sslmode={mode} but no sslrootcert: add sslrootcert=/path/to/ca.pem (the CA that signed the database's certificate)"
            ))?;
            let client = match (cert, key) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => return Err("storage.db_url: sslcert and sslkey go together".into()),
            };
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            Some(super::tls::client_config(root, client)?)
        }
        other => return Err(format!("storage.db_url: sslmode={other} is unknown")),
    };
    Ok(DbUrl { config, tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notary_urls_parse_and_tls_needs_a_root() {
        let c =
            parse_url("postgres://server@db.example:5432/notaryserver?sslmode=disable").unwrap();
        assert_eq!(c.config.get_dbname(), Some("notaryserver"));
        assert_eq!(c.config.get_user(), Some("server"));
        assert!(c.tls.is_none());
        let e = parse_url("postgres://server@db:5432/notaryserver?sslmode=verify-full")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("add sslrootcert="), "{e}");
        let e = parse_url(
            "postgres://server@db:5432/notaryserver?sslmode=verify-ca&sslrootcert=/nonexistent.pem",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("/nonexistent.pem"), "{e}");
        assert!(parse_url("not a url").is_err());
    }
}
