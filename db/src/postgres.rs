//! notary's PostgreSQL `db_url` (lib/pq's URL form): `postgres://user[:pw]@host:port/db` with
//! `sslmode`, `sslrootcert`, `sslcert`, `sslkey`. Other query parameters pass to
//! tokio-postgres as they are.

use crate::DsnError;

/// notary's `storage.db_url`, taken apart.
pub struct DbUrl {
    pub config: tokio_postgres::Config,
    /// TLS to the database (`sslmode=require|verify-ca|verify-full` with `sslrootcert`).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// Parse notary's `storage.db_url` (`postgres://user[:pw]@host:port/db?sslmode=...`).
/// `disable`, `allow` and `prefer` connect without TLS; the other modes need `sslrootcert`.
pub fn parse_url(url: &str) -> Result<DbUrl, DsnError> {
    parse(url).map_err(DsnError::new)
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
        .map_err(|e| e.to_string())?;
    let tls = match mode {
        "disable" | "allow" | "prefer" => {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            None
        }
        "require" | "verify-ca" | "verify-full" => {
            let root = root.ok_or(format!(
                "sslmode={mode} needs sslrootcert: add sslrootcert=/path/to/ca.pem (the CA that signed the database's certificate)"
            ))?;
            let client = match (cert, key) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => return Err("sslcert and sslkey go together".into()),
            };
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            Some(crate::pg_tls::client_config(root, client).map_err(|e| e.reason)?)
        }
        other => {
            return Err(format!(
                "sslmode={other} is unknown (disable, require, verify-ca or verify-full)"
            ));
        }
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
