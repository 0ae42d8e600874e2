//! notary-server's JSON configuration (reference §1.5), read as viper reads it: nested keys,
//! each overridable by `NOTARY_SERVER_<KEY with . → _>`, file paths relative to the config
//! file. This module only reads notary's (and our `trustbridge.*`) keys into the settings types
//! of the modules they configure; each of those owns its defaults.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::AuthOptions;
use crate::auth::issuer::{DEFAULT_TTL_SECONDS, IssuerConfig};
use crate::bridge::BridgeConfig;
use crate::error::StartError;
use crate::repo::Renewal;
use crate::routes::CachePolicy;
use crate::signer_link::{DEFAULT_KEY_ALGORITHM, KEY_ALGORITHMS};

pub use crate::signer_link::TrustService;
pub use crate::storage::Backend as Storage;
pub use crate::tls::TlsFiles;

pub const ENV_PREFIX: &str = "NOTARY_SERVER_";

/// A key whose value cannot be used; the message names the key and what it takes.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingError(pub String);

impl From<&str> for SettingError {
    fn from(s: &str) -> Self {
        SettingError(s.into())
    }
}

impl From<String> for SettingError {
    fn from(s: String) -> Self {
        SettingError(s)
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub http_addr: String,
    pub tls: Option<TlsFiles>,
    /// `server.client_ca_file`: clients of the API must present a certificate from this CA.
    pub client_ca_file: Option<PathBuf>,
    pub trust: TrustService,
    pub storage: Storage,
    /// `caching.max_age`.
    pub caching: CachePolicy,
    pub gun_prefixes: Vec<String>,
    pub log_level: String,
    /// `auth.type = "token"` with its options.
    pub auth: Option<AuthOptions>,
    /// Our own section: `trustbridge.bridge` (the Cosign bridge; off when absent).
    pub bridge: Option<BridgeConfig>,
    /// Our own section: `trustbridge.token_issuer`.
    pub token_issuer: Option<IssuerConfig>,
    /// Our own section: `trustbridge.renew.{timestamp,snapshot}_before_seconds`.
    pub renewal: Renewal,
    /// Our own section: `trustbridge.migration` (status page horizon, usage flushing,
    /// brownouts, read-only GUNs).
    pub migration: crate::migration::MigrationConfig,
    /// Our own section: `trustbridge.http` (handshake and header timeouts, connection cap).
    pub http_limits: crate::http::Limits,
    /// `trustbridge.cache`: the memory budget for cached repository views.
    pub cache: crate::repo::CacheSettings,
}

/// The config's keys as viper reads them: the environment first, then the JSON.
struct Keys<'a> {
    json: &'a Value,
    dir: &'a Path,
}

impl<'a> Keys<'a> {
    fn lookup(&self, key: &str) -> Option<Cow<'a, Value>> {
        let var = format!("{ENV_PREFIX}{}", key.replace('.', "_").to_uppercase());
        if let Ok(v) = std::env::var(&var)
            && !v.is_empty()
        {
            return Some(Cow::Owned(Value::String(v)));
        }
        let mut cur = self.json;
        for part in key.split('.') {
            cur = cur.get(part)?;
        }
        (!cur.is_null()).then_some(Cow::Borrowed(cur))
    }

    fn string(&self, key: &str) -> Option<String> {
        match self.lookup(key)?.as_ref() {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A string that must be there; `hint` says what it is.
    fn required(&self, key: &str, hint: &str) -> Result<String, SettingError> {
        self.string(key)
            .ok_or_else(|| SettingError(format!("{key} is required ({hint})")))
    }

    fn number(&self, key: &str) -> Result<Option<u32>, SettingError> {
        let bad = || SettingError(format!("{key} must be a non-negative integer"));
        match self.lookup(key).as_deref() {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(bad),
            Some(Value::String(s)) => s.parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(SettingError(format!("{key} must be a number"))),
        }
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, SettingError> {
        match self.lookup(key).as_deref() {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
            Some(_) => Err(SettingError(format!("{key} must be true or false"))),
        }
    }

    /// A whole object read by its settings type's serde rules.
    fn section<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SettingError> {
        self.lookup(key)
            .map(|v| serde_json::from_value(v.into_owned()))
            .transpose()
            .map_err(|e| SettingError(format!("{key}: {e}")))
    }

    /// Whether `key` is an object (a section that is on); anything else there is an error.
    fn object(&self, key: &str) -> Result<bool, SettingError> {
        match self.lookup(key).as_deref() {
            None => Ok(false),
            Some(Value::Object(_)) => Ok(true),
            Some(_) => Err(SettingError(format!("{key} must be an object"))),
        }
    }

    /// A path relative to the config file's directory.
    fn path(&self, p: impl Into<PathBuf>) -> PathBuf {
        let p = p.into();
        if p.is_absolute() { p } else { self.dir.join(p) }
    }

    /// A certificate and its key, named by two keys that go together.
    fn pair(&self, cert: &str, key: &str) -> Result<Option<TlsFiles>, SettingError> {
        match (self.string(cert), self.string(key)) {
            (Some(c), Some(k)) => Ok(Some(TlsFiles {
                cert: self.path(c),
                key: self.path(k),
            })),
            (None, None) => Ok(None),
            _ => Err(SettingError(format!("{cert} and {key} go together"))),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, StartError> {
        let bad = |reason: String| StartError::Config {
            path: path.into(),
            reason,
        };
        let text = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let json: Value =
            serde_json::from_slice(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Self::from_json(&json, &dir).map_err(|e| bad(e.0))
    }

    pub fn from_json(json: &Value, dir: &Path) -> Result<Config, SettingError> {
        let k = Keys { json, dir };
        let http_addr = k.required("server.http_addr", "e.g. \"127.0.0.1:4443\"")?;
        let tls = k.pair("server.tls_cert_file", "server.tls_key_file")?;
        let client_ca_file = k.string("server.client_ca_file").map(|p| k.path(p));
        if client_ca_file.is_some() && tls.is_none() {
            return Err("server.client_ca_file needs server.tls_cert_file and tls_key_file".into());
        }
        Ok(Config {
            http_addr,
            tls,
            client_ca_file,
            trust: trust_service(&k)?,
            storage: storage(&k)?,
            caching: caching(&k)?,
            gun_prefixes: gun_prefixes(&k)?,
            log_level: k.string("logging.level").unwrap_or_else(|| "info".into()),
            auth: auth(&k)?,
            token_issuer: token_issuer(&k)?,
            renewal: renewal(&k)?,
            bridge: bridge(&k)?,
            http_limits: k.section("trustbridge.http")?.unwrap_or_default(),
            cache: k.section("trustbridge.cache")?.unwrap_or_default(),
            migration: match k.lookup("trustbridge.migration") {
                None => Default::default(),
                Some(v) => crate::migration::MigrationConfig::from_value(v.into_owned())
                    .map_err(|e| SettingError(e.to_string()))?,
            },
        })
    }
}

/// `trust_service`: notary's `remote` signer only (this server keeps no keys).
fn trust_service(k: &Keys<'_>) -> Result<TrustService, SettingError> {
    let ttype = k
        .string("trust_service.type")
        .unwrap_or_else(|| "remote".into());
    if ttype != "remote" {
        return Err(format!(
            "trust_service.type {ttype:?} is not supported: trustbridge-server keeps no keys itself; use \"remote\" with trustbridge-signer or notary-signer"
        )
        .into());
    }
    let hostname = k.required("trust_service.hostname", "the signer's host")?;
    let port = k
        .required("trust_service.port", "the signer's port")?
        .parse()
        .map_err(|_| "trust_service.port must be a port number")?;
    let key_algorithm = k
        .string("trust_service.key_algorithm")
        .unwrap_or_else(|| DEFAULT_KEY_ALGORITHM.into());
    if !KEY_ALGORITHMS.contains(&key_algorithm.as_str()) {
        return Err(format!(
            "trust_service.key_algorithm {key_algorithm:?} must be one of {}",
            KEY_ALGORITHMS.join(", ")
        )
        .into());
    }
    Ok(TrustService {
        additional: endpoints(k)?,
        hostname,
        port,
        key_algorithm,
        ca_file: k.path(k.required(
            "trust_service.tls_ca_file",
            "the CA of the signer's certificate",
        )?),
        client_cert: k.pair(
            "trust_service.tls_client_cert",
            "trust_service.tls_client_key",
        )?,
    })
}

/// `trust_service.endpoints` (ours): more signers serving the same keys, as a list of
/// `host:port` (or a comma-separated string from the environment).
fn endpoints(k: &Keys<'_>) -> Result<Vec<(String, u16)>, SettingError> {
    const KEY: &str = "trust_service.endpoints";
    let list: Vec<String> = match k.lookup(KEY).as_deref() {
        None => return Ok(vec![]),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| SettingError(format!("{KEY} must be a list of \"host:port\"")))?,
        Some(_) => return Err(format!("{KEY} must be a list of \"host:port\"").into()),
    };
    list.iter()
        .map(|e| {
            let bad = || SettingError(format!("{KEY} entry {e:?} must be \"host:port\""));
            let (host, port) = e.rsplit_once(':').ok_or_else(bad)?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(bad());
            }
            Ok((host.to_string(), port.parse().map_err(|_| bad())?))
        })
        .collect()
}

/// `storage.backend` and `storage.db_url`.
fn storage(k: &Keys<'_>) -> Result<Storage, SettingError> {
    let backend = k
        .string("storage.backend")
        .unwrap_or_else(|| "sqlite3".into());
    Ok(match backend.as_str() {
        "memory" => Storage::Memory,
        "sqlite3" | "sqlite" => {
            let url = k.required("storage.db_url", "a file path for sqlite3")?;
            let file = url.strip_prefix("file:").unwrap_or(&url);
            Storage::Sqlite(k.path(file.split('?').next().unwrap_or(file)))
        }
        "postgres" => {
            let url = k.required(
                "storage.db_url",
                "postgres://user@host:5432/db?sslmode=disable for postgres",
            )?;
            crate::storage::postgres::parse_url(&url).map_err(|e| SettingError(e.to_string()))?;
            Storage::Postgres(url)
        }
        "mysql" => {
            let dsn = k.required(
                "storage.db_url",
                "user:password@tcp(host:3306)/db?parseTime=True for mysql",
            )?;
            trustbridge_db::mysql::parse_dsn(&dsn).map_err(|e| SettingError(e.to_string()))?;
            Storage::Mysql(dsn)
        }
        "rethinkdb" => {
            return Err(
                "storage.backend \"rethinkdb\" is not supported: use \"mysql\" or \"postgres\" (several replicas) or \"sqlite3\" with storage.db_url set to a file".into(),
            );
        }
        other => return Err(format!("storage.backend {other:?} is unknown").into()),
    })
}

/// `caching.max_age.{current,consistent}_metadata`.
fn caching(k: &Keys<'_>) -> Result<CachePolicy, SettingError> {
    let d = CachePolicy::default();
    let c = CachePolicy {
        current: k
            .number("caching.max_age.current_metadata")?
            .unwrap_or(d.current),
        consistent: k
            .number("caching.max_age.consistent_metadata")?
            .unwrap_or(d.consistent),
    };
    for (key, v) in [
        ("current_metadata", c.current),
        ("consistent_metadata", c.consistent),
    ] {
        if v > CachePolicy::MAX {
            return Err(
                format!("caching.max_age.{key} must be at most {}", CachePolicy::MAX).into(),
            );
        }
    }
    Ok(c)
}

/// `repositories.gun_prefixes`: a list, or a comma-separated string from the environment.
fn gun_prefixes(k: &Keys<'_>) -> Result<Vec<String>, SettingError> {
    const BAD: &str = "repositories.gun_prefixes must be a list of strings";
    let prefixes: Vec<String> = match k.lookup("repositories.gun_prefixes").as_deref() {
        None => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or(BAD)?,
        Some(Value::String(s)) => s.split(',').map(str::to_string).collect(),
        Some(_) => return Err(BAD.into()),
    };
    for p in &prefixes {
        if !p.ends_with('/') || p.starts_with('/') || p.starts_with("..") {
            return Err(format!(
                "repositories.gun_prefixes entry {p:?} must end with '/' and not start with '/' or '..'"
            )
            .into());
        }
    }
    Ok(prefixes)
}

/// `trustbridge.renew`.
fn renewal(k: &Keys<'_>) -> Result<Renewal, SettingError> {
    let mut r = Renewal::default();
    if let Some(v) = k.number("trustbridge.renew.timestamp_before_seconds")? {
        r.timestamp = time::Duration::seconds(v.into());
    }
    if let Some(v) = k.number("trustbridge.renew.snapshot_before_seconds")? {
        r.snapshot = time::Duration::seconds(v.into());
    }
    if let Some(v) = k.number("trustbridge.renew.sweep_seconds")? {
        r.sweep = Duration::from_secs(v.max(1).into());
    }
    Ok(r)
}

/// `auth` with `type: token`.
fn auth(k: &Keys<'_>) -> Result<Option<AuthOptions>, SettingError> {
    if k.string("auth.type").as_deref() != Some("token") {
        return Ok(None);
    }
    let req = |key: &str| k.required(&format!("auth.options.{key}"), "for token auth");
    Ok(Some(AuthOptions {
        realm: req("realm")?,
        service: req("service")?,
        issuer: req("issuer")?,
        rootcertbundle: k.path(req("rootcertbundle")?),
        autoredirect: k.flag("auth.options.autoredirect")?.unwrap_or(false),
    }))
}

/// `trustbridge.token_issuer`.
fn token_issuer(k: &Keys<'_>) -> Result<Option<IssuerConfig>, SettingError> {
    if !k.object("trustbridge.token_issuer")? {
        return Ok(None);
    }
    Ok(Some(IssuerConfig {
        key_id: k.required(
            "trustbridge.token_issuer.key_id",
            "trustbridge-signer token-key generate",
        )?,
        htpasswd: k.path(k.required(
            "trustbridge.token_issuer.htpasswd",
            "a bcrypt htpasswd file",
        )?),
        rules: k
            .section("trustbridge.token_issuer.rules")?
            .unwrap_or_default(),
        admins: k
            .section("trustbridge.token_issuer.admins")?
            .unwrap_or_default(),
        ttl_seconds: k
            .number("trustbridge.token_issuer.ttl_seconds")?
            .map_or(DEFAULT_TTL_SECONDS, i64::from),
    }))
}

/// `trustbridge.bridge`: the Cosign bridge, off when absent.
fn bridge(k: &Keys<'_>) -> Result<Option<BridgeConfig>, SettingError> {
    if !k.object("trustbridge.bridge")? {
        return Ok(None);
    }
    let d = BridgeConfig::default();
    let mut registries: std::collections::HashMap<String, crate::bridge::RegistryConfig> = k
        .section("trustbridge.bridge.registries")?
        .unwrap_or_default();
    for r in registries.values_mut() {
        r.ca_file = r.ca_file.take().map(|p| k.path(p));
    }
    let rewrite: std::collections::BTreeMap<String, String> =
        k.section("trustbridge.bridge.rewrite")?.unwrap_or_default();
    Ok(Some(BridgeConfig {
        key_id: k.required(
            "trustbridge.bridge.key_id",
            "trustbridge-signer cosign-key generate",
        )?,
        rewrite: rewrite.into_iter().collect(),
        max_backoff: match k.number("trustbridge.bridge.max_backoff_seconds")? {
            Some(n) => Duration::from_secs(n.max(1).into()),
            None => d.max_backoff,
        },
        registries,
        max_attempts: k
            .number("trustbridge.bridge.max_attempts")?
            .unwrap_or(d.max_attempts),
        on_expiry: match k.string("trustbridge.bridge.on_expiry") {
            None => d.on_expiry,
            Some(v) => crate::mirror::OnExpiry::parse(&v).ok_or_else(|| {
                format!("trustbridge.bridge.on_expiry {v:?}: use \"keep\" or \"revoke\"")
            })?,
        },
        reconcile_every: match k.number("trustbridge.bridge.reconcile_seconds")? {
            None => d.reconcile_every,
            Some(0) => None,
            Some(n) => Some(Duration::from_secs(n.into())),
        },
        allow_loopback: k
            .flag("trustbridge.bridge.allow_loopback")?
            .unwrap_or(d.allow_loopback),
        new_bundle_format: k
            .flag("trustbridge.bridge.new_bundle_format")?
            .unwrap_or(d.new_bundle_format),
        notation: if k.object("trustbridge.bridge.notation")? {
            Some(crate::bridge::notation::NotationConfig {
                key_id: k.required(
                    "trustbridge.bridge.notation.key_id",
                    "trustbridge-signer notation-key generate --subject ...",
                )?,
            })
        } else {
            None
        },
    }))
}
