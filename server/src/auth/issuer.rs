//! The built-in token issuer (`GET /_trustbridge/v1/token`), off by default: for teams without
//! a registry token service. It answers the registry token protocol the notary client and the
//! docker CLI speak (Basic credentials, `service` and `scope` parameters, a JSON `token`), from
//! an htpasswd file (bcrypt) and per-GUN-prefix rules. Tokens are the JWTs [`super::jwt`]
//! verifies, signed ES256 by a key held in the signer (through the Sign RPC; its raw r||s is
//! JWS's ES256 form) and named by `kid`, whose certificate goes into the root bundle.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;

use crate::signer_link::{SignerError, SignerLink};
use crate::wire::{ApiError, WireCode};
use axum::response::{IntoResponse, Response};

/// Failed logins allowed per user name, from any address, within [`FAILURE_WINDOW`]: guessing
/// one account's password from many addresses is stopped.
const MAX_FAILURES_PER_USER: u32 = 5;
/// Failed logins allowed per client address, for any user names, within [`FAILURE_WINDOW`]:
/// spraying one password over many accounts is stopped, while the people behind one NAT can
/// still mistype a few times each without locking each other out.
const MAX_FAILURES_PER_ADDRESS: u32 = 30;
const FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// How many user names and addresses the limiter remembers at most: beyond that (after the
/// expired ones are dropped) new logins are refused rather than memory growing.
const MAX_TRACKED: usize = 65_536;
/// How long a login may wait for a bcrypt slot before it is refused with 429: bcrypt is
/// deliberately slow, so unbounded concurrent checks would take every core.
const BCRYPT_WAIT: Duration = Duration::from_secs(5);

/// Who may do what under a GUN prefix.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Rule {
    /// GUNs starting with this (`""` = all).
    pub gun_prefix: String,
    /// User names; `"*"` = anyone, including anonymous requests.
    pub users: Vec<String>,
    /// `pull`, `push`, `*` (delete, key rotation).
    pub actions: Vec<String>,
}

/// How long an issued token is valid unless `ttl_seconds` says otherwise (docker/distribution's
/// token server default).
pub const DEFAULT_TTL_SECONDS: i64 = 300;

/// `trustbridge.token_issuer`.
#[derive(Clone, Debug)]
pub struct IssuerConfig {
    /// The signer key (ECDSA P-256) that signs tokens.
    pub key_id: String,
    pub htpasswd: std::path::PathBuf,
    pub rules: Vec<Rule>,
    /// Users granted `registry:catalog:*` (the global changefeed).
    pub admins: Vec<String>,
    pub ttl_seconds: i64,
}

pub struct Issuer {
    cfg: IssuerConfig,
    users: HashMap<String, String>,
    service: String,
    issuer: String,
    signer: SignerLink,
    kid: tokio::sync::OnceCell<String>,
    limiter: Mutex<Limiter>,
    /// Concurrent bcrypt checks, at most one per core.
    bcrypt_slots: tokio::sync::Semaphore,
    /// A bcrypt hash (at the file's highest cost) checked for unknown user names, so the
    /// answer takes as long as for a known name and timing does not tell which names exist.
    dummy_hash: String,
}

/// Failed logins in the current window: (count, window start).
type Window = (u32, Instant);

/// Login attempts, counted per user name and per client address separately. An attempt is
/// counted *before* its password is checked (and given back when it succeeds), so concurrent
/// guesses cannot all pass the check while the first ones are still in bcrypt.
#[derive(Default)]
struct Limiter {
    users: HashMap<String, Window>,
    addrs: HashMap<IpAddr, Window>,
}

/// Why a login was not checked.
#[derive(Debug, PartialEq, Eq)]
enum Limited {
    /// Too many failures for this user name or this address in the window.
    Failures,
    /// The limiter is full of live entries.
    Full,
}

impl Limiter {
    fn prune(&mut self) {
        self.users.retain(|_, (_, t)| t.elapsed() < FAILURE_WINDOW);
        self.addrs.retain(|_, (_, t)| t.elapsed() < FAILURE_WINDOW);
    }

    /// Count an attempt for (user, addr) unless either is over its limit.
    fn begin(&mut self, user: &str, addr: Option<IpAddr>) -> Result<(), Limited> {
        if self.users.len() >= MAX_TRACKED || self.addrs.len() >= MAX_TRACKED {
            self.prune();
        }
        let live = |w: Option<&Window>| {
            w.filter(|(_, t)| t.elapsed() < FAILURE_WINDOW)
                .map_or(0, |(n, _)| *n)
        };
        if live(self.users.get(user)) >= MAX_FAILURES_PER_USER
            || addr.is_some_and(|a| live(self.addrs.get(&a)) >= MAX_FAILURES_PER_ADDRESS)
        {
            return Err(Limited::Failures);
        }
        if (!self.users.contains_key(user) && self.users.len() >= MAX_TRACKED)
            || addr.is_some_and(|a| !self.addrs.contains_key(&a) && self.addrs.len() >= MAX_TRACKED)
        {
            return Err(Limited::Full);
        }
        let bump = |w: &mut Window| {
            if w.1.elapsed() >= FAILURE_WINDOW {
                *w = (0, Instant::now());
            }
            w.0 += 1;
        };
        bump(
            self.users
                .entry(user.to_string())
                .or_insert((0, Instant::now())),
        );
        if let Some(a) = addr {
            bump(self.addrs.entry(a).or_insert((0, Instant::now())));
        }
        Ok(())
    }

    /// Give back an attempt that succeeded (or was never checked).
    fn undo(&mut self, user: &str, addr: Option<IpAddr>) {
        if let Some(w) = self.users.get_mut(user) {
            w.0 = w.0.saturating_sub(1);
        }
        if let Some(w) = addr.and_then(|a| self.addrs.get_mut(&a)) {
            w.0 = w.0.saturating_sub(1);
        }
    }
}

/// Why the token issuer cannot start or sign.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A line of the htpasswd file the issuer cannot use.
    #[error("{path} line {line}: {reason}")]
    Htpasswd {
        path: std::path::PathBuf,
        line: usize,
        reason: &'static str,
    },
    #[error("token issuer: bcrypt: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
    #[error("no randomness for the token issuer")]
    Random,
    #[error(transparent)]
    Signer(#[from] SignerError),
}

/// The bcrypt cost of an htpasswd hash (`$2y$10$...`).
fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.split('$').nth(2)?.parse().ok()
}

/// Parse an htpasswd file of bcrypt entries (`user:$2y$...`).
pub fn load_htpasswd(path: &std::path::Path) -> Result<HashMap<String, String>, IssuerError> {
    let text = std::fs::read_to_string(path).map_err(|source| IssuerError::Io {
        path: path.into(),
        source,
    })?;
    let mut users = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason| IssuerError::Htpasswd {
            path: path.into(),
            line: n + 1,
            reason,
        };
        let (user, hash) = line
            .split_once(':')
            .ok_or_else(|| bad("expected user:hash"))?;
        if !hash.starts_with("$2") {
            return Err(bad("only bcrypt entries are accepted (htpasswd -B)"));
        }
        users.insert(user.to_string(), hash.to_string());
    }
    Ok(users)
}

/// Split `type:name:actions`; the name may itself contain `:` (a registry port).
fn parse_scope(s: &str) -> Option<(String, String, Vec<String>)> {
    let (typ, rest) = s.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some((
        typ.to_string(),
        name.to_string(),
        actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
    ))
}

impl Issuer {
    pub fn new(
        cfg: IssuerConfig,
        service: &str,
        issuer: &str,
        signer: SignerLink,
    ) -> Result<Self, IssuerError> {
        let users = load_htpasswd(&cfg.htpasswd)?;
        let cost = users
            .values()
            .filter_map(|h| bcrypt_cost(h))
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST)
            .clamp(4, 31);
        let mut dummy = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut dummy)
            .map_err(|_| IssuerError::Random)?;
        let dummy_hash = bcrypt::hash(hex::encode(dummy), cost)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Issuer {
            cfg,
            users,
            service: service.into(),
            issuer: issuer.into(),
            signer,
            kid: tokio::sync::OnceCell::new(),
            limiter: Mutex::new(Limiter::default()),
            bcrypt_slots: tokio::sync::Semaphore::new(cores),
            dummy_hash,
        })
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, Limiter> {
        self.limiter.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Check `pass` for `user`: counted first, bcrypt bounded, the same work for unknown names.
    async fn login(
        &self,
        user: &str,
        pass: zeroize::Zeroizing<String>,
        addr: Option<IpAddr>,
    ) -> Result<(), Response> {
        if let Err(why) = self.limiter().begin(user, addr) {
            tracing::warn!(user = %user, ?addr, ?why, "token request refused: too many failed logins");
            return Err(ApiError::new(WireCode::TooManyRequests, None).into_response());
        }
        let slot = match tokio::time::timeout(BCRYPT_WAIT, self.bcrypt_slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            _ => {
                self.limiter().undo(user, addr);
                tracing::warn!(user = %user, ?addr, "token request refused: password checks are saturated");
                return Err(ApiError::new(WireCode::TooManyRequests, None).into_response());
            }
        };
        let (hash, known) = match self.users.get(user) {
            Some(h) => (h.clone(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let ok = tokio::task::spawn_blocking(move || {
            bcrypt::verify(pass.as_str(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false)
            && known;
        drop(slot);
        if ok {
            self.limiter().undo(user, addr);
            Ok(())
        } else {
            tracing::info!(user = %user, ?addr, "token request refused: wrong credentials");
            Err(basic_challenge())
        }
    }

    /// The actions `user` may have on `gun`, among `wanted`.
    fn allowed(&self, user: &str, gun: &str, wanted: &[String]) -> Vec<String> {
        let mut may: Vec<&str> = Vec::new();
        for r in &self.cfg.rules {
            if gun.starts_with(&r.gun_prefix)
                && r.users
                    .iter()
                    .any(|u| u == "*" || (!user.is_empty() && u == user))
            {
                may.extend(r.actions.iter().map(String::as_str));
            }
        }
        wanted
            .iter()
            .filter(|w| may.iter().any(|m| *m == "*" || m == w))
            .cloned()
            .collect()
    }

    fn missing_key(&self, rpc: &'static str) -> SignerError {
        self.signer.missing(
            rpc,
            format!("the signer does not hold token key {}", self.cfg.key_id),
        )
    }

    async fn kid(&self) -> Result<String, IssuerError> {
        self.kid
            .get_or_try_init(|| async {
                let key = self
                    .signer
                    .key_info(&self.cfg.key_id)
                    .await?
                    .ok_or_else(|| self.missing_key("GetKeyInfo"))?;
                Ok::<_, IssuerError>(super::jwt::libtrust_key_id(&key.public))
            })
            .await
            .cloned()
    }

    /// Answer a token request. Credentials are never logged.
    pub async fn issue(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        addr: Option<IpAddr>,
    ) -> Response {
        let mut user = String::new();
        if let Some(v) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            let Some(b64) = v
                .strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
            else {
                return basic_challenge();
            };
            let Some((u, p)) = STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .and_then(|s| {
                    s.split_once(':')
                        .map(|(u, p)| (u.to_string(), zeroize::Zeroizing::new(p.to_string())))
                })
            else {
                return basic_challenge();
            };
            if let Err(refused) = self.login(&u, p, addr).await {
                return refused;
            }
            user = u;
        }
        let mut service = String::new();
        let mut scopes: Vec<String> = Vec::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned() {
            match k.as_str() {
                "service" => service = v,
                "scope" => {
                    scopes.extend(v.split(' ').filter(|s| !s.is_empty()).map(str::to_string))
                }
                _ => {}
            }
        }
        if service != self.service {
            return ApiError::new(WireCode::InvalidParameters, None).into_response();
        }
        let mut access = Vec::new();
        for s in &scopes {
            let Some((typ, name, actions)) = parse_scope(s) else {
                return ApiError::new(WireCode::InvalidParameters, None).into_response();
            };
            let granted = match typ.as_str() {
                "repository" => self.allowed(&user, &name, &actions),
                "registry" if name == "catalog" && self.cfg.admins.contains(&user) => {
                    actions.clone()
                }
                _ => vec![],
            };
            if !granted.is_empty() {
                access.push(json!({"type": typ, "name": name, "actions": granted}));
            }
        }
        match self.sign(&user, access).await {
            Ok(token) => {
                let now = time::OffsetDateTime::now_utc();
                let body = json!({
                    "token": token,
                    "access_token": token,
                    "expires_in": self.cfg.ttl_seconds,
                    "issued_at": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                });
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
                    .into_response()
            }
            Err(e) => {
                tracing::error!(error = %e, "token signing failed");
                ApiError::new(WireCode::Unknown, None).into_response()
            }
        }
    }

    async fn sign(
        &self,
        user: &str,
        access: Vec<serde_json::Value>,
    ) -> Result<String, IssuerError> {
        let kid = self.kid().await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut jti = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut jti)
            .map_err(|_| IssuerError::Random)?;
        let header = json!({"typ": "JWT", "alg": "ES256", "kid": kid});
        let claims = json!({
            "iss": self.issuer, "sub": user, "aud": self.service,
            "exp": now + self.cfg.ttl_seconds, "nbf": now - 1, "iat": now,
            "jti": hex::encode(jti), "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .signer
            .sign(&self.cfg.key_id, &self.cfg.key_id, signing_input.as_bytes())
            .await?
            .ok_or_else(|| self.missing_key("Sign"))?;
        if sig.method != "ecdsa" || sig.sig.len() != 64 {
            return Err(self
                .signer
                .refused("Sign", "the token key must be ECDSA P-256", sig.method)
                .into());
        }
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(&sig.sig)
        ))
    }
}

fn basic_challenge() -> Response {
    let mut r = super::unauthorized(None, None);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"trustbridge\""),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_with_ports_in_the_name() {
        assert_eq!(
            parse_scope("repository:registry.example:5000/app:push,pull"),
            Some((
                "repository".into(),
                "registry.example:5000/app".into(),
                vec!["push".into(), "pull".into()]
            ))
        );
        assert_eq!(
            parse_scope("registry:catalog:*").unwrap().2,
            vec!["*".to_string()]
        );
        assert!(parse_scope("nonsense").is_none());
    }

    #[test]
    fn attempts_count_before_the_check_and_per_user_and_address() {
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let mut l = Limiter::default();
        // Five attempts in flight for bob: the sixth is refused before any of them finished.
        for _ in 0..MAX_FAILURES_PER_USER {
            assert_eq!(l.begin("bob", Some(a)), Ok(()));
        }
        assert_eq!(l.begin("bob", Some(b)), Err(Limited::Failures));
        // One succeeded: its attempt is given back.
        l.undo("bob", Some(a));
        assert_eq!(l.begin("bob", Some(b)), Ok(()));
        // Spraying many names from one address hits the address's limit.
        let mut refused = 0;
        for n in 0..MAX_FAILURES_PER_ADDRESS + 5 {
            if l.begin(&format!("user{n}"), Some(a)).is_err() {
                refused += 1;
            }
        }
        assert_eq!(refused, 5 + MAX_FAILURES_PER_USER - 1);
        // Another address is not held back by it.
        assert_eq!(l.begin("carol", Some(b)), Ok(()));
    }

    #[test]
    fn costs_of_htpasswd_hashes() {
        assert_eq!(bcrypt_cost("$2y$10$abcdefghijklmnopqrstuu"), Some(10));
        assert_eq!(bcrypt_cost("$2b$04$x"), Some(4));
        assert_eq!(bcrypt_cost("plain"), None);
    }
}
