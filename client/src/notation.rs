//! Reading what the bridge's Notation side wrote: Notary Project signatures among the image's
//! referrers (artifactType `application/vnd.cncf.notary.signature`, one JWS layer), each
//! verified against the trust anchor the server serves (`/_trustbridge/v1/notation-ca.crt`)
//! with trustbridge-notation's rules. Used by `verify-both`.

use trustbridge_notation::media::{JWS_ENVELOPE, SIGNATURE_ARTIFACT};

use crate::cosign::referrers;
use crate::error::Result;
use crate::registry::RegistryReader;

/// One Notation signature checked against the trust anchor.
#[derive(Debug, serde::Serialize)]
pub struct Signature {
    pub manifest: String,
    /// The payload's target digest (empty when the envelope did not verify).
    pub signed_digest: String,
    /// The notary tag the signed user metadata names, if any.
    pub target: Option<String>,
    pub verified: bool,
    /// Why it did not verify.
    pub error: Option<String>,
}

/// Every Notation signature of the image, verified against `roots` (DER) now.
pub fn signatures(
    reg: &RegistryReader,
    digest_hex: &str,
    roots: &[Vec<u8>],
) -> Result<Vec<Signature>> {
    let mut out = Vec::new();
    for (md, m) in referrers(reg, digest_hex)? {
        if m["artifactType"] != SIGNATURE_ARTIFACT {
            continue;
        }
        let Some(layer) = m["layers"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["mediaType"] == JWS_ENVELOPE))
            .and_then(|l| l["digest"].as_str())
        else {
            continue; // a COSE signature: not ours
        };
        let blob = reg
            .get(&format!("blobs/{layer}"), None)?
            .unwrap_or_default();
        let sig = match trustbridge_notation::envelope::verify(
            &blob,
            roots,
            time::OffsetDateTime::now_utc(),
        ) {
            Ok(v) => Signature {
                manifest: md,
                target: v.annotations.get("dev.trustbridge/notary-target").cloned(),
                signed_digest: v.digest,
                verified: true,
                error: None,
            },
            Err(e) => Signature {
                manifest: md,
                signed_digest: String::new(),
                target: None,
                verified: false,
                error: Some(e.to_string()),
            },
        };
        out.push(sig);
    }
    Ok(out)
}
