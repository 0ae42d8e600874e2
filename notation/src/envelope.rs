//! The JWS envelope (`signature-envelope-jws.md`): flattened JSON serialization with
//! `payload`, `protected`, `header` (unprotected: `x5c`, the signing agent) and `signature`,
//! all base64url without padding except `x5c` (standard base64 DER, leaf first). The bytes
//! signed are `BASE64URL(protected) '.' BASE64URL(payload)`; ES256 signatures are raw r||s,
//! which is what notary's signer answers for ECDSA keys.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::Error;
use crate::chain::{self, Alg};
use crate::media::{PAYLOAD_CTY, SCHEME_X509, SIGNING_AGENT, SIGNING_SCHEME, SIGNING_TIME};

/// The payload: `{"targetArtifact": descriptor}`, the descriptor carrying `claims` as its
/// annotations (Notation's signed "user metadata", which `notation verify --user-metadata`
/// checks).
pub fn payload(target: &Value, claims: &[(&str, &str)]) -> Vec<u8> {
    let mut d = json!({
        "mediaType": target["mediaType"],
        "digest": target["digest"],
        "size": target["size"],
    });
    if !claims.is_empty() {
        let a: serde_json::Map<String, Value> = claims
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::from(*v)))
            .collect();
        d["annotations"] = Value::Object(a);
    }
    json!({ "targetArtifact": d }).to_string().into_bytes()
}

/// RFC 3339 in UTC without fractions, as the spec asks of `signingTime`.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The protected header of a `notary.x509` signature: `alg`, `cty`, the scheme (critical)
/// and the signing time.
pub fn protected_header(alg: Alg, signing_time: time::OffsetDateTime) -> Vec<u8> {
    json!({
        "alg": alg.name(),
        "cty": PAYLOAD_CTY,
        SIGNING_SCHEME: SCHEME_X509,
        SIGNING_TIME: rfc3339(signing_time),
        "crit": [SIGNING_SCHEME],
    })
    .to_string()
    .into_bytes()
}

/// The JWS signing input: what the key signs.
pub fn signing_input(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(protected),
        URL_SAFE_NO_PAD.encode(payload)
    )
    .into_bytes()
}

/// The envelope bytes (the layer blob).
pub fn envelope(
    protected: &[u8],
    payload: &[u8],
    chain: &[Vec<u8>],
    signature: &[u8],
    agent: &str,
) -> Vec<u8> {
    let x5c: Vec<String> = chain.iter().map(|c| STANDARD.encode(c)).collect();
    json!({
        "payload": URL_SAFE_NO_PAD.encode(payload),
        "protected": URL_SAFE_NO_PAD.encode(protected),
        "header": { "x5c": x5c, SIGNING_AGENT: agent },
        "signature": URL_SAFE_NO_PAD.encode(signature),
    })
    .to_string()
    .into_bytes()
}

/// The thumbprint annotation's value: a JSON array of each certificate's SHA-256, lowercase
/// hex, leaf first (as notation-go writes it).
pub fn thumbprints(chain: &[Vec<u8>]) -> String {
    let t: Vec<String> = chain
        .iter()
        .map(|c| hex::encode(ring::digest::digest(&ring::digest::SHA256, c)))
        .collect();
    Value::from(t).to_string()
}

/// What a verified envelope says.
#[derive(Debug, Clone)]
pub struct Verified {
    /// `sha256:<hex>` of the signed manifest.
    pub digest: String,
    /// The target descriptor's annotations (signed user metadata).
    pub annotations: BTreeMap<String, String>,
    /// The chain the envelope carries, leaf first.
    pub chain: Vec<Vec<u8>>,
    pub signing_time: String,
}

fn b64url(v: &Value, what: &str) -> Result<Vec<u8>, Error> {
    let s = v
        .as_str()
        .ok_or_else(|| Error::new(format!("the envelope has no {what}")))?;
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| Error::new(format!("the envelope's {what} is not base64url")))
}

/// Verify an envelope as Notation's `notary.x509` verification does for our purposes: the
/// header is one we understand (`crit` holds only the scheme), the chain meets the Notary
/// Project's certificate rules and ends in one of `trusted_roots` (DER), every certificate is
/// valid at `now`, `alg` matches the leaf key, and the signature verifies over the signing
/// input.
pub fn verify(
    envelope: &[u8],
    trusted_roots: &[Vec<u8>],
    now: time::OffsetDateTime,
) -> Result<Verified, Error> {
    let env: Value = serde_json::from_slice(envelope)
        .map_err(|e| Error::new(format!("the envelope is not JSON: {e}")))?;
    let protected = b64url(&env["protected"], "protected header")?;
    let payload = b64url(&env["payload"], "payload")?;
    let signature = b64url(&env["signature"], "signature")?;
    let header: Value = serde_json::from_slice(&protected)
        .map_err(|e| Error::new(format!("the protected header is not JSON: {e}")))?;
    if header[SIGNING_SCHEME] != SCHEME_X509 {
        return Err(Error::new(format!(
            "signing scheme {} is not {SCHEME_X509}",
            header[SIGNING_SCHEME]
        )));
    }
    if header["cty"] != PAYLOAD_CTY {
        return Err(Error::new(format!(
            "content type {} is not {PAYLOAD_CTY}",
            header["cty"]
        )));
    }
    let crit_ok = header["crit"].as_array().is_some_and(|c| {
        c.iter().any(|h| h == SIGNING_SCHEME) && c.iter().all(|h| h == SIGNING_SCHEME)
    });
    if !crit_ok {
        return Err(Error::new(format!(
            "critical headers {} are not understood",
            header["crit"]
        )));
    }
    let chain: Vec<Vec<u8>> = env["header"]["x5c"]
        .as_array()
        .ok_or_else(|| Error::new("the envelope has no x5c chain"))?
        .iter()
        .map(|c| {
            c.as_str()
                .and_then(|s| STANDARD.decode(s).ok())
                .ok_or_else(|| Error::new("an x5c entry is not base64 DER"))
        })
        .collect::<Result<_, _>>()?;
    let info = chain::check(&chain, Some(now))?;
    let root = chain.last().ok_or_else(|| Error::new("empty x5c"))?;
    if !trusted_roots.iter().any(|r| r == root) {
        return Err(Error::new(
            "the chain does not end in a trusted root certificate",
        ));
    }
    if header["alg"] != info.alg.name() {
        return Err(Error::new(format!(
            "alg {} does not match the signing certificate's key ({})",
            header["alg"],
            info.alg.name()
        )));
    }
    info.alg.verify(
        &info.leaf_spki,
        &signing_input(&protected, &payload),
        &signature,
    )?;
    let body: Value = serde_json::from_slice(&payload)
        .map_err(|e| Error::new(format!("the payload is not JSON: {e}")))?;
    let target = &body["targetArtifact"];
    let annotations = target["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Verified {
        digest: target["digest"].as_str().unwrap_or_default().to_string(),
        annotations,
        chain,
        signing_time: header[SIGNING_TIME]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}
