//! The HTTP side of the Notary v1 protocol, as the notary client speaks it (reference §8.1):
//! metadata at `<server>/v2/<gun>/_trust/tuf/<name>.json`, the multipart update whose parts are
//! named by their *filename*, `{timestamp,snapshot}.key`, the GUN delete, and registry token
//! auth (a 401 challenge → the realm with `service`/`scope` and `NOTARY_AUTH` credentials).
//!
//! Only 200 counts as success (notary treats other 2xx as "server unavailable"), and bodies are
//! read at most up to the caller's size limit, so a hostile server cannot exhaust memory.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{Method, StatusCode};

use crate::error::{Error, Result};

/// Notary's download limits: 100 MiB for root and unknown sizes, 1 MiB for the timestamp.
pub const MAX_DOWNLOAD: u64 = 100 << 20;
pub const MAX_TIMESTAMP: u64 = 1 << 20;

/// One notary server.
pub struct Remote {
    base: String,
    http: Client,
    /// `NOTARY_AUTH`: base64 of `user:password`, sent to the token realm.
    basic: Option<String>,
    /// Where `basic` came from, named when the server refuses it.
    auth_var: &'static str,
    /// The last Bearer token obtained; a 401 for another scope fetches a new one.
    token: Mutex<Option<String>>,
}

/// How to reach a server over TLS: the CA bundle to trust (else the system's roots) and a
/// client certificate for servers that require one (notary's `remote_server.tls_client_*`).
#[derive(Clone, Debug, Default)]
pub struct Tls {
    pub ca: Option<std::path::PathBuf>,
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Whether requests are traced to stderr (`-D`).
static DEBUG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_debug(on: bool) {
    DEBUG.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn debug(line: impl FnOnce() -> String) {
    if DEBUG.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("debug: {}", line());
    }
}

/// A TLS client config trusting only `ca` (a PEM bundle), with ring.
fn tls_config(
    ca: &Path,
    client: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject as _;
    let pem = std::fs::read(ca).map_err(|e| Error::io(ca, e))?;
    let mut roots = rustls::RootCertStore::empty();
    let ders = trustbridge_tuf::x509::certificate_ders(&pem)
        .map_err(|e| Error::Usage(format!("--tlscacert {}: {e}", ca.display())))?;
    for der in ders {
        roots
            .add(der.into())
            .map_err(|e| Error::Usage(format!("--tlscacert {}: {e}", ca.display())))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Usage(e.to_string()))?
    .with_root_certificates(roots);
    let mut cfg = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let bad = |p: &Path, e: String| {
                Error::Usage(format!("TLS client certificate {}: {e}", p.display()))
            };
            let chain = rustls_pki_types::CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| bad(cert, e.to_string()))?;
            let key_der = rustls_pki_types::PrivateKeyDer::from_pem_file(key)
                .map_err(|e| bad(key, e.to_string()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| bad(cert, e.to_string()))?
        }
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// `Bearer realm="..",service="..",scope=".."` → its parameters.
pub(crate) fn parse_challenge(header: &str) -> Option<HashMap<String, String>> {
    let rest = header.trim().strip_prefix("Bearer ")?;
    let mut out = HashMap::new();
    let mut s = rest;
    while !s.is_empty() {
        let (k, after) = s.split_once('=')?;
        let k = k.trim().trim_start_matches(',').trim().to_string();
        let (v, after) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        out.insert(k, v);
        s = after.trim_start_matches(',').trim();
    }
    Some(out)
}

/// The first error of notary's envelope `{"errors":[{"code","message","detail"}]}`.
fn envelope(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let e = &v["errors"][0];
    let code = e["code"].as_str().unwrap_or("").to_string();
    let mut message = e["message"].as_str().unwrap_or("").to_string();
    if let Some(detail) = e.get("detail").filter(|d| !d.is_null()) {
        message.push_str(&format!(" ({detail})"));
    }
    if code.is_empty() && message.is_empty() {
        message = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    }
    (code, message)
}

impl Remote {
    /// `server` is `https://host:port`; `ca` the PEM bundle to trust (else the system roots).
    pub fn new(server: &str, ca: Option<&Path>) -> Result<Remote> {
        Self::with_tls(
            server,
            &Tls {
                ca: ca.map(Path::to_path_buf),
                client_cert: None,
            },
        )
    }

    pub fn with_tls(server: &str, tls: &Tls) -> Result<Remote> {
        let mut b = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("trustbridge/", env!("CARGO_PKG_VERSION")));
        match (&tls.ca, &tls.client_cert) {
            (Some(ca), client) => b = b.tls_backend_preconfigured(tls_config(ca, client.as_ref())?),
            (None, Some(_)) => {
                return Err(Error::Usage(
                    "a TLS client certificate needs the server's CA too (--tlscacert or remote_server.root_ca)".into(),
                ));
            }
            (None, None) => {}
        }
        let http = b
            .build()
            .map_err(|e| Error::Usage(format!("HTTP client: {e}")))?;
        Ok(Remote {
            base: server.trim_end_matches('/').to_string(),
            http,
            basic: std::env::var("NOTARY_AUTH").ok().filter(|s| !s.is_empty()),
            auth_var: "NOTARY_AUTH",
            token: Mutex::new(None),
        })
    }

    /// Take this server's credentials from `var` instead of `NOTARY_AUTH` when it is set
    /// (`import`: the source server's own login, `NOTARY_AUTH_FROM`). Refusals name `var`.
    pub fn with_auth_from(mut self, var: &'static str) -> Self {
        if let Some(b) = std::env::var(var).ok().filter(|s| !s.is_empty()) {
            self.basic = Some(b);
        }
        self.auth_var = var;
        self
    }

    pub fn server(&self) -> &str {
        &self.base
    }

    fn transport(&self, e: reqwest::Error) -> Error {
        let mut chain = String::new();
        let mut src: Option<&dyn std::error::Error> = Some(&e);
        let mut tls = false;
        while let Some(s) = src {
            if s.downcast_ref::<rustls::Error>().is_some() {
                tls = true;
            }
            let text = s.to_string();
            if text.contains("certificate") || text.contains("InvalidCertificate") {
                tls = true;
            }
            if !chain.contains(&text) {
                if !chain.is_empty() {
                    chain.push_str(": ");
                }
                chain.push_str(&text);
            }
            src = s.source();
        }
        if tls {
            Error::Tls {
                server: self.base.clone(),
                reason: chain,
            }
        } else {
            Error::Unreachable {
                server: self.base.clone(),
                reason: chain,
            }
        }
    }

    /// Send, answering a Bearer challenge once with a token from its realm.
    fn send(&self, make: &dyn Fn() -> RequestBuilder) -> Result<Response> {
        let cached: Option<String> = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut req = make();
        if let Some(t) = &cached {
            req = req.bearer_auth(t);
        }
        let resp = req.send().map_err(|e| self.transport(e))?;
        debug(|| format!("{} -> {}", resp.url(), resp.status()));
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let Some(challenge) = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .and_then(parse_challenge)
        else {
            return Ok(resp);
        };
        let scope = challenge.get("scope").cloned().unwrap_or_default();
        debug(|| format!("token challenge: {challenge:?}"));
        let token = self.fetch_token(&challenge)?;
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        let resp = make()
            .bearer_auth(&token)
            .send()
            .map_err(|e| self.transport(e))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(Error::Unauthorized {
                server: self.base.clone(),
                scope: format!(" for {scope}"),
                var: self.auth_var,
            });
        }
        Ok(resp)
    }

    fn fetch_token(&self, challenge: &HashMap<String, String>) -> Result<String> {
        let realm = challenge.get("realm").cloned().unwrap_or_default();
        let mut query = Vec::new();
        for k in ["service", "scope"] {
            if let Some(v) = challenge.get(k) {
                query.push((k, v.as_str()));
            }
        }
        let url = reqwest::Url::parse_with_params(&realm, &query)
            .map_err(|e| Error::Usage(format!("token realm {realm:?}: {e}")))?;
        let mut req = self.http.get(url);
        if let Some(b) = &self.basic {
            let plain = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|_| {
                    Error::Usage(format!("{} is not base64 of user:password", self.auth_var))
                })?;
            let plain = String::from_utf8_lossy(&plain).into_owned();
            let (u, p) = plain.split_once(':').unwrap_or((&plain, ""));
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().map_err(|e| self.transport(e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(Error::Unauthorized {
                server: realm,
                scope: String::new(),
                var: self.auth_var,
            });
        }
        let body = self.read_limited(resp, 1 << 20)?;
        if status != StatusCode::OK {
            let (code, message) = envelope(&body);
            return Err(Error::Server {
                server: realm,
                what: "the token request".into(),
                status: status.as_u16(),
                code,
                message,
            });
        }
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| Error::Usage(format!("token realm {realm} returned no token")))
    }

    fn url_for(&self, gun: &str, name: &str) -> String {
        format!("{}/v2/{gun}/_trust/tuf/{name}", self.base)
    }

    fn fail(&self, what: &str, status: StatusCode, body: &[u8]) -> Error {
        let (code, message) = envelope(body);
        Error::Server {
            server: self.base.clone(),
            what: what.into(),
            status: status.as_u16(),
            code,
            message,
        }
    }

    /// GET a metadata file (`root.json`, `3.root.json`, `targets.<sha>.json`...). 404 is None.
    pub fn get_meta(&self, gun: &str, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        self.get_path(&self.url_for(gun, name), name, limit)
    }

    /// GET any path of the server (trustbridge's own `/_trustbridge/v1/...` included).
    pub fn get_path(&self, url: &str, what: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let resp = self.send(&|| self.http.get(url))?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if resp.content_length().is_some_and(|l| l > limit) {
            return Err(Error::TooLarge {
                server: self.base.clone(),
                what: what.into(),
                limit,
            });
        }
        let body = self.read_limited(resp, limit)?;
        if status != StatusCode::OK {
            return Err(self.fail(&format!("GET {what}"), status, &body));
        }
        if body.len() as u64 > limit {
            return Err(Error::TooLarge {
                server: self.base.clone(),
                what: what.into(),
                limit,
            });
        }
        Ok(Some(body))
    }

    pub fn get(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        self.get_path(&format!("{}{path}", self.base), path, limit)
    }

    /// The public key the server holds for `role` (`GET`), or a new one (`POST`, a rotation).
    pub fn server_key(
        &self,
        gun: &str,
        role: &str,
        rotate: bool,
    ) -> Result<trustbridge_tuf::PublicKey> {
        let url = self.url_for(gun, &format!("{role}.key"));
        let method = if rotate { Method::POST } else { Method::GET };
        let resp = self.send(&|| self.http.request(method.clone(), &url))?;
        let status = resp.status();
        let body = self.read_limited(resp, 1 << 20)?;
        if status != StatusCode::OK {
            return Err(self.fail(&format!("{method} {role}.key"), status, &body));
        }
        serde_json::from_slice(&body)
            .map_err(|e| Error::Usage(format!("{} sent a malformed {role}.key: {e}", self.base)))
    }

    /// POST the multipart update: one part per role, named by its filename (reference §0.9).
    pub fn publish(&self, gun: &str, parts: &[(String, Vec<u8>)]) -> Result<()> {
        let url = self.url_for(gun, "");
        let resp = self.send(&|| {
            let mut form = reqwest::blocking::multipart::Form::new();
            for (role, data) in parts {
                let part = reqwest::blocking::multipart::Part::bytes(data.clone())
                    .file_name(role.clone())
                    .mime_str("application/octet-stream")
                    .expect("static mime");
                form = form.part("files", part);
            }
            self.http.post(&url).multipart(form)
        })?;
        let status = resp.status();
        let body = self.read_limited(resp, 1 << 20)?;
        if status != StatusCode::OK {
            return Err(self.fail("the update", status, &body));
        }
        Ok(())
    }

    /// `DELETE /v2/<gun>/_trust/tuf/`: every version of the repository on the server.
    pub fn delete(&self, gun: &str) -> Result<()> {
        let url = self.url_for(gun, "");
        let resp = self.send(&|| self.http.delete(&url))?;
        let status = resp.status();
        let body = self.read_limited(resp, 1 << 20)?;
        if status != StatusCode::OK {
            return Err(self.fail("the delete", status, &body));
        }
        Ok(())
    }

    /// POST a JSON body to a trustbridge path; returns the JSON answer.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let text = serde_json::to_vec(body).expect("JSON");
        let resp = self.send(&|| {
            self.http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(text.clone())
        })?;
        let status = resp.status();
        let body = self.read_limited(resp, 16 << 20)?;
        if status != StatusCode::OK {
            return Err(self.fail(&format!("POST {path}"), status, &body));
        }
        Ok(serde_json::from_slice(&body).unwrap_or_default())
    }

    /// DELETE a trustbridge path; returns the JSON answer.
    pub fn delete_json(&self, path: &str) -> Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let resp = self.send(&|| self.http.delete(&url))?;
        let status = resp.status();
        let body = self.read_limited(resp, 1 << 20)?;
        if status != StatusCode::OK {
            return Err(self.fail(&format!("DELETE {path}"), status, &body));
        }
        Ok(serde_json::from_slice(&body).unwrap_or_default())
    }
}

impl Remote {
    /// Read at most `limit + 1` bytes (one more than allowed shows the body was too long); a
    /// connection cut mid-body is reported, not taken for a short file.
    fn read_limited(&self, resp: Response, limit: u64) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        resp.take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::Unreachable {
                server: self.base.clone(),
                reason: format!("reading the response: {e}"),
            })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_challenge;

    #[test]
    fn challenge_with_port_in_scope() {
        let c = parse_challenge(
            r#"Bearer realm="https://a:1/token",service="svc",scope="repository:127.0.0.1:5000/x:pull,push""#,
        )
        .unwrap();
        assert_eq!(c["realm"], "https://a:1/token");
        assert_eq!(c["service"], "svc");
        assert_eq!(c["scope"], "repository:127.0.0.1:5000/x:pull,push");
    }
}
