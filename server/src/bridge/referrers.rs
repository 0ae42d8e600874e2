//! Attaching and removing referrers (distribution-spec 1.1, cosign-bridge.md §5): cosign v3's
//! Sigstore bundles and Notation's signatures. A referrer manifest is pushed by digest with
//! `subject` = the image.
//! Registries with the referrers API list it at `GET /v2/<repo>/referrers/<digest>` and say so
//! with an `OCI-Subject` header on the PUT. For the others (distribution 2.8 among them) the
//! writer keeps the *fallback tag* `sha256-<hex>`: an image index listing each referrer's
//! descriptor with its artifactType and annotations. Other tools' entries in that index are
//! kept; ours are recognised by our annotations (a bundle's statement digest, a Notation
//! signature's claim).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::registry::{Registry, RegistryError};
use trustbridge_cosign::bundle;
use trustbridge_cosign::media::{IMAGE_ACCEPT, OCI_INDEX, OCI_MANIFEST, STATEMENT_ANNOTATION};
use trustbridge_cosign::names::fallback_tag;

/// The referrers of one digest as the registry keeps them.
struct Listing {
    /// The registry answers the referrers API (no fallback tag to maintain).
    api: bool,
    entries: Vec<Value>,
    /// Digest of the fallback index, when it exists.
    index_digest: Option<String>,
}

/// Whether a referrer entry is our bundle with this statement.
pub(super) fn is_bundle(entry: &Value, statement_digest: &str) -> bool {
    entry["annotations"][STATEMENT_ANNOTATION] == statement_digest
}

/// One referrer to attach: an artifact manifest with one layer.
pub struct Referrer<'a> {
    pub artifact_type: &'a str,
    pub layer_media_type: &'a str,
    pub blob: &'a [u8],
    /// The image's descriptor ([`Registry::subject`]).
    pub subject: &'a Value,
    pub annotations: &'a Value,
}

impl Registry {
    fn url(&self, registry: &str, repo: &str, rest: &str) -> String {
        format!("{}://{registry}/v2/{repo}/{rest}", self.scheme)
    }

    /// GET `url` (authenticated as [`Registry::send`] does): status, media type, body.
    async fn get(
        &self,
        url: &str,
        accept: &str,
    ) -> Result<(StatusCode, Option<String>, bytes::Bytes), RegistryError> {
        let resp = self
            .send(Method::GET, url, &[("Accept", accept)], None)
            .await?;
        let status = resp.status();
        let media_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let body = super::registry::read_capped(resp, url).await?.into();
        Ok((status, media_type, body))
    }

    async fn listing(
        &self,
        registry: &str,
        repo: &str,
        digest_hex: &str,
    ) -> Result<Listing, RegistryError> {
        let api_url = self.url(registry, repo, &format!("referrers/sha256:{digest_hex}"));
        let (status, _, body) = self.get(&api_url, OCI_INDEX).await?;
        if status == StatusCode::OK {
            let v: Value = serde_json::from_slice(&body)
                .map_err(|e| RegistryError::failed("the referrers API answered no index", e))?;
            return Ok(Listing {
                api: true,
                entries: v["manifests"].as_array().cloned().unwrap_or_default(),
                index_digest: None,
            });
        }
        if status != StatusCode::NOT_FOUND {
            return Err(RegistryError::http(
                status,
                format!("GET {api_url}: HTTP {status}"),
            ));
        }
        // No referrers API: the fallback tag.
        let tag_url = self.url(
            registry,
            repo,
            &format!("manifests/{}", fallback_tag(digest_hex)),
        );
        let (status, _, body) = self.get(&tag_url, OCI_INDEX).await?;
        match status {
            StatusCode::OK => {
                let v: Value = serde_json::from_slice(&body).map_err(|e| {
                    RegistryError::failed(
                        format!("the fallback tag sha256-{digest_hex} is no index"),
                        e,
                    )
                })?;
                Ok(Listing {
                    api: false,
                    entries: v["manifests"].as_array().cloned().unwrap_or_default(),
                    index_digest: Some(bundle::sha256(&body)),
                })
            }
            StatusCode::NOT_FOUND => Ok(Listing {
                api: false,
                entries: vec![],
                index_digest: None,
            }),
            s => Err(RegistryError::http(s, format!("GET {tag_url}: HTTP {s}"))),
        }
    }

    /// The image's referrers (descriptors with `artifactType` and `annotations`), from the
    /// referrers API or the fallback index.
    pub async fn referrers(
        &self,
        registry: &str,
        repo: &str,
        digest_hex: &str,
    ) -> Result<Vec<Value>, RegistryError> {
        Ok(self.listing(registry, repo, digest_hex).await?.entries)
    }

    /// Whether a bundle with this statement is already attached to the image.
    pub async fn has_bundle(
        &self,
        registry: &str,
        repo: &str,
        digest_hex: &str,
        statement_digest: &str,
    ) -> Result<bool, RegistryError> {
        let l = self.listing(registry, repo, digest_hex).await?;
        Ok(l.entries.iter().any(|e| is_bundle(e, statement_digest)))
    }

    /// The descriptor of the signed image's manifest (`subject`): media type and size come from
    /// the registry, and the bytes must hash to the digest notary signed.
    pub async fn subject(
        &self,
        registry: &str,
        repo: &str,
        digest_hex: &str,
    ) -> Result<Value, RegistryError> {
        let url = self.url(registry, repo, &format!("manifests/sha256:{digest_hex}"));
        let (status, media_type, body) = self.get(&url, IMAGE_ACCEPT).await?;
        if status == StatusCode::NOT_FOUND {
            return Err(RegistryError::transient(format!(
                "the image sha256:{digest_hex} is not in {registry}/{repo}: a bundle needs its manifest (push the image, the job retries)"
            )));
        }
        if !status.is_success() {
            return Err(RegistryError::http(
                status,
                format!("GET {url}: HTTP {status}"),
            ));
        }
        if bundle::sha256(&body) != format!("sha256:{digest_hex}") {
            return Err(RegistryError::transient(format!(
                "{registry}/{repo} served other bytes for sha256:{digest_hex}"
            )));
        }
        let media_type = media_type
            .filter(|m| !m.is_empty() && m != "application/octet-stream")
            .or_else(|| {
                serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["mediaType"].as_str().map(str::to_string))
            })
            .unwrap_or_else(|| OCI_MANIFEST.to_string());
        Ok(
            json!({"mediaType": media_type, "digest": format!("sha256:{digest_hex}"), "size": body.len()}),
        )
    }

    /// Push a referrer of the image and list it (the fallback index when the registry has no
    /// referrers API). Blobs first, then the manifest by digest, then the index, so nothing
    /// listed is ever missing.
    pub async fn put_referrer(
        &self,
        registry: &str,
        repo: &str,
        digest_hex: &str,
        r: &Referrer<'_>,
    ) -> Result<(), RegistryError> {
        let reference = self
            .push_ref(&format!("{registry}/{repo}:{}", fallback_tag(digest_hex)))
            .await?;
        for blob in [b"{}".as_slice(), r.blob] {
            self.client
                .push_blob(&reference, blob.to_vec(), &bundle::sha256(blob))
                .await
                .map_err(|e| RegistryError::failed("pushing the referrer's blobs", e))?;
        }
        let manifest = bundle::artifact_manifest(
            r.artifact_type,
            r.layer_media_type,
            r.blob,
            r.subject,
            r.annotations,
        );
        let manifest_digest = bundle::sha256(&manifest);
        let url = self.url(registry, repo, &format!("manifests/{manifest_digest}"));
        let resp = self
            .send(
                Method::PUT,
                &url,
                &[("Content-Type", OCI_MANIFEST)],
                Some(manifest.clone()),
            )
            .await?;
        let status = resp.status();
        let api = resp.headers().contains_key("oci-subject");
        if !status.is_success() {
            let body = super::registry::read_capped(resp, &url)
                .await
                .unwrap_or_default();
            return Err(RegistryError::answer(
                status,
                "pushing the referrer manifest",
                &body,
            ));
        }
        if api {
            return Ok(());
        }
        let mut listing = self.listing(registry, repo, digest_hex).await?;
        listing
            .entries
            .retain(|e| e["digest"] != manifest_digest.as_str());
        listing.entries.push(json!({
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": manifest.len(),
            "artifactType": r.artifact_type,
            "annotations": r.annotations,
        }));
        self.put_index(registry, repo, digest_hex, listing.entries)
            .await
    }

    async fn put_index(
        &self,
        registry: &str,
        repo: &str,
        digest_hex: &str,
        entries: Vec<Value>,
    ) -> Result<(), RegistryError> {
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": entries,
        }))
        .map_err(|e| RegistryError::failed("the referrers index", e))?;
        let url = self.url(
            registry,
            repo,
            &format!("manifests/{}", fallback_tag(digest_hex)),
        );
        let resp = self
            .send(
                Method::PUT,
                &url,
                &[("Content-Type", OCI_INDEX)],
                Some(index),
            )
            .await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = super::registry::read_capped(resp, &url)
                .await
                .unwrap_or_default();
            return Err(RegistryError::answer(
                status,
                &format!("pushing the fallback index sha256-{digest_hex}"),
                &body,
            ));
        }
        Ok(())
    }

    async fn delete_manifest(
        &self,
        registry: &str,
        repo: &str,
        digest: &str,
    ) -> Result<(), RegistryError> {
        let url = self.url(registry, repo, &format!("manifests/{digest}"));
        let resp = self.send(Method::DELETE, &url, &[], None).await?;
        let status = resp.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(RegistryError::http(
                status,
                format!("DELETE {url}: HTTP {status}"),
            ))
        }
    }

    /// Remove our bundle(s) with this statement (see [`Self::remove_referrers`]).
    pub async fn remove_bundle(
        &self,
        registry: &str,
        repo: &str,
        digest_hex: &str,
        statement_digest: &str,
    ) -> Result<bool, RegistryError> {
        self.remove_referrers(registry, repo, digest_hex, |e| {
            is_bundle(e, statement_digest)
        })
        .await
    }

    /// Remove the referrers `ours` picks: from the fallback index first (the tag goes when no
    /// entries remain), then the manifests themselves. Other referrers stay. Returns whether
    /// anything was picked.
    pub async fn remove_referrers(
        &self,
        registry: &str,
        repo: &str,
        digest_hex: &str,
        ours: impl Fn(&Value) -> bool,
    ) -> Result<bool, RegistryError> {
        let listing = self.listing(registry, repo, digest_hex).await?;
        let (ours, others): (Vec<Value>, Vec<Value>) =
            listing.entries.into_iter().partition(|e| ours(e));
        if ours.is_empty() {
            return Ok(false);
        }
        if !listing.api {
            if others.is_empty() {
                if let Some(d) = &listing.index_digest {
                    self.delete_manifest(registry, repo, d).await?;
                }
            } else {
                self.put_index(registry, repo, digest_hex, others).await?;
            }
        }
        for e in &ours {
            if let Some(d) = e["digest"].as_str() {
                self.delete_manifest(registry, repo, d).await?;
            }
        }
        Ok(true)
    }
}
