//! notary-server's JSON configuration (reference §1.5), read as viper reads it: nested keys,
//! each overridable by `NOTARY_SERVER_<KEY with . → _>`, file paths relative to the config
//! file. Backends: `sqlite3` (a file; the default) and `memory` (SQLite in memory).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::StartError;

pub use crate::http::TlsFiles;
pub use crate::signer_link::TrustService;

pub const ENV_PREFIX: &str = "NOTARY_SERVER_";

/// notary-server's `auth.options` for `type: token` (reference §7.1).
#[derive(Clone, Debug)]
pub struct AuthOptions {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    pub rootcertbundle: PathBuf,
    pub autoredirect: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    Memory,
    Sqlite(PathBuf),
    /// notary's `postgres` backend: the `db_url`, checked at load.
    Postgres(String),
}

#[derive(Clone, Debug)]
pub struct Config {
    pub http_addr: String,
    pub tls: Option<TlsFiles>,
    /// `server.client_ca_file`: clients of the API must present a certificate from this CA.
    pub client_ca_file: Option<PathBuf>,
    pub trust: TrustService,
    pub storage: Storage,
    /// `caching.max_age.current_metadata` in seconds (notary's default 300).
    pub max_age_current: u32,
    /// `caching.max_age.consistent_metadata` in seconds (notary's default 30 days).
    pub max_age_consistent: u32,
    pub gun_prefixes: Vec<String>,
    pub log_level: String,
    /// `auth.type = "token"` with its options.
    pub auth: Option<AuthOptions>,
    /// Our own section: `trustbridge.bridge` (the Cosign bridge; off when absent).
    pub bridge: Option<crate::bridge::BridgeConfig>,
    /// Our own section: `trustbridge.token_issuer`.
    pub token_issuer: Option<crate::auth::issuer::IssuerConfig>,
    /// Our own section: `trustbridge.renew.{timestamp,snapshot}_before_seconds`.
    pub renewal: crate::repo::Renewal,
    /// Our own section: `trustbridge.migration` (status page horizon, usage flushing,
    /// brownouts, read-only GUNs).
    pub migration: crate::migration::MigrationConfig,
    /// Our own section: `trustbridge.http` (handshake and header timeouts, connection cap).
    pub http_limits: crate::http::Limits,
    /// `trustbridge.cache`: the memory budget for cached repository views.
    pub cache: crate::repo::CacheSettings,
}

fn lookup<'a>(json: &'a Value, key: &str) -> Option<std::borrow::Cow<'a, Value>> {
    let var = format!("{ENV_PREFIX}{}", key.replace('.', "_").to_uppercase());
    if let Ok(v) = std::env::var(&var)
        && !v.is_empty()
    {
        return Some(std::borrow::Cow::Owned(Value::String(v)));
    }
    let mut cur = json;
    for part in key.split('.') {
        cur = cur.get(part)?;
    }
    (!cur.is_null()).then_some(std::borrow::Cow::Borrowed(cur))
}

fn string(json: &Value, key: &str) -> Option<String> {
    match lookup(json, key)?.as_ref() {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(json: &Value, key: &str) -> Result<Option<u32>, String> {
    match lookup(json, key).as_deref() {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("{key} must be a non-negative integer")),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| format!("{key} must be a non-negative integer")),
        Some(_) => Err(format!("{key} must be a number")),
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, StartError> {
        let text = std::fs::read(path).map_err(|e| StartError::Config {
            path: path.into(),
            reason: e.to_string(),
        })?;
        let json: Value = serde_json::from_slice(&text).map_err(|e| StartError::Config {
            path: path.into(),
            reason: format!("not valid JSON: {e}"),
        })?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Self::from_json(&json, &dir).map_err(|reason| StartError::Config {
            path: path.into(),
            reason,
        })
    }

    pub fn from_json(json: &Value, dir: &Path) -> Result<Config, String> {
        let resolve = |p: String| {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { dir.join(p) }
        };
        let http_addr = string(json, "server.http_addr")
            .ok_or("server.http_addr is required (e.g. \"127.0.0.1:4443\")")?;
        let tls = match (
            string(json, "server.tls_cert_file"),
            string(json, "server.tls_key_file"),
        ) {
            (Some(c), Some(k)) => Some(TlsFiles {
                cert: resolve(c),
                key: resolve(k),
            }),
            (None, None) => None,
            _ => return Err("server.tls_cert_file and server.tls_key_file go together".into()),
        };
        let ttype = string(json, "trust_service.type").unwrap_or_else(|| "remote".into());
        if ttype != "remote" {
            return Err(format!(
                "trust_service.type {ttype:?} is not supported: trustbridge-server keeps no keys itself; use \"remote\" with trustbridge-signer or notary-signer"
            ));
        }
        let hostname = string(json, "trust_service.hostname")
            .ok_or("trust_service.hostname is required (the signer's host)")?;
        let port = string(json, "trust_service.port")
            .ok_or("trust_service.port is required")?
            .parse()
            .map_err(|_| "trust_service.port must be a port number")?;
        let key_algorithm =
            string(json, "trust_service.key_algorithm").unwrap_or_else(|| "ecdsa".into());
        if !["ecdsa", "ed25519", "rsa"].contains(&key_algorithm.as_str()) {
            return Err(format!(
                "trust_service.key_algorithm {key_algorithm:?} must be ecdsa, ed25519 or rsa"
            ));
        }
        let ca_file =
            resolve(string(json, "trust_service.tls_ca_file").ok_or(
                "trust_service.tls_ca_file is required (the CA of the signer's certificate)",
            )?);
        let client_cert = match (
            string(json, "trust_service.tls_client_cert"),
            string(json, "trust_service.tls_client_key"),
        ) {
            (Some(c), Some(k)) => Some(TlsFiles {
                cert: resolve(c),
                key: resolve(k),
            }),
            (None, None) => None,
            _ => {
                return Err("trust_service.tls_client_cert and tls_client_key go together".into());
            }
        };
        let backend = string(json, "storage.backend").unwrap_or_else(|| "sqlite3".into());
        let storage = match backend.as_str() {
            "memory" => Storage::Memory,
            "sqlite3" | "sqlite" => {
                let url = string(json, "storage.db_url")
                    .ok_or("storage.db_url is required for sqlite3 (a file path)")?;
                let file = url.strip_prefix("file:").unwrap_or(&url);
                Storage::Sqlite(resolve(file.split('?').next().unwrap_or(file).into()))
            }
            "postgres" => {
                let url = string(json, "storage.db_url").ok_or(
                    "storage.db_url is required for postgres (postgres://user@host:5432/db?sslmode=disable)",
                )?;
                crate::storage::postgres::parse_url(&url).map(|_| ())?;
                Storage::Postgres(url)
            }
            "mysql" | "rethinkdb" => {
                return Err(format!(
                    "storage.backend {backend:?} is not supported: use \"postgres\" (several replicas) or \"sqlite3\" with storage.db_url set to a file"
                ));
            }
            other => return Err(format!("storage.backend {other:?} is unknown")),
        };
        let max_age_current = number(json, "caching.max_age.current_metadata")?.unwrap_or(300);
        let max_age_consistent =
            number(json, "caching.max_age.consistent_metadata")?.unwrap_or(30 * 24 * 3600);
        for (k, v) in [
            ("current_metadata", max_age_current),
            ("consistent_metadata", max_age_consistent),
        ] {
            if v > 31_536_000 {
                return Err(format!("caching.max_age.{k} must be at most 31536000"));
            }
        }
        let gun_prefixes = match lookup(json, "repositories.gun_prefixes").as_deref() {
            None => vec![],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or("repositories.gun_prefixes must be a list of strings")?,
            Some(Value::String(s)) => s.split(',').map(str::to_string).collect(),
            Some(_) => return Err("repositories.gun_prefixes must be a list of strings".into()),
        };
        for p in &gun_prefixes {
            if !p.ends_with('/') || p.starts_with('/') || p.starts_with("..") {
                return Err(format!(
                    "repositories.gun_prefixes entry {p:?} must end with '/' and not start with '/' or '..'"
                ));
            }
        }
        let mut renewal = crate::repo::Renewal::default();
        if let Some(v) = number(json, "trustbridge.renew.timestamp_before_seconds")? {
            renewal.timestamp = time::Duration::seconds(v.into());
        }
        if let Some(v) = number(json, "trustbridge.renew.snapshot_before_seconds")? {
            renewal.snapshot = time::Duration::seconds(v.into());
        }
        if let Some(v) = number(json, "trustbridge.renew.sweep_seconds")? {
            renewal.sweep = std::time::Duration::from_secs(v.max(1).into());
        }
        let auth = if string(json, "auth.type").as_deref() == Some("token") {
            let req = |k: &str| {
                string(json, &format!("auth.options.{k}"))
                    .ok_or_else(|| format!("auth.options.{k} is required for token auth"))
            };
            Some(AuthOptions {
                realm: req("realm")?,
                service: req("service")?,
                issuer: req("issuer")?,
                rootcertbundle: resolve(req("rootcertbundle")?),
                autoredirect: matches!(
                    lookup(json, "auth.options.autoredirect").as_deref(),
                    Some(Value::Bool(true))
                ) || string(json, "auth.options.autoredirect").as_deref()
                    == Some("true"),
            })
        } else {
            None
        };
        let token_issuer = match lookup(json, "trustbridge.token_issuer").as_deref() {
            None => None,
            Some(Value::Object(_)) => {
                let key_id = string(json, "trustbridge.token_issuer.key_id")
                    .ok_or("trustbridge.token_issuer.key_id is required (trustbridge-signer token-key generate)")?;
                let htpasswd = resolve(string(json, "trustbridge.token_issuer.htpasswd").ok_or(
                    "trustbridge.token_issuer.htpasswd is required (a bcrypt htpasswd file)",
                )?);
                let rules: Vec<crate::auth::issuer::Rule> =
                    match lookup(json, "trustbridge.token_issuer.rules") {
                        Some(v) => serde_json::from_value(v.into_owned())
                            .map_err(|e| format!("trustbridge.token_issuer.rules: {e}"))?,
                        None => vec![],
                    };
                let admins: Vec<String> = match lookup(json, "trustbridge.token_issuer.admins") {
                    Some(v) => serde_json::from_value(v.into_owned())
                        .map_err(|e| format!("trustbridge.token_issuer.admins: {e}"))?,
                    None => vec![],
                };
                let ttl = number(json, "trustbridge.token_issuer.ttl_seconds")?.unwrap_or(300);
                Some(crate::auth::issuer::IssuerConfig {
                    key_id,
                    htpasswd,
                    rules,
                    admins,
                    ttl_seconds: ttl.into(),
                })
            }
            Some(_) => return Err("trustbridge.token_issuer must be an object".into()),
        };
        let client_ca_file = string(json, "server.client_ca_file").map(resolve);
        if client_ca_file.is_some() && tls.is_none() {
            return Err("server.client_ca_file needs server.tls_cert_file and tls_key_file".into());
        }
        let bridge = match lookup(json, "trustbridge.bridge").as_deref() {
            None => None,
            Some(Value::Object(_)) => Some(crate::bridge::BridgeConfig {
                key_id: string(json, "trustbridge.bridge.key_id").ok_or(
                    "trustbridge.bridge.key_id is required (trustbridge-signer cosign-key generate)",
                )?,
                rewrite: match lookup(json, "trustbridge.bridge.rewrite") {
                    Some(v) => {
                        let m: std::collections::BTreeMap<String, String> =
                            serde_json::from_value(v.into_owned())
                                .map_err(|e| format!("trustbridge.bridge.rewrite: {e}"))?;
                        m.into_iter().collect()
                    }
                    None => vec![],
                },
                max_backoff: std::time::Duration::from_secs(
                    number(json, "trustbridge.bridge.max_backoff_seconds")?
                        .unwrap_or(300)
                        .max(1)
                        .into(),
                ),
                registries: match lookup(json, "trustbridge.bridge.registries") {
                    Some(v) => {
                        let mut m: std::collections::HashMap<String, crate::bridge::RegistryConfig> =
                            serde_json::from_value(v.into_owned())
                                .map_err(|e| format!("trustbridge.bridge.registries: {e}"))?;
                        for r in m.values_mut() {
                            r.ca_file = r.ca_file.take().map(|p| resolve(p.to_string_lossy().into_owned()));
                        }
                        m
                    }
                    None => Default::default(),
                },
                max_attempts: number(json, "trustbridge.bridge.max_attempts")?.unwrap_or(50),
                on_expiry: match string(json, "trustbridge.bridge.on_expiry") {
                    None => crate::mirror::OnExpiry::Keep,
                    Some(v) => crate::mirror::OnExpiry::parse(&v).ok_or_else(|| {
                        format!("trustbridge.bridge.on_expiry {v:?}: use \"keep\" or \"revoke\"")
                    })?,
                },
                reconcile_every: match number(json, "trustbridge.bridge.reconcile_seconds")?.unwrap_or(600) {
                    0 => None,
                    n => Some(std::time::Duration::from_secs(n.into())),
                },
                allow_loopback: match lookup(json, "trustbridge.bridge.allow_loopback").as_deref() {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err("trustbridge.bridge.allow_loopback must be true or false".into()),
                },
                new_bundle_format: match lookup(json, "trustbridge.bridge.new_bundle_format").as_deref() {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err("trustbridge.bridge.new_bundle_format must be true or false".into()),
                },
            }),
            Some(_) => return Err("trustbridge.bridge must be an object".into()),
        };
        Ok(Config {
            bridge,
            client_ca_file,
            auth,
            token_issuer,
            renewal,
            http_limits: match lookup(json, "trustbridge.http") {
                None => Default::default(),
                Some(v) => serde_json::from_value(v.into_owned())
                    .map_err(|e| format!("trustbridge.http: {e}"))?,
            },
            cache: match lookup(json, "trustbridge.cache") {
                None => Default::default(),
                Some(v) => serde_json::from_value(v.into_owned())
                    .map_err(|e| format!("trustbridge.cache: {e}"))?,
            },
            migration: match lookup(json, "trustbridge.migration") {
                None => Default::default(),
                Some(v) => crate::migration::MigrationConfig::from_value(v.into_owned())?,
            },
            http_addr,
            tls,
            trust: TrustService {
                hostname,
                port,
                key_algorithm,
                ca_file,
                client_cert,
            },
            storage,
            max_age_current,
            max_age_consistent,
            gun_prefixes,
            log_level: string(json, "logging.level").unwrap_or_else(|| "info".into()),
        })
    }
}
