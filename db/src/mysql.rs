//! notary's MySQL `db_url`: go-sql-driver/mysql's DSN,
//! `[user[:password]@][tcp[(host:port)]|unix(path)]/dbname[?param=value&…]`, e.g.
//! `server@tcp(mysql:3306)/notaryserver?parseTime=True` from notary's own configs.
//!
//! TLS follows the driver's `tls` parameter, stricter where it is unsafe: `true` verifies the
//! server against the public roots, or against `tls-ca` (a PEM file: our spelling of what
//! Go code registers as a custom config, which notary's config cannot name); `skip-verify` and
//! `preferred` check nothing and are refused with the fix. Parameters that only change the
//! Go driver's behaviour (`parseTime`, `charset`, `loc`, …) are accepted and have no effect
//! here: times are read as UTC and text as utf8mb4.

use std::time::Duration;

use mysql::{Opts, OptsBuilder, PoolConstraints, PoolOpts, SslOpts};

use crate::DsnError;

/// go-sql-driver parameters that change nothing on the wire for us.
const DRIVER_ONLY: &[&str] = &[
    "parseTime",
    "charset",
    "collation",
    "loc",
    "allowNativePasswords",
    "allowCleartextPasswords",
    "allowOldPasswords",
    "clientFoundRows",
    "columnsWithAlias",
    "interpolateParams",
    "maxAllowedPacket",
    "multiStatements",
    "rejectReadOnly",
    "checkConnLiveness",
    "autocommit",
];

/// Connections per process: one at start, at most 16.
const POOL: (usize, usize) = (1, 16);

/// A parsed DSN: what `mysql::Pool::new` takes.
pub fn parse_dsn(dsn: &str) -> Result<Opts, DsnError> {
    parse(dsn).map_err(DsnError::new)
}

fn parse(dsn: &str) -> Result<Opts, String> {
    let (rest, query) = dsn.split_once('?').unwrap_or((dsn, ""));
    // The database name follows the last '/', the credentials precede the last '@' before
    // the address (a password may hold '@'; the driver splits the same way).
    let slash = rest.rfind('/').ok_or(
        "a MySQL DSN is user:password@tcp(host:3306)/database: the /database part is missing",
    )?;
    let (head, db) = (&rest[..slash], &rest[slash + 1..]);
    if db.is_empty() {
        return Err("the DSN names no database after '/'".into());
    }
    let (creds, addr) = match head.rfind('@') {
        Some(at) => (Some(&head[..at]), &head[at + 1..]),
        None => (None, head),
    };
    // notary's `timestamp` columns hold what the Go driver writes with its default loc=UTC;
    // a UTC session reads and writes them the same way whatever the server's zone.
    let mut b = OptsBuilder::new()
        .db_name(Some(db))
        .init(vec!["SET time_zone = '+00:00'"])
        // The driver opens 10 connections up front by default; a signer or a replica needs
        // one to start and at most a few at once.
        .pool_opts(
            PoolConstraints::new(POOL.0, POOL.1).map(|c| PoolOpts::default().with_constraints(c)),
        );
    if let Some(creds) = creds {
        let (user, pass) = creds.split_once(':').unwrap_or((creds, ""));
        b = b.user(Some(user));
        if !pass.is_empty() {
            b = b.pass(Some(pass));
        }
    }
    let (net, inner) = match addr.split_once('(') {
        Some((net, inner)) => (
            net,
            inner
                .strip_suffix(')')
                .ok_or(format!("unclosed '(' in the address {addr:?}"))?,
        ),
        None => (addr, ""),
    };
    b = match net {
        "" | "tcp" => {
            let inner = if inner.is_empty() {
                "127.0.0.1:3306"
            } else {
                inner
            };
            let (host, port) = match inner.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(':') => (
                    h,
                    p.parse::<u16>()
                        .map_err(|_| format!("port {p:?} is not a number"))?,
                ),
                _ => (inner, 3306),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            b.ip_or_hostname(Some(host))
                .tcp_port(port)
                .prefer_socket(false)
        }
        "unix" if !inner.is_empty() => b.socket(Some(inner)),
        other => {
            return Err(format!(
                "network {other:?} is not tcp(host:port) or unix(path)"
            ));
        }
    };
    let (mut tls, mut ca) = (None, None);
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "tls" => tls = Some(v),
            "tls-ca" => ca = Some(v),
            "timeout" => b = b.tcp_connect_timeout(Some(duration(k, v)?)),
            "readTimeout" => b = b.read_timeout(Some(duration(k, v)?)),
            "writeTimeout" => b = b.write_timeout(Some(duration(k, v)?)),
            k if DRIVER_ONLY.iter().any(|d| d.eq_ignore_ascii_case(k)) => {}
            other => {
                return Err(format!(
                    "parameter {other:?} is not one this server understands (tls, tls-ca, timeout, readTimeout, writeTimeout, parseTime, charset, loc, …): remove it"
                ));
            }
        }
    }
    match (tls, ca) {
        (None | Some("false"), None) => {}
        (Some("true"), ca) => {
            let ssl = SslOpts::default();
            b = b.ssl_opts(Some(match ca {
                Some(path) => ssl.with_root_cert_path(Some(std::path::PathBuf::from(path))),
                None => ssl,
            }));
        }
        (None | Some("false"), Some(_)) => {
            return Err("tls-ca is set but tls is not: add tls=true".into());
        }
        (Some(mode @ ("skip-verify" | "preferred")), _) => {
            return Err(format!(
                "tls={mode} accepts any certificate: use tls=true (with tls-ca=/path/to/ca.pem for a private CA)"
            ));
        }
        (Some(other), _) => {
            return Err(format!(
                "tls={other}: a named TLS config exists only in Go code; use tls=true&tls-ca=/path/to/ca.pem"
            ));
        }
    }
    Ok(b.into())
}

/// A Go duration as the driver takes it (`30s`, `500ms`, `1m`).
fn duration(key: &str, v: &str) -> Result<Duration, String> {
    let bad = || format!("{key}={v:?} is not a duration like 30s, 500ms or 1m");
    let split = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(bad)?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notary_dsns_parse() {
        let o = parse_dsn("server@tcp(mysql:3306)/notaryserver?parseTime=True").unwrap();
        assert_eq!(o.get_user(), Some("server"));
        assert_eq!(o.get_pass(), None);
        assert_eq!(o.get_ip_or_hostname(), "mysql");
        assert_eq!(o.get_tcp_port(), 3306);
        assert_eq!(o.get_db_name(), Some("notaryserver"));
        assert!(o.get_ssl_opts().is_none());

        let o = parse_dsn("root:p@ss:w@tcp(127.0.0.1:3307)/n?tls=true&timeout=5s").unwrap();
        assert_eq!(o.get_user(), Some("root"));
        assert_eq!(o.get_pass(), Some("p@ss:w"));
        assert_eq!(o.get_tcp_port(), 3307);
        assert!(o.get_ssl_opts().is_some());
        assert_eq!(o.get_tcp_connect_timeout(), Some(Duration::from_secs(5)));

        let o = parse_dsn("u@unix(/run/mysqld/mysqld.sock)/db").unwrap();
        assert_eq!(o.get_socket(), Some("/run/mysqld/mysqld.sock"));
    }

    #[test]
    fn unsafe_or_unknown_settings_are_refused_with_the_fix() {
        for (dsn, fix) in [
            ("u@tcp(h:3306)/db?tls=skip-verify", "use tls=true"),
            ("u@tcp(h:3306)/db?tls=custom", "tls-ca="),
            ("u@tcp(h:3306)/db?tls-ca=/ca.pem", "add tls=true"),
            ("u@tcp(h:3306)/db?sql_mode=ANSI", "remove it"),
            ("u@tcp(h:3306)", "/database"),
            ("u@tcp(h:x)/db", "not a number"),
            ("u@udp(h)/db", "tcp(host:port)"),
            ("u@tcp(h:3306)/db?timeout=5", "duration"),
        ] {
            let e = parse_dsn(dsn).err().unwrap().to_string();
            assert!(e.contains(fix), "{dsn}: {e}");
            assert!(e.starts_with("storage.db_url: "), "{e}");
        }
    }
}
