//! Cosign's simple-signing payload (../shared/reference/cosign-bridge.md §2), written as Go
//! cosign writes it: compact, `critical` (identity, image, type) then `optional`. The
//! docker-reference is `registry/repo:tag`, so strict verifiers (containers-image's default
//! `matchRepoDigestOrExact`) accept tag pulls; `optional` names the notary role and target
//! and, when known, the key IDs that signed the role file.

use serde_json::Value;

pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The exact payload bytes for one notary target. `signers` (comma-separated key IDs) is
/// left out when empty, so jobs written before it existed reproduce their payloads.
pub fn payload(reference: &str, digest_hex: &str, tag: &str, role: &str, signers: &str) -> Vec<u8> {
    let s = |v: &str| Value::from(v).to_string();
    let signers = if signers.is_empty() {
        String::new()
    } else {
        format!(r#","dev.trustbridge/notary-signers":{}"#, s(signers))
    };
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":{}}},"image":{{"docker-manifest-digest":{}}},"type":"cosign container image signature"}},"optional":{{"dev.trustbridge/notary-role":{}{signers},"dev.trustbridge/notary-target":{}}}}}"#,
        s(&format!("{reference}:{tag}")),
        s(&format!("sha256:{digest_hex}")),
        s(role),
        s(tag)
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_matches_cosign() {
        let p = payload(
            "127.0.0.1:5000/app",
            "ab",
            "v1",
            "targets/releases",
            "k1,k2",
        );
        let v: Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(
            v["critical"]["identity"]["docker-reference"],
            "127.0.0.1:5000/app:v1"
        );
        assert_eq!(
            v["critical"]["image"]["docker-manifest-digest"],
            "sha256:ab"
        );
        assert_eq!(v["critical"]["type"], "cosign container image signature");
        assert_eq!(v["optional"]["dev.trustbridge/notary-signers"], "k1,k2");
        let old = payload("127.0.0.1:5000/app", "ab", "v1", "targets", "");
        let old: Value = serde_json::from_slice(&old).unwrap();
        assert!(
            old["optional"]
                .get("dev.trustbridge/notary-signers")
                .is_none()
        );
        assert_eq!(v["critical"].as_object().unwrap().len(), 3);
        assert!(
            String::from_utf8(p)
                .unwrap()
                .starts_with(r#"{"critical":{"identity":"#)
        );
    }
}
