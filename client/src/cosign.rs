//! Reading what the Cosign bridge wrote (reference cosign-bridge.md): the
//! `sha256-<hex>.sig` OCI manifest in the image's repository, each layer a simple-signing
//! payload with its base64 ASN.1 ECDSA signature in the `dev.cosignproject.cosign/signature`
//! annotation; and cosign v3's Sigstore bundles attached as OCI referrers. Used by
//! `verify-both` to show that DCT and Cosign agree on a tag's digest.

use base64::Engine as _;
use x509_parser::prelude::FromDer as _;

use trustbridge_cosign::media::{BUNDLE, OCI_INDEX, OCI_MANIFEST, SIGNATURE_ANNOTATION};
use trustbridge_cosign::names::{fallback_tag, sig_tag, split_repository};

use crate::error::{Error, Result};
use crate::registry::RegistryReader;

/// One Cosign signature layer checked against a key.
#[derive(Debug, serde::Serialize)]
pub struct Layer {
    pub digest: String,
    /// `critical.image.docker-manifest-digest` of the payload.
    pub signed_digest: String,
    pub docker_reference: String,
    pub verified: bool,
}

/// The key of a PEM `PUBLIC KEY` (cosign.pub), checked to be a SubjectPublicKeyInfo.
pub fn public_key(pem_text: &[u8]) -> Result<trustbridge_tuf::PublicKey> {
    let p = pem::parse(pem_text).map_err(|e| Error::Usage(format!("cosign public key: {e}")))?;
    x509_parser::x509::SubjectPublicKeyInfo::from_der(p.contents())
        .map_err(|e| Error::Usage(format!("cosign public key: {e}")))?;
    Ok(trustbridge_tuf::PublicKey::new(
        trustbridge_tuf::KeyType::Ecdsa,
        p.into_contents(),
    ))
}

/// Split `host[:port]/path/repo:tag` into (registry, repository, tag).
pub fn split_image(image: &str) -> Result<(String, String, String)> {
    let (name, tag) = match image.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => return Err(Error::Usage(format!("{image}: give IMAGE:TAG"))),
    };
    let (registry, repo) = split_repository(name);
    Ok((registry, repo, tag.into()))
}

/// The Cosign layers for `digest_hex`, each verified with `key`.
pub fn layers(
    reg: &RegistryReader,
    digest_hex: &str,
    key: &trustbridge_tuf::PublicKey,
) -> Result<Vec<Layer>> {
    let Some(manifest) = reg.get(
        &format!("manifests/{}", sig_tag(digest_hex)),
        Some(OCI_MANIFEST),
    )?
    else {
        return Ok(vec![]);
    };
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap_or_default();
    let mut out = Vec::new();
    for l in manifest["layers"].as_array().cloned().unwrap_or_default() {
        let Some(sig) = l["annotations"][SIGNATURE_ANNOTATION].as_str() else {
            continue;
        };
        let digest = l["digest"].as_str().unwrap_or_default().to_string();
        let payload = reg
            .get(&format!("blobs/{digest}"), None)?
            .unwrap_or_default();
        let sig = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .unwrap_or_default();
        let claim = trustbridge_cosign::payload::read(&payload);
        out.push(Layer {
            digest,
            signed_digest: claim.signed_digest,
            docker_reference: claim.docker_reference,
            verified: key.verify_der(&payload, &sig).is_ok(),
        });
    }
    Ok(out)
}

/// One Sigstore bundle (cosign v3's layout) attached to the image, checked against a key.
#[derive(Debug, serde::Serialize)]
pub struct Bundle {
    /// The referrer manifest holding it.
    pub manifest: String,
    /// The statement's subject digests (`sha256:<hex>`).
    pub signed_digests: Vec<String>,
    /// The DSSE signature verifies with the key over the pre-authentication encoding.
    pub verified: bool,
}

/// The image's referrer manifests, (digest, manifest), from the referrers API or the
/// `sha256-<hex>` fallback index where the registry has none.
pub fn referrers(
    reg: &RegistryReader,
    digest_hex: &str,
) -> Result<Vec<(String, serde_json::Value)>> {
    let index = match reg.get(&format!("referrers/sha256:{digest_hex}"), Some(OCI_INDEX))? {
        Some(i) => Some(i),
        None => reg.get(
            &format!("manifests/{}", fallback_tag(digest_hex)),
            Some(OCI_INDEX),
        )?,
    };
    let Some(index) = index else {
        return Ok(vec![]);
    };
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap_or_default();
    let mut out = Vec::new();
    for e in index["manifests"].as_array().cloned().unwrap_or_default() {
        let Some(md) = e["digest"].as_str() else {
            continue;
        };
        let Some(m) = reg.get(&format!("manifests/{md}"), Some(OCI_MANIFEST))? else {
            continue;
        };
        out.push((
            md.to_string(),
            serde_json::from_slice(&m).unwrap_or_default(),
        ));
    }
    Ok(out)
}

/// The Sigstore bundles among the image's referrers (the referrers API, or the
/// `sha256-<hex>` fallback index where the registry has none), each verified with `key`:
/// the DSSE signature, an in-toto statement with cosign's sign predicate, and its subjects.
pub fn bundles(
    reg: &RegistryReader,
    digest_hex: &str,
    key: &trustbridge_tuf::PublicKey,
) -> Result<Vec<Bundle>> {
    let mut out = Vec::new();
    for (md, m) in referrers(reg, digest_hex)? {
        let md = md.as_str();
        let Some(layer) = m["layers"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["mediaType"] == BUNDLE))
            .and_then(|l| l["digest"].as_str())
        else {
            continue; // another tool's referrer (an SBOM, an attestation)
        };
        let blob = reg
            .get(&format!("blobs/{layer}"), None)?
            .unwrap_or_default();
        let read = trustbridge_cosign::bundle::read(&blob);
        let verified = read.is_sign_statement()
            && key
                .verify_der(
                    &trustbridge_tuf::dsse::pae(&read.payload_type, &read.payload),
                    &read.sig,
                )
                .is_ok();
        let signed_digests = read.subjects;
        out.push(Bundle {
            manifest: md.into(),
            signed_digests,
            verified,
        });
    }
    Ok(out)
}
