//! Reading an OCI registry for `verify-both`, logged in as docker is: the `auths` entry of
//! `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`, written by `docker login`)
//! is sent as Basic credentials, and a `401` with a `Bearer` challenge (Docker Hub, Harbor,
//! GHCR: the distribution token protocol) is answered with a token from the realm.
//! Loopback registries are plain HTTP, as the bridge's default; others HTTPS, with the system
//! roots or `--registry-ca`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::error::{Error, Result};
use crate::remote::parse_challenge;

pub struct RegistryReader {
    http: reqwest::blocking::Client,
    registry: String,
    base: String,
    basic: Option<(String, String)>,
    token: RefCell<Option<String>>,
}

/// `user:password` for `registry` from docker's config file, if `docker login` stored it
/// there (credential helpers, `credsStore`, are not run).
fn docker_credentials(registry: &str) -> Option<(String, String)> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
    let text = std::fs::read(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let keys: Vec<String> = if registry == "docker.io" {
        vec!["https://index.docker.io/v1/".into(), "docker.io".into()]
    } else {
        vec![registry.into(), format!("https://{registry}")]
    };
    let auth = keys.iter().find_map(|k| v["auths"][k]["auth"].as_str())?;
    let plain = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let (u, p) = std::str::from_utf8(&plain).ok()?.split_once(':')?;
    Some((u.into(), p.into()))
}

impl RegistryReader {
    /// A reader for `registry/repository`; `ca`: PEM roots to trust instead of the system's.
    pub fn new(registry: &str, repository: &str, ca: Option<&Path>) -> Result<Self> {
        let loopback = registry.starts_with("127.")
            || registry.starts_with("localhost")
            || registry.starts_with("[::1]");
        let scheme = if loopback && ca.is_none() {
            "http"
        } else {
            "https"
        };
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        let mut b = reqwest::blocking::Client::builder();
        if let Some(p) = ca {
            let pem = std::fs::read(p).map_err(|e| Error::io(p, e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::Usage(format!("--registry-ca {}: {e}", p.display())))?;
            b = b.tls_certs_only(certs);
        }
        Ok(RegistryReader {
            http: b.build().map_err(|e| Error::Usage(e.to_string()))?,
            registry: registry.into(),
            base: format!("{scheme}://{host}/v2/{repository}"),
            basic: docker_credentials(registry),
            token: RefCell::new(None),
        })
    }

    fn request(&self, url: &str, accept: Option<&str>) -> reqwest::blocking::RequestBuilder {
        let mut r = self.http.get(url);
        if let Some(a) = accept {
            r = r.header("Accept", a);
        }
        match (&*self.token.borrow(), &self.basic) {
            (Some(t), _) => r.bearer_auth(t),
            (None, Some((u, p))) => r.basic_auth(u, Some(p)),
            _ => r,
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> Error {
        let reason = format!(
            "{e}: {}",
            std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default()
        );
        if reason.contains("certificate") || reason.contains("Tls") || reason.contains("tls") {
            Error::Usage(format!(
                "TLS to registry {} failed: {reason}; pass the CA that signed its certificate with --registry-ca",
                self.registry
            ))
        } else {
            Error::Unreachable {
                server: self.registry.clone(),
                reason,
            }
        }
    }

    /// GET `rest` under `/v2/<repository>/`: the body, `None` on 404.
    pub fn get(&self, rest: &str, accept: Option<&str>) -> Result<Option<Vec<u8>>> {
        let url = format!("{}/{rest}", self.base);
        let mut resp = self
            .request(&url, accept)
            .send()
            .map_err(|e| self.unreachable(e))?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED && self.token.borrow().is_none() {
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge);
            if let Some(c) = challenge {
                let token = self.fetch_token(&c)?;
                *self.token.borrow_mut() = Some(token);
                resp = self
                    .request(&url, accept)
                    .send()
                    .map_err(|e| self.unreachable(e))?;
            }
        }
        match resp.status() {
            s if s.is_success() => Ok(Some(
                resp.bytes().map_err(|e| self.unreachable(e))?.to_vec(),
            )),
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => {
                Err(Error::Usage(format!(
                    "registry {} refused the read ({}); log in with `docker login {}` (read from $DOCKER_CONFIG/config.json)",
                    self.registry,
                    resp.status(),
                    self.registry
                )))
            }
            s => Err(Error::Server {
                server: self.registry.clone(),
                what: format!("GET {rest}"),
                status: s.as_u16(),
                code: String::new(),
                message: resp.text().unwrap_or_default(),
            }),
        }
    }

    fn fetch_token(&self, challenge: &HashMap<String, String>) -> Result<String> {
        let realm = challenge.get("realm").ok_or_else(|| {
            Error::Usage(format!(
                "registry {}: a token challenge without a realm",
                self.registry
            ))
        })?;
        let query: Vec<(&str, &str)> = ["service", "scope"]
            .into_iter()
            .filter_map(|k| challenge.get(k).map(|v| (k, v.as_str())))
            .collect();
        let url = reqwest::Url::parse_with_params(realm, &query)
            .map_err(|e| Error::Usage(format!("registry token realm {realm:?}: {e}")))?;
        let mut r = self.http.get(url);
        if let Some((u, p)) = &self.basic {
            r = r.basic_auth(u, Some(p));
        }
        let resp = r.send().map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(Error::Usage(format!(
                "registry {} refused a token ({}); log in with `docker login {}`",
                self.registry,
                resp.status(),
                self.registry
            )));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&resp.bytes().map_err(|e| self.unreachable(e))?)
                .unwrap_or_default();
        v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "registry {}: no token in the answer",
                    self.registry
                ))
            })
    }
}
