//! Writing Cosign's legacy `.sig` layout with oci-client (cosign-bridge.md §1): the tag
//! `sha256-<hex>.sig` in the image's repository holds an OCI manifest whose layers are
//! simple-signing payloads, each with its signature in an annotation. Existing layers (other
//! signers) are kept; our own payload is never added twice.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::{Value, json};

use trustbridge_cosign::media::{OCI_CONFIG, OCI_MANIFEST, SIGNATURE_ANNOTATION, SIMPLE_SIGNING};
use trustbridge_cosign::names::sig_tag;

use trustbridge_cosign::sha256;

use crate::signer_link::{SignerError, SignerErrorKind};

/// The most the bridge reads of one registry answer (distribution caps manifests at 4 MiB).
pub const MAX_BODY: usize = 4 << 20;
/// How long one request may take to connect, and in all.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether trying a registry call again can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryErrorKind {
    /// The GUN's registry is not allowed by the config: fixed by the admin, not by time.
    NotConfigured,
    /// The registry said no for good (400, 401, 403, 404 on the repository, 405): retrying
    /// without a config change gives the same answer.
    Refused,
    /// Anything that may pass: a 5xx or 429, a timeout, a refused connection, a cut body.
    Transient,
}

/// A registry call that failed: its kind, the registry's own message, and the cause where
/// one was kept (oci-client's error, the signer's).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RegistryError {
    pub kind: RegistryErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl RegistryError {
    pub fn transient(message: impl Into<String>) -> Self {
        RegistryError {
            kind: RegistryErrorKind::Transient,
            message: message.into(),
            source: None,
        }
    }

    /// A transient failure (retried later) with its cause kept: `what` was being done.
    pub fn failed(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        let source = source.into();
        RegistryError {
            kind: RegistryErrorKind::Transient,
            message: format!("{}: {source}", what.into()),
            source: Some(source),
        }
    }

    pub fn not_configured(message: impl Into<String>) -> Self {
        RegistryError {
            kind: RegistryErrorKind::NotConfigured,
            message: message.into(),
            source: None,
        }
    }

    /// An HTTP answer that is not what was asked for, classified by its status.
    pub fn http(status: reqwest::StatusCode, message: impl Into<String>) -> Self {
        let refused = matches!(status.as_u16(), 400 | 401 | 403 | 404 | 405);
        RegistryError {
            kind: if refused {
                RegistryErrorKind::Refused
            } else {
                RegistryErrorKind::Transient
            },
            message: message.into(),
            source: None,
        }
    }

    /// As [`Self::http`], naming what the registry said (the messages of its OCI error
    /// envelope, else the start of its body).
    pub fn answer(status: reqwest::StatusCode, what: &str, body: &[u8]) -> Self {
        let said = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| {
                let msgs: Vec<String> = v["errors"]
                    .as_array()?
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["code"].as_str().unwrap_or(""),
                            e["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                Some(msgs.join("; "))
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        Self::http(status, format!("{what}: HTTP {status}: {}", said.trim()))
    }

    /// An oci-client failure, classified by what the registry answered.
    pub fn oci(what: &str, e: oci_client::errors::OciDistributionError) -> Self {
        use oci_client::errors::OciDistributionError as E;
        let message = format!("{what}: {e}");
        let refused = match &e {
            E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => true,
            E::ServerError { code, .. } => matches!(code, 400 | 401 | 403 | 404 | 405),
            E::RegistryError { envelope, .. } => envelope.errors.iter().any(|x| {
                use oci_client::errors::OciErrorCode as C;
                matches!(
                    x.code,
                    C::Denied | C::Unauthorized | C::NameInvalid | C::NameUnknown | C::Unsupported
                )
            }),
            _ => false,
        };
        RegistryError {
            kind: if refused {
                RegistryErrorKind::Refused
            } else {
                RegistryErrorKind::Transient
            },
            message,
            source: Some(Box::new(e)),
        }
    }

    /// Whether the job should be tried again later.
    pub fn retryable(&self) -> bool {
        self.kind == RegistryErrorKind::Transient
    }
}

/// A job needs the signer too (its Sign RPC): a signer that is down is retried like a
/// registry that is, a missing bridge key waits for the admin as a missing registry does.
impl From<SignerError> for RegistryError {
    fn from(e: SignerError) -> Self {
        let kind = match e.kind {
            SignerErrorKind::Unavailable => RegistryErrorKind::Transient,
            SignerErrorKind::NoKey | SignerErrorKind::Config => RegistryErrorKind::NotConfigured,
            SignerErrorKind::Refused => RegistryErrorKind::Refused,
        };
        RegistryError {
            kind,
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

/// A response body, at most [`MAX_BODY`] bytes (more is an error, read no further).
pub(super) async fn read_capped(
    mut resp: reqwest::Response,
    url: &str,
) -> Result<Vec<u8>, RegistryError> {
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(RegistryError::transient(format!(
            "{url}: the answer is larger than {MAX_BODY} bytes"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| RegistryError::transient(format!("{url}: {e}")))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(RegistryError::transient(format!(
                "{url}: the answer is larger than {MAX_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// One registry's client.
pub struct Registry {
    pub(super) client: Client,
    pub(super) auth: RegistryAuth,
    /// For the calls oci-client lacks: deleting a manifest, the referrers API and manifest
    /// PUTs whose response headers matter (`OCI-Subject`).
    http: reqwest::Client,
    pub(super) scheme: &'static str,
}

impl Registry {
    /// `ca`: a PEM bundle to trust instead of the system roots (a private registry's CA).
    pub fn new(
        plain_http: bool,
        auth: RegistryAuth,
        ca: Option<Vec<u8>>,
    ) -> Result<Self, RegistryError> {
        let mut http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT);
        let mut only = Vec::new();
        if let Some(pem) = &ca {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| RegistryError::failed("registry CA bundle", e))?;
            http = http.tls_certs_only(certs);
            only.push(oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data: pem.clone(),
            });
        }
        let client = Client::new(ClientConfig {
            protocol: if plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            tls_certs_only: only,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(REQUEST_TIMEOUT),
            ..Default::default()
        });
        Ok(Registry {
            client,
            auth,
            http: http
                .build()
                .map_err(|e| RegistryError::failed("registry HTTP client", e))?,
            scheme: if plain_http { "http" } else { "https" },
        })
    }

    /// One request outside oci-client, authenticated as the registry asks: Basic credentials
    /// up front when configured, and on a `401` with a `Bearer` challenge (Docker Hub, Harbor,
    /// GHCR: the distribution token protocol) a token fetched from the realm for the
    /// challenge's service and scope, with those credentials, then the request once more.
    pub(super) async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, RegistryError> {
        let request = |token: Option<&str>| {
            let mut r = self.http.request(method.clone(), url);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            if let Some(b) = &body {
                r = r.body(b.clone());
            }
            match (token, &self.auth) {
                (Some(t), _) => r.bearer_auth(t),
                (None, RegistryAuth::Basic(u, p)) => r.basic_auth(u, Some(p)),
                _ => r,
            }
        };
        let resp = request(None)
            .send()
            .await
            .map_err(|e| RegistryError::failed(format!("{method} {url}"), e))?;
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let Some(challenge) = resp
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string)
        else {
            return Ok(resp);
        };
        let token = self.token(&challenge).await?;
        request(Some(&token))
            .send()
            .await
            .map_err(|e| RegistryError::transient(format!("{method} {url}: {e}")))
    }

    /// A bearer token for `challenge` (`realm="…",service="…",scope="…"`).
    async fn token(&self, challenge: &str) -> Result<String, RegistryError> {
        let url = token_url(challenge)?;
        let mut r = self.http.get(url.clone());
        if let RegistryAuth::Basic(u, p) = &self.auth {
            r = r.basic_auth(u, Some(p));
        }
        let resp = r
            .send()
            .await
            .map_err(|e| RegistryError::failed(format!("registry token {url}"), e))?;
        let status = resp.status();
        let body = read_capped(resp, url.as_str()).await?;
        if !status.is_success() {
            return Err(RegistryError::http(
                status,
                format!("registry token {url}: HTTP {status}"),
            ));
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| RegistryError::failed(format!("registry token {url}"), e))?;
        v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                RegistryError::transient(format!("registry token {url}: no token in the answer"))
            })
    }

    /// `reference` parsed, with oci-client logged in to push there.
    pub(super) async fn push_ref(&self, reference: &str) -> Result<Reference, RegistryError> {
        let reference: Reference = reference
            .parse()
            .map_err(|e| RegistryError::failed("reference", e))?;
        self.client
            .auth(&reference, &self.auth, RegistryOperation::Push)
            .await
            .map_err(|e| RegistryError::oci("registry auth", e))?;
        Ok(reference)
    }

    /// The `.sig` manifest's layers and digest, if it exists. Read with our own GET so the
    /// body is capped ([`MAX_BODY`]): a registry cannot make us buffer without end.
    pub(super) async fn current(
        &self,
        reference: &Reference,
    ) -> Result<Option<(Vec<Value>, String)>, RegistryError> {
        let tag = reference.tag().unwrap_or_default();
        let url = format!(
            "{}://{}/v2/{}/manifests/{tag}",
            self.scheme,
            reference.registry(),
            reference.repository()
        );
        let resp = self
            .send(
                reqwest::Method::GET,
                &url,
                &[("Accept", OCI_MANIFEST)],
                None,
            )
            .await?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            // distribution answers a missing tag (and a repository with no tags yet) this way.
            return Ok(None);
        }
        let body = read_capped(resp, &url).await?;
        if !status.is_success() {
            return Err(RegistryError::answer(
                status,
                &format!("reading the .sig manifest {url}"),
                &body,
            ));
        }
        let m: Value = serde_json::from_slice(&body)
            .map_err(|e| RegistryError::transient(format!("existing .sig manifest: {e}")))?;
        Ok(Some((
            m["layers"].as_array().cloned().unwrap_or_default(),
            sha256(&body),
        )))
    }

    /// Remove our layer (the one holding `payload`) from the `.sig` manifest; the manifest goes
    /// when no layers remain. Other signers' layers stay. Returns whether anything changed.
    pub async fn remove_signature(
        &self,
        registry: &str,
        repo: &str,
        digest_hex: &str,
        payload: &[u8],
    ) -> Result<bool, RegistryError> {
        let reference = self
            .push_ref(&format!("{registry}/{repo}:{}", sig_tag(digest_hex)))
            .await?;
        let Some((layers, manifest_digest)) = self.current(&reference).await? else {
            return Ok(false);
        };
        let ours = sha256(payload);
        let kept: Vec<Value> = layers
            .iter()
            .filter(|l| l["digest"] != ours.as_str())
            .cloned()
            .collect();
        if kept.len() == layers.len() {
            return Ok(false);
        }
        if kept.is_empty() {
            let url = format!(
                "{}://{registry}/v2/{repo}/manifests/{manifest_digest}",
                self.scheme
            );
            let resp = self
                .send(reqwest::Method::DELETE, &url, &[], None)
                .await
                .map_err(|e| RegistryError::failed("deleting the .sig manifest", e))?;
            if !resp.status().is_success() && resp.status() != reqwest::StatusCode::NOT_FOUND {
                return Err(RegistryError::http(
                    resp.status(),
                    format!("deleting the .sig manifest: HTTP {}", resp.status()),
                ));
            }
            return Ok(true);
        }
        self.put_manifest(&reference, kept).await?;
        Ok(true)
    }

    async fn put_manifest(
        &self,
        reference: &Reference,
        layers: Vec<Value>,
    ) -> Result<(), RegistryError> {
        let config = b"{}".to_vec();
        let config_digest = sha256(&config);
        self.client
            .push_blob(reference, config.clone(), &config_digest)
            .await
            .map_err(|e| RegistryError::oci("pushing the config", e))?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": layers,
        });
        self.client
            .push_manifest_raw(
                reference,
                serde_json::to_vec(&manifest)
                    .map_err(|e| RegistryError::failed("the .sig manifest", e))?,
                http::HeaderValue::from_static(OCI_MANIFEST),
            )
            .await
            .map_err(|e| RegistryError::oci("pushing the .sig manifest", e))?;
        Ok(())
    }

    /// Add `payload` signed by `signature_b64` to `repo`'s `.sig` manifest for `digest_hex`,
    /// unless our payload is already there. Returns whether a layer was added.
    pub async fn add_signature(
        &self,
        registry: &str,
        repo: &str,
        digest_hex: &str,
        payload: &[u8],
        signature_b64: &str,
    ) -> Result<bool, RegistryError> {
        let reference = self
            .push_ref(&format!("{registry}/{repo}:{}", sig_tag(digest_hex)))
            .await?;
        let mut layers = self
            .current(&reference)
            .await?
            .map(|(l, _)| l)
            .unwrap_or_default();
        let payload_digest = sha256(payload);
        if layers
            .iter()
            .any(|l| l["digest"] == payload_digest.as_str())
        {
            return Ok(false);
        }
        self.client
            .push_blob(&reference, payload.to_vec(), &payload_digest)
            .await
            .map_err(|e| RegistryError::oci("pushing the payload", e))?;
        layers.push(json!({
            "mediaType": SIMPLE_SIGNING,
            "digest": payload_digest,
            "size": payload.len(),
            "annotations": {SIGNATURE_ANNOTATION: signature_b64},
        }));
        self.put_manifest(&reference, layers).await?;
        Ok(true)
    }
}

/// `key="value"` pairs of a `WWW-Authenticate` challenge (values may hold commas).
fn challenge_params(challenge: &str) -> Vec<(String, String)> {
    let re = regex::Regex::new(r#"([A-Za-z]+)="([^"]*)""#).expect("a valid pattern");
    re.captures_iter(challenge)
        .map(|c| (c[1].to_string(), c[2].to_string()))
        .collect()
}

/// The realm's URL with the challenge's `service` and `scope` as its query.
fn token_url(challenge: &str) -> Result<reqwest::Url, RegistryError> {
    let params = challenge_params(challenge);
    let realm = params
        .iter()
        .find(|(k, _)| k == "realm")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| {
            RegistryError::transient(format!(
                "registry token challenge without a realm: {challenge}"
            ))
        })?;
    let query: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| k == "service" || k == "scope")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    reqwest::Url::parse_with_params(realm, &query)
        .map_err(|e| RegistryError::transient(format!("registry token realm {realm:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_parsed() {
        let p = challenge_params(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:team/app:pull,push""#,
        );
        assert_eq!(p[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(p[2].1, "repository:team/app:pull,push");
        // Scopes hold spaces (several of them) and `&`: they reach the realm intact.
        let url = token_url(r#"realm="https://auth.example/token",service="reg",scope="repository:a:pull repository:b&c:push""#).unwrap();
        let q: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        assert_eq!(
            q,
            vec![
                ("service".into(), "reg".into()),
                (
                    "scope".into(),
                    "repository:a:pull repository:b&c:push".into()
                )
            ]
        );
    }
}
