//! notary-signer's JSON configuration (`cmd/notary-signer/config.go`), read the way viper
//! reads it there: nested keys, any key overridable by `NOTARY_SIGNER_<KEY with . → _>`, and
//! `NOTARY_SIGNER_DEFAULT_ALIAS` as the fallback default alias. File paths are relative to the
//! config file's directory, as in notary.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

pub use crate::keystore::passphrase::ENV_PREFIX;

pub use crate::keystore::Backend;

#[derive(Clone, Debug)]
pub struct Config {
    pub grpc_addr: String,
    pub tls_cert_file: PathBuf,
    pub tls_key_file: PathBuf,
    pub client_ca_file: PathBuf,
    pub backend: Backend,
    pub default_alias: String,
    pub log_level: String,
    /// `pkcs11` (ours): the token new ECDSA keys are made in.
    pub pkcs11: Option<crate::keystore::pkcs11::Pkcs11Config>,
    /// `notation.renew_check_seconds` (ours): how often the serving signer looks at the
    /// Notation leaf's expiry (default [`crate::notation::RENEW_CHECK`]).
    pub notation_renew_check: std::time::Duration,
    /// `storage.cached_keys` (ours): how many decrypted keys the serving signer holds
    /// (default [`crate::keystore::cache::DEFAULT_CAPACITY`]).
    pub cached_keys: usize,
}

/// A config value: the env override if set, else the nested JSON key.
fn lookup(json: &Value, key: &str) -> Option<String> {
    let var = format!("{ENV_PREFIX}{}", key.replace('.', "_").to_uppercase());
    if let Ok(v) = std::env::var(&var)
        && !v.is_empty()
    {
        return Some(v);
    }
    let mut cur = json;
    for part in key.split('.') {
        cur = cur.get(part)?;
    }
    match cur {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let json: Value = serde_json::from_slice(&text).map_err(|e| Error::Config {
            path: path.into(),
            reason: format!("not valid JSON: {e}"),
        })?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Self::from_json(&json, &dir).map_err(|reason| Error::Config {
            path: path.into(),
            reason,
        })
    }

    /// Build from parsed JSON; relative paths resolve against `dir`.
    pub fn from_json(json: &Value, dir: &Path) -> std::result::Result<Config, String> {
        let required = |key: &str, why: &str| {
            lookup(json, key).ok_or_else(|| {
                format!(
                    "{key} is required ({why}); set it in the file or as {ENV_PREFIX}{}",
                    key.replace('.', "_").to_uppercase()
                )
            })
        };
        let resolve = |p: String| {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { dir.join(p) }
        };
        let grpc_addr = required("server.grpc_addr", "the address to serve gRPC on")?;
        let tls_cert_file = resolve(required(
            "server.tls_cert_file",
            "the signer's certificate",
        )?);
        let tls_key_file = resolve(required("server.tls_key_file", "the signer's private key")?);
        let client_ca_file = resolve(required(
            "server.client_ca_file",
            "trustbridge-signer only serves with mutual TLS: the CA that issued notary-server's client certificate",
        )?);
        let backend_name = lookup(json, "storage.backend").unwrap_or_else(|| "sqlite3".into());
        let backend = match backend_name.as_str() {
            "memory" => Backend::Memory,
            "sqlite3" | "sqlite" => {
                let url = required("storage.db_url", "the SQLite file of the key store")?;
                let file = url.strip_prefix("file:").unwrap_or(&url);
                let file = file.split('?').next().unwrap_or(file).to_string();
                Backend::Sqlite(resolve(file))
            }
            "postgres" => {
                let url = required("storage.db_url", "notary-signer's PostgreSQL URL")?;
                trustbridge_db::postgres::parse_url(&url).map_err(|e| e.to_string())?;
                Backend::Postgres(url)
            }
            "mysql" => {
                let dsn = required("storage.db_url", "notary-signer's MySQL DSN")?;
                trustbridge_db::mysql::parse_dsn(&dsn).map_err(|e| e.to_string())?;
                Backend::Mysql(dsn)
            }
            "rethinkdb" => {
                return Err(
                    "storage.backend \"rethinkdb\" is not supported by trustbridge-signer: copy the private_keys rows into \"mysql\", \"postgres\" or \"sqlite3\" (same columns, no re-encryption)".into(),
                );
            }
            other => {
                return Err(format!(
                    "storage.backend {other:?} is unknown: use \"sqlite3\", \"postgres\", \"mysql\" or \"memory\""
                ));
            }
        };
        let default_alias = lookup(json, "storage.default_alias")
            .or_else(|| lookup(json, "default_alias"))
            .unwrap_or_default();
        if default_alias.is_empty() && backend != Backend::Memory {
            return Err(format!(
                "storage.default_alias is required for the {backend_name} backend (or set {ENV_PREFIX}DEFAULT_ALIAS)"
            ));
        }
        let log_level = lookup(json, "logging.level").unwrap_or_else(|| "info".into());
        let pkcs11 = match (
            lookup(json, "pkcs11.module"),
            lookup(json, "pkcs11.token_label"),
        ) {
            (None, None) => None,
            (Some(module), Some(token_label)) => Some(crate::keystore::pkcs11::Pkcs11Config {
                module: resolve(module),
                token_label,
                pin_env: lookup(json, "pkcs11.pin_env")
                    .unwrap_or_else(|| crate::keystore::pkcs11::DEFAULT_PIN_ENV.into()),
            }),
            _ => {
                return Err(
                    "pkcs11 needs both module (the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so) and token_label".into(),
                );
            }
        };
        let notation_renew_check = match lookup(json, "notation.renew_check_seconds") {
            None => crate::notation::RENEW_CHECK,
            Some(v) => std::time::Duration::from_secs(
                v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    format!(
                        "notation.renew_check_seconds {v:?} is not a positive number of seconds"
                    )
                })?,
            ),
        };
        let cached_keys = match lookup(json, "storage.cached_keys") {
            None => crate::keystore::cache::DEFAULT_CAPACITY,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("storage.cached_keys {v:?} is not a positive number"))?,
        };
        Ok(Config {
            notation_renew_check,
            cached_keys,
            grpc_addr,
            tls_cert_file,
            tls_key_file,
            client_ca_file,
            backend,
            default_alias,
            log_level,
            pkcs11,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        serde_json::json!({
            "server": {"grpc_addr": "127.0.0.1:7899", "tls_cert_file": "certs/s.crt",
                        "tls_key_file": "/abs/s.key", "client_ca_file": "certs/ca.crt"},
            "logging": {"level": "debug"},
            "storage": {"backend": "sqlite3", "db_url": "keys.db", "default_alias": "alias1"}
        })
    }

    #[test]
    fn notary_signer_keys_resolve_relative_to_the_file() {
        let c = Config::from_json(&base(), Path::new("/etc/signer")).unwrap();
        assert_eq!(c.grpc_addr, "127.0.0.1:7899");
        assert_eq!(c.tls_cert_file, Path::new("/etc/signer/certs/s.crt"));
        assert_eq!(c.tls_key_file, Path::new("/abs/s.key"));
        assert_eq!(c.backend, Backend::Sqlite("/etc/signer/keys.db".into()));
        assert_eq!(c.default_alias, "alias1");
        assert_eq!(c.log_level, "debug");
    }

    #[test]
    fn unsupported_backends_and_missing_keys_are_explained() {
        let mut j = base();
        j["storage"]["backend"] = "rethinkdb".into();
        let e = Config::from_json(&j, Path::new("/")).unwrap_err();
        assert!(e.contains("sqlite3"), "{e}");
        j["storage"]["backend"] = "mysql".into();
        j["storage"]["db_url"] = "signer@tcp(db:3306)/notarysigner?parseTime=True".into();
        let c = Config::from_json(&j, Path::new("/")).unwrap();
        assert_eq!(
            c.backend,
            Backend::Mysql("signer@tcp(db:3306)/notarysigner?parseTime=True".into())
        );
        j["storage"]["db_url"] = "signer@tcp(db:3306)/notarysigner?tls=skip-verify".into();
        let e = Config::from_json(&j, Path::new("/")).unwrap_err();
        assert!(e.contains("use tls=true"), "{e}");
        j["storage"]["backend"] = "postgres".into();
        j["storage"]["db_url"] = "postgres://signer@db:5432/notarysigner?sslmode=disable".into();
        assert!(matches!(
            Config::from_json(&j, Path::new("/")).unwrap().backend,
            Backend::Postgres(_)
        ));
        let mut j = base();
        j["server"]
            .as_object_mut()
            .unwrap()
            .remove("client_ca_file");
        let e = Config::from_json(&j, Path::new("/")).unwrap_err();
        assert!(e.contains("NOTARY_SIGNER_SERVER_CLIENT_CA_FILE"), "{e}");
        let mut j = base();
        j["storage"]
            .as_object_mut()
            .unwrap()
            .remove("default_alias");
        // The env fallback is not set in tests, so the alias is reported missing.
        if std::env::var("NOTARY_SIGNER_DEFAULT_ALIAS").is_err() {
            let e = Config::from_json(&j, Path::new("/")).unwrap_err();
            assert!(e.contains("default_alias"), "{e}");
        }
    }
}
