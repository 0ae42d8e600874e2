//! Registry token auth as notary-server applies it (reference §7): every route needs access
//! (§7.2); a request without a valid bearer token granting it gets 401 UNAUTHORIZED with the
//! `WWW-Authenticate: Bearer realm=..,service=..,scope=..` challenge. Plus a built-in token
//! issuer ([`issuer`]) for teams without a registry token service.

pub mod issuer;
pub mod jwt;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;

use crate::routes::{Access, Route};

/// notary-server's `auth.options` for `type: token` (reference §7.1), as configured.
#[derive(Clone, Debug)]
pub struct AuthOptions {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    pub rootcertbundle: std::path::PathBuf,
    /// notary's `autoredirect`: the realm becomes `https://<Host>/auth/token`.
    pub autoredirect: bool,
}

/// Token auth at work: [`AuthOptions`] with the root bundle read.
pub struct TokenAuth {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    pub roots: jwt::Roots,
    /// notary's `autoredirect`: the realm becomes `https://<Host>/auth/token`.
    pub autoredirect: bool,
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No token: challenge without an error.
    NoToken,
    /// Malformed or invalid token (`error="invalid_token"`).
    InvalidToken(jwt::TokenError),
    /// Valid token without the access (`error="insufficient_scope"`).
    InsufficientScope,
}

fn granted(claims: &jwt::Claims, need: &Access) -> bool {
    claims.access.iter().any(|ra| {
        ra.typ == need.typ
            && ra.name == need.name
            && ra.actions.iter().any(|a| a == need.action || (a == "*"))
    })
}

impl TokenAuth {
    /// Check the `Authorization` header against what `route` needs.
    pub fn check(&self, headers: &HeaderMap, route: &Route, now: i64) -> Result<(), Refusal> {
        let need = route.access();
        if need.is_empty() {
            return Ok(());
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(Refusal::NoToken);
        };
        let value = value.to_str().map_err(|_| {
            Refusal::InvalidToken(jwt::TokenError::Malformed("header is not text".into()))
        })?;
        let parts: Vec<&str> = value.split(' ').collect();
        let [scheme, token] = parts[..] else {
            return Err(Refusal::InvalidToken(jwt::TokenError::Malformed(
                "malformed Authorization header".into(),
            )));
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Refusal::InvalidToken(jwt::TokenError::Malformed(
                "not a bearer token".into(),
            )));
        }
        let claims = self
            .roots
            .verify(token, &self.issuer, &self.service, now)
            .map_err(Refusal::InvalidToken)?;
        if need.iter().all(|n| granted(&claims, n)) {
            Ok(())
        } else {
            Err(Refusal::InsufficientScope)
        }
    }

    /// notary's 401: the challenge header and the UNAUTHORIZED envelope listing the access.
    pub fn challenge(
        &self,
        route: &Route,
        refusal: &Refusal,
        host: Option<&str>,
    ) -> axum::response::Response {
        let need = route.access();
        let realm = match (self.autoredirect, host) {
            (true, Some(h)) => format!("https://{h}/auth/token"),
            _ => self.realm.clone(),
        };
        let mut value = format!("Bearer realm={realm:?},service={:?}", self.service);
        let mut scopes: Vec<String> = Vec::new();
        for a in &need {
            let key = format!("{}:{}", a.typ, a.name);
            match scopes
                .iter_mut()
                .find(|s| s.starts_with(&format!("{key}:")))
            {
                Some(s) => {
                    s.push(',');
                    s.push_str(a.action);
                }
                None => scopes.push(format!("{key}:{}", a.action)),
            }
        }
        if !scopes.is_empty() {
            value.push_str(&format!(",scope={:?}", scopes.join(" ")));
        }
        match refusal {
            Refusal::NoToken => {}
            Refusal::InvalidToken(_) => value.push_str(",error=\"invalid_token\""),
            Refusal::InsufficientScope => value.push_str(",error=\"insufficient_scope\""),
        }
        let detail: Vec<serde_json::Value> = need
            .iter()
            .map(|a| json!({"Type": a.typ, "Class": "", "Name": a.name, "Action": a.action}))
            .collect();
        unauthorized(Some(&value), Some(detail))
    }
}

/// A 401 UNAUTHORIZED notary envelope, with `detail` in Go's field order when given.
pub fn unauthorized(
    challenge: Option<&str>,
    detail: Option<Vec<serde_json::Value>>,
) -> axum::response::Response {
    let mut body =
        String::from(r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required""#);
    if let Some(d) = detail {
        body.push_str(",\"detail\":[");
        let items: Vec<String> = d
            .iter()
            .map(|v| {
                format!(
                    r#"{{"Type":{},"Class":{},"Name":{},"Action":{}}}"#,
                    v["Type"], v["Class"], v["Name"], v["Action"]
                )
            })
            .collect();
        body.push_str(&items.join(","));
        body.push(']');
    }
    body.push_str("}]}\n");
    let mut resp = axum::response::Response::new(axum::body::Body::from(body));
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(c) = challenge
        && let Ok(v) = HeaderValue::from_str(c)
    {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}
