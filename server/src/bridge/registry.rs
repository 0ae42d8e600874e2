//! Writing Cosign's legacy `.sig` layout with oci-client (cosign-bridge.md §1): the tag
//! `sha256-<hex>.sig` in the image's repository holds an OCI manifest whose layers are
//! simple-signing payloads, each with its signature in an annotation. Existing layers (other
//! signers) are kept; our own payload is never added twice.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::{Value, json};

use super::payload::{PAYLOAD_MEDIA_TYPE, SIGNATURE_ANNOTATION};

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";

fn sha256(data: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
    )
}

/// One registry's client.
pub struct Registry {
    client: Client,
    auth: RegistryAuth,
    /// For the one call oci-client lacks: deleting a manifest.
    http: reqwest::Client,
    scheme: &'static str,
}

impl Registry {
    /// `ca`: a PEM bundle to trust instead of the system roots (a private registry's CA).
    pub fn new(plain_http: bool, auth: RegistryAuth, ca: Option<Vec<u8>>) -> Result<Self, String> {
        let mut http = reqwest::Client::builder();
        let mut only = Vec::new();
        if let Some(pem) = &ca {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("registry CA bundle: {e}"))?;
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
            ..Default::default()
        });
        Ok(Registry {
            client,
            auth,
            http: http
                .build()
                .map_err(|e| format!("registry HTTP client: {e}"))?,
            scheme: if plain_http { "http" } else { "https" },
        })
    }

    /// The `.sig` manifest's layers and digest, if it exists.
    async fn current(&self, reference: &Reference) -> Result<Option<(Vec<Value>, String)>, String> {
        match self
            .client
            .pull_manifest_raw(reference, &self.auth, &[MANIFEST_TYPE])
            .await
        {
            Ok((bytes, digest)) => {
                let m: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("existing .sig manifest: {e}"))?;
                Ok(Some((
                    m["layers"].as_array().cloned().unwrap_or_default(),
                    digest,
                )))
            }
            Err(oci_client::errors::OciDistributionError::ImageManifestNotFoundError(_)) => {
                Ok(None)
            }
            // distribution answers a missing tag with the OCI error "manifest unknown".
            Err(e)
                if {
                    let t = e.to_string().to_lowercase();
                    t.contains("manifest unknown") || t.contains("manifest_unknown")
                } =>
            {
                Ok(None)
            }
            Err(e) => Err(format!("reading the .sig manifest: {e}")),
        }
    }

    /// Remove our layer (the one holding `payload`) from the `.sig` manifest; the manifest goes
    /// when no layers remain. Other signers' layers stay. Returns whether anything changed.
    pub async fn remove_signature(
        &self,
        registry: &str,
        repo: &str,
        digest_hex: &str,
        payload: &[u8],
    ) -> Result<bool, String> {
        let reference: Reference = format!("{registry}/{repo}:sha256-{digest_hex}.sig")
            .parse()
            .map_err(|e| format!("reference: {e}"))?;
        self.client
            .auth(&reference, &self.auth, RegistryOperation::Push)
            .await
            .map_err(|e| format!("registry auth: {e}"))?;
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
            let mut req = self.http.delete(&url);
            if let RegistryAuth::Basic(u, p) = &self.auth {
                req = req.basic_auth(u, Some(p));
            }
            let resp = req
                .send()
                .await
                .map_err(|e| format!("deleting the .sig manifest: {e}"))?;
            if !resp.status().is_success() && resp.status() != reqwest::StatusCode::NOT_FOUND {
                return Err(format!(
                    "deleting the .sig manifest: HTTP {}",
                    resp.status()
                ));
            }
            return Ok(true);
        }
        self.put_manifest(&reference, kept).await?;
        Ok(true)
    }

    async fn put_manifest(&self, reference: &Reference, layers: Vec<Value>) -> Result<(), String> {
        let config = b"{}".to_vec();
        let config_digest = sha256(&config);
        self.client
            .push_blob(reference, config.clone(), &config_digest)
            .await
            .map_err(|e| format!("pushing the config: {e}"))?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len()},
            "layers": layers,
        });
        self.client
            .push_manifest_raw(
                reference,
                serde_json::to_vec(&manifest).map_err(|e| e.to_string())?,
                http::HeaderValue::from_static(MANIFEST_TYPE),
            )
            .await
            .map_err(|e| format!("pushing the .sig manifest: {e}"))?;
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
    ) -> Result<bool, String> {
        let reference: Reference = format!("{registry}/{repo}:sha256-{digest_hex}.sig")
            .parse()
            .map_err(|e| format!("reference: {e}"))?;
        self.client
            .auth(&reference, &self.auth, RegistryOperation::Push)
            .await
            .map_err(|e| format!("registry auth: {e}"))?;
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
            .map_err(|e| format!("pushing the payload: {e}"))?;
        layers.push(json!({
            "mediaType": PAYLOAD_MEDIA_TYPE,
            "digest": payload_digest,
            "size": payload.len(),
            "annotations": {SIGNATURE_ANNOTATION: signature_b64},
        }));
        self.put_manifest(&reference, layers).await?;
        Ok(true)
    }
}
