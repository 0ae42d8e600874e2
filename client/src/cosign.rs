//! Reading what the Cosign bridge wrote (reference cosign-bridge.md): the
//! `sha256-<hex>.sig` OCI manifest in the image's repository, each layer a simple-signing
//! payload with its base64 ASN.1 ECDSA signature in the `dev.cosignproject.cosign/signature`
//! annotation. Used by `verify-both` to show that DCT and Cosign agree on a tag's digest.

use base64::Engine as _;
use x509_parser::prelude::FromDer as _;

use crate::error::{Error, Result};

/// One Cosign signature layer checked against a key.
#[derive(Debug, serde::Serialize)]
pub struct Layer {
    pub digest: String,
    /// `critical.image.docker-manifest-digest` of the payload.
    pub signed_digest: String,
    pub docker_reference: String,
    pub verified: bool,
}

/// The uncompressed P-256 point of a PEM `PUBLIC KEY` (cosign.pub).
pub fn p256_point(pem_text: &[u8]) -> Result<Vec<u8>> {
    let p = pem::parse(pem_text).map_err(|e| Error::Usage(format!("cosign public key: {e}")))?;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(p.contents())
        .map_err(|e| Error::Usage(format!("cosign public key: {e}")))?;
    Ok(spki.subject_public_key.data.to_vec())
}

/// Split `host[:port]/path/repo:tag` into (registry, repository, tag).
pub fn split_image(image: &str) -> Result<(String, String, String)> {
    let (name, tag) = match image.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => return Err(Error::Usage(format!("{image}: give IMAGE:TAG"))),
    };
    let (first, rest) = name.split_once('/').unwrap_or(("", name));
    if first.contains('.') || first.contains(':') || first == "localhost" {
        Ok((first.into(), rest.into(), tag.into()))
    } else {
        let repo = if name.contains('/') {
            name.to_string()
        } else {
            format!("library/{name}")
        };
        Ok(("docker.io".into(), repo, tag.into()))
    }
}

/// The Cosign layers for `digest_hex` in `registry/repository`, each verified with `point`.
/// Loopback registries are spoken to over plain HTTP, as the bridge does by default.
pub fn layers(
    registry: &str,
    repository: &str,
    digest_hex: &str,
    point: &[u8],
) -> Result<Vec<Layer>> {
    let loopback = registry.starts_with("127.")
        || registry.starts_with("localhost")
        || registry.starts_with("[::1]");
    let scheme = if loopback { "http" } else { "https" };
    let host = if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    };
    let base = format!("{scheme}://{host}/v2/{repository}");
    let http = reqwest::blocking::Client::builder()
        .build()
        .map_err(|e| Error::Usage(e.to_string()))?;
    let unreachable = |e: reqwest::Error| Error::Unreachable {
        server: registry.into(),
        reason: e.to_string(),
    };
    let resp = http
        .get(format!("{base}/manifests/sha256-{digest_hex}.sig"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .map_err(unreachable)?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(vec![]);
    }
    if !resp.status().is_success() {
        return Err(Error::Server {
            server: registry.into(),
            what: format!("the signature manifest of sha256:{digest_hex}"),
            status: resp.status().as_u16(),
            code: String::new(),
            message: resp.text().unwrap_or_default(),
        });
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&resp.bytes().map_err(unreachable)?).unwrap_or_default();
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point);
    let mut out = Vec::new();
    for l in manifest["layers"].as_array().cloned().unwrap_or_default() {
        let Some(sig) = l["annotations"]["dev.cosignproject.cosign/signature"].as_str() else {
            continue;
        };
        let digest = l["digest"].as_str().unwrap_or_default().to_string();
        let payload = http
            .get(format!("{base}/blobs/{digest}"))
            .send()
            .and_then(|r| r.bytes())
            .map_err(unreachable)?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
        out.push(Layer {
            digest,
            signed_digest: body["critical"]["image"]["docker-manifest-digest"]
                .as_str()
                .unwrap_or_default()
                .into(),
            docker_reference: body["critical"]["identity"]["docker-reference"]
                .as_str()
                .unwrap_or_default()
                .into(),
            verified: key.verify(&payload, &sig).is_ok(),
        });
    }
    Ok(out)
}
