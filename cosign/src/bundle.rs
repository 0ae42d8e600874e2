//! cosign v3's "new bundle format" (cosign-bridge.md §5; cosign `sign.go` signDigestBundle,
//! `oci/remote/write.go` WriteAttestationNewBundleFormat, specs/BUNDLE_SPEC.md): a Sigstore
//! bundle v0.3 holding a DSSE envelope of an in-toto Statement (predicate
//! `https://sigstore.dev/cosign/sign/v1`, empty predicate, one subject: the image digest),
//! stored as an OCI 1.1 artifact manifest whose `subject` is the signed image.
//!
//! Key-signed, no transparency log: the verification material is the public-key hint, which
//! cosign computes as base64(SHA-256(PKIX DER of the public key)) (`internal/key/svkeypair.go`).
//! The statement is deterministic for a (reference, digest, tag, role, signers), so its digest,
//! carried in an annotation of ours, tells whether a bundle for a job is already there: ECDSA
//! signatures are randomised and the bundle bytes differ on every delivery.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::media::{
    BUNDLE, INTOTO_PAYLOAD, OCI_EMPTY, OCI_MANIFEST, SIGN_PREDICATE, STATEMENT_ANNOTATION,
};
pub use crate::sha256;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The in-toto Statement for one notary target. cosign puts `-a` annotations into the
/// subject's `annotations`; ours name the docker reference, the notary role and target, and
/// the key IDs that signed the role (left out when unknown, as in the legacy payload).
pub fn statement(c: &crate::payload::Claim) -> Vec<u8> {
    let mut annotations = serde_json::Map::new();
    annotations.insert(
        "docker-reference".into(),
        Value::from(format!("{}:{}", c.reference, c.tag)),
    );
    for (k, v) in c.annotations() {
        annotations.insert(k.into(), Value::from(v));
    }
    // serde_json's map is ordered by key: the same job always gives the same bytes.
    let v = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": c.digest_hex}, "annotations": annotations}],
        "predicateType": SIGN_PREDICATE,
        "predicate": {},
    });
    serde_json::to_vec(&v).expect("a JSON value serialises")
}

/// cosign's public-key hint: base64(SHA-256(PKIX DER)).
pub fn key_hint(spki_der: &[u8]) -> String {
    B64.encode(ring::digest::digest(&ring::digest::SHA256, spki_der))
}

/// The bundle JSON (protojson field names; empty tlog entries and timestamps omitted, as Go's
/// protojson writes them). `sig_der`: the ECDSA signature over the statement's DSSE PAE
/// (DSSE's pre-authentication encoding) in ASN.1 DER.
pub fn bundle(statement: &[u8], sig_der: &[u8], spki_der: &[u8]) -> Vec<u8> {
    let v = json!({
        "mediaType": BUNDLE,
        "verificationMaterial": {"publicKey": {"hint": key_hint(spki_der)}},
        "dsseEnvelope": {
            "payload": B64.encode(statement),
            "payloadType": INTOTO_PAYLOAD,
            "signatures": [{"sig": B64.encode(sig_der)}],
        },
    });
    serde_json::to_vec(&v).expect("a JSON value serialises")
}

/// The annotations cosign puts on a bundle manifest, plus our statement digest. The registry
/// copies them into the referrers index; with the fallback tag the writer does.
pub fn annotations(statement: &[u8], created: &str) -> Value {
    json!({
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": SIGN_PREDICATE,
        "org.opencontainers.image.created": created,
        STATEMENT_ANNOTATION: sha256(statement),
    })
}

/// The OCI image manifest that carries the bundle: `artifactType` and the one layer are the
/// bundle media type, the config is the empty descriptor (blob `{}`), `subject` is the image.
pub fn manifest(bundle: &[u8], subject: &Value, annotations: &Value) -> Vec<u8> {
    artifact_manifest(BUNDLE, BUNDLE, bundle, subject, annotations)
}

/// An OCI 1.1 artifact manifest that refers to `subject`: `artifactType`, the empty config
/// (blob `{}`), one layer of `layer_media_type` holding `blob`, and `annotations`. Cosign v3's
/// bundle and Notation's signature share this shape (and the referrers listing it lands in).
pub fn artifact_manifest(
    artifact_type: &str,
    layer_media_type: &str,
    blob: &[u8],
    subject: &Value,
    annotations: &Value,
) -> Vec<u8> {
    let v = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": layer_media_type, "digest": sha256(blob), "size": blob.len()}],
        "subject": subject,
        "annotations": annotations,
    });
    serde_json::to_vec(&v).expect("a JSON value serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_is_deterministic_and_names_the_digest() {
        let claim = crate::payload::Claim {
            reference: "127.0.0.1:5000/app",
            gun: Some("127.0.0.1:5000/app"),
            digest_hex: "ab",
            tag: "v1",
            role: "targets",
            signers: "k1",
        };
        let a = statement(&claim);
        assert_eq!(a, statement(&claim));
        let v: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(v["subject"][0]["digest"]["sha256"], "ab");
        assert_eq!(v["predicateType"], SIGN_PREDICATE);
        assert_eq!(
            v["subject"][0]["annotations"]["docker-reference"],
            "127.0.0.1:5000/app:v1"
        );
        assert_eq!(
            v["subject"][0]["annotations"]["dev.trustbridge/notary-gun"],
            "127.0.0.1:5000/app"
        );
        let old = statement(&crate::payload::Claim {
            signers: "",
            gun: None,
            ..claim
        });
        let old: Value = serde_json::from_slice(&old).unwrap();
        assert!(
            old["subject"][0]["annotations"]
                .get("dev.trustbridge/notary-signers")
                .is_none()
        );
    }

    #[test]
    fn manifest_carries_subject_and_bundle() {
        let b = bundle(b"{}", b"sig", b"key");
        let subject = json!({"mediaType": OCI_MANIFEST, "digest": "sha256:00", "size": 1});
        let m: Value =
            serde_json::from_slice(&manifest(&b, &subject, &annotations(b"{}", "now"))).unwrap();
        assert_eq!(m["artifactType"], BUNDLE);
        assert_eq!(m["layers"][0]["digest"], sha256(&b));
        assert_eq!(
            m["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(m["subject"], subject);
        assert_eq!(m["annotations"][STATEMENT_ANNOTATION], sha256(b"{}"));
    }
}

/// A Sigstore bundle as a verifier reads it: the DSSE envelope's type, payload and first
/// signature, and the statement's predicate type and subject digests (`sha256:<hex>`). Any
/// bytes are taken; what is missing reads as empty, which no key verifies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Read {
    pub payload_type: String,
    pub payload: Vec<u8>,
    pub sig: Vec<u8>,
    pub predicate_type: String,
    pub subjects: Vec<String>,
}

impl Read {
    /// Whether the envelope holds cosign's sign statement (what a key must then verify over
    /// DSSE's pre-authentication encoding of `payload_type` and `payload`).
    pub fn is_sign_statement(&self) -> bool {
        self.payload_type == INTOTO_PAYLOAD && self.predicate_type == SIGN_PREDICATE
    }
}

pub fn read(blob: &[u8]) -> Read {
    let bundle: Value = serde_json::from_slice(blob).unwrap_or_default();
    let env = &bundle["dsseEnvelope"];
    let payload = B64
        .decode(env["payload"].as_str().unwrap_or_default())
        .unwrap_or_default();
    let sig = B64
        .decode(env["signatures"][0]["sig"].as_str().unwrap_or_default())
        .unwrap_or_default();
    let statement: Value = serde_json::from_slice(&payload).unwrap_or_default();
    let subjects = statement["subject"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| {
                    s["digest"]["sha256"]
                        .as_str()
                        .map(|h| format!("sha256:{h}"))
                })
                .collect()
        })
        .unwrap_or_default();
    Read {
        payload_type: env["payloadType"].as_str().unwrap_or_default().to_string(),
        predicate_type: statement["predicateType"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        payload,
        sig,
        subjects,
    }
}
