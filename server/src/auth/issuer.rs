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

use crate::error::ApiError;
use crate::signer_link::SignerLink;
use axum::response::{IntoResponse, Response};

/// Failed logins allowed per (user, address) within [`FAILURE_WINDOW`].
const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(300);

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
    failures: Mutex<HashMap<FailureKey, (u32, Instant)>>,
}

/// Failed logins are counted per (user, client address).
type FailureKey = (String, Option<IpAddr>);

/// Parse an htpasswd file of bcrypt entries (`user:$2y$...`).
pub fn load_htpasswd(path: &std::path::Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut users = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, hash) = line
            .split_once(':')
            .ok_or_else(|| format!("{} line {}: expected user:hash", path.display(), n + 1))?;
        if !hash.starts_with("$2") {
            return Err(format!(
                "{} line {}: only bcrypt entries are accepted (htpasswd -B)",
                path.display(),
                n + 1
            ));
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
    ) -> Result<Self, String> {
        let users = load_htpasswd(&cfg.htpasswd)?;
        Ok(Issuer {
            cfg,
            users,
            service: service.into(),
            issuer: issuer.into(),
            signer,
            kid: tokio::sync::OnceCell::new(),
            failures: Mutex::new(HashMap::new()),
        })
    }

    fn limited(&self, user: &str, addr: Option<IpAddr>) -> bool {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.retain(|_, (_, t)| t.elapsed() < FAILURE_WINDOW);
        f.get(&(user.to_string(), addr))
            .is_some_and(|(n, _)| *n >= MAX_FAILURES)
    }

    fn failed(&self, user: &str, addr: Option<IpAddr>) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let e = f
            .entry((user.to_string(), addr))
            .or_insert((0, Instant::now()));
        e.0 += 1;
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

    async fn kid(&self) -> Result<String, String> {
        self.kid
            .get_or_try_init(|| async {
                let key = self
                    .signer
                    .key_info(&self.cfg.key_id)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| {
                        format!("the signer does not hold token key {}", self.cfg.key_id)
                    })?;
                Ok::<_, String>(super::jwt::libtrust_key_id(&key.public))
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
            if self.limited(&u, addr) {
                tracing::warn!(user = %u, ?addr, "token request refused: too many failed logins");
                return ApiError::new("TOOMANYREQUESTS", None).into_response();
            }
            let ok = match self.users.get(&u) {
                Some(hash) => {
                    let hash = hash.clone();
                    let pass = p.clone();
                    tokio::task::spawn_blocking(move || {
                        bcrypt::verify(pass.as_str(), &hash).unwrap_or(false)
                    })
                    .await
                    .unwrap_or(false)
                }
                None => false,
            };
            if !ok {
                self.failed(&u, addr);
                tracing::info!(user = %u, ?addr, "token request refused: wrong credentials");
                return basic_challenge();
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
            return ApiError::new("INVALID_PARAMETERS", None).into_response();
        }
        let mut access = Vec::new();
        for s in &scopes {
            let Some((typ, name, actions)) = parse_scope(s) else {
                return ApiError::new("INVALID_PARAMETERS", None).into_response();
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
                ApiError::new("UNKNOWN", None).into_response()
            }
        }
    }

    async fn sign(&self, user: &str, access: Vec<serde_json::Value>) -> Result<String, String> {
        let kid = self.kid().await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut jti = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut jti)
            .map_err(|_| "no randomness")?;
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
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the signer does not hold token key {}", self.cfg.key_id))?;
        if sig.method != "ecdsa" || sig.sig.len() != 64 {
            return Err("the token key must be ECDSA P-256".into());
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
}
