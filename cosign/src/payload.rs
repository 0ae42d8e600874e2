//! Cosign's simple-signing payload (../shared/reference/cosign-bridge.md §2), written as Go
//! cosign writes it: compact, `critical` (identity, image, type) then `optional`. The
//! docker-reference is `registry/repo:tag`, so strict verifiers (containers-image's default
//! `matchRepoDigestOrExact`) accept tag pulls; `optional` names the notary role and target
//! and, when known, the key IDs that signed the role file.

use serde_json::Value;

/// The prefix of every claim annotation key.
const CLAIM_ANNOTATION_PREFIX: &str = "dev.trustbridge/notary-";

/// What one layer (or bundle) of ours says about a notary target.
#[derive(Clone, Copy, Debug)]
pub struct Claim<'a> {
    /// `registry/repository` of the image.
    pub reference: &'a str,
    /// The GUN the claim comes from. Several GUNs can name one repository (`alpine`,
    /// `library/alpine`, `docker.io/library/alpine`), so our layers say which one made them and
    /// a revoke removes only its own. None gives the form written before this field existed.
    pub gun: Option<&'a str>,
    pub digest_hex: &'a str,
    pub tag: &'a str,
    pub role: &'a str,
    /// Key IDs that signed the role (comma-separated); left out when empty, so jobs written
    /// before it existed reproduce their payloads.
    pub signers: &'a str,
}

impl Claim<'_> {
    /// The forms of this claim a revoke removes: ours, and the older form without a GUN only
    /// where the image repository is the GUN itself (then that older layer named this GUN).
    pub fn revocable(&self) -> Vec<Claim<'_>> {
        let mut forms = vec![*self];
        if self.gun == Some(self.reference) {
            forms.push(Claim { gun: None, ..*self });
        }
        forms
    }

    /// Whether `annotations` (a JSON map, e.g. a referrer's) carry exactly this claim: the
    /// same `dev.trustbridge/notary-*` members as [`Self::annotations`], no more, no fewer.
    pub fn annotated_in(&self, annotations: &Value) -> bool {
        let theirs: std::collections::BTreeMap<&str, &str> = annotations
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with(CLAIM_ANNOTATION_PREFIX))
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
            .collect();
        theirs == self.annotations().into_iter().collect()
    }

    /// The `dev.trustbridge/…` annotations, by key (the order JSON maps keep).
    pub fn annotations(&self) -> Vec<(&'static str, &str)> {
        let mut a = Vec::with_capacity(4);
        if let Some(g) = self.gun {
            a.push(("dev.trustbridge/notary-gun", g));
        }
        a.push(("dev.trustbridge/notary-role", self.role));
        if !self.signers.is_empty() {
            a.push(("dev.trustbridge/notary-signers", self.signers));
        }
        a.push(("dev.trustbridge/notary-target", self.tag));
        a
    }
}

/// The exact payload bytes for one claim.
pub fn payload(c: &Claim) -> Vec<u8> {
    let s = |v: &str| Value::from(v).to_string();
    let optional = c
        .annotations()
        .iter()
        .map(|(k, v)| format!("{}:{}", s(k), s(v)))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":{}}},"image":{{"docker-manifest-digest":{}}},"type":"cosign container image signature"}},"optional":{{{optional}}}}}"#,
        s(&format!("{}:{}", c.reference, c.tag)),
        s(&format!("sha256:{}", c.digest_hex)),
    )
    .into_bytes()
}

/// What a simple-signing payload claims, as a verifier reads it: the digest and the docker
/// reference under `critical` (empty where the payload does not say). Any bytes are taken:
/// what is not JSON, or not of this shape, claims nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Read {
    pub signed_digest: String,
    pub docker_reference: String,
}

pub fn read(payload: &[u8]) -> Read {
    let body: Value = serde_json::from_slice(payload).unwrap_or_default();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Read {
        signed_digest: s(&body["critical"]["image"]["docker-manifest-digest"]),
        docker_reference: s(&body["critical"]["identity"]["docker-reference"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_matches_cosign() {
        let claim = Claim {
            reference: "127.0.0.1:5000/app",
            gun: Some("127.0.0.1:5000/app"),
            digest_hex: "ab",
            tag: "v1",
            role: "targets/releases",
            signers: "k1,k2",
        };
        let p = payload(&claim);
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
        assert_eq!(
            v["optional"]["dev.trustbridge/notary-gun"],
            "127.0.0.1:5000/app"
        );
        // The form written before GUNs were named, byte for byte.
        let old = payload(&Claim {
            gun: None,
            signers: "",
            role: "targets",
            ..claim
        });
        assert_eq!(
            String::from_utf8(old.clone()).unwrap(),
            r#"{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/app:v1"},"image":{"docker-manifest-digest":"sha256:ab"},"type":"cosign container image signature"},"optional":{"dev.trustbridge/notary-role":"targets","dev.trustbridge/notary-target":"v1"}}"#
        );
        assert_eq!(claim.revocable().len(), 2);
        let other = Claim {
            gun: Some("alpine"),
            ..claim
        };
        assert_eq!(
            other.revocable().len(),
            1,
            "alpine's revoke never removes the unnamed form"
        );
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

    #[test]
    fn annotations_carry_a_claim_exactly() {
        let c = Claim {
            reference: "r/app",
            gun: Some("r/app"),
            digest_hex: "ab",
            tag: "v1",
            role: "targets",
            signers: "",
        };
        let mut a: serde_json::Map<String, Value> = c
            .annotations()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        a.insert(
            "io.cncf.notary.x509chain.thumbprint#S256".into(),
            "[]".into(),
        );
        assert!(c.annotated_in(&Value::Object(a.clone())));
        let other_role = Claim {
            role: "targets/releases",
            ..c
        };
        assert!(!other_role.annotated_in(&Value::Object(a.clone())));
        a.insert("dev.trustbridge/notary-signers".into(), "k1".into());
        assert!(!c.annotated_in(&Value::Object(a)));
        assert!(!c.annotated_in(&Value::Null));
    }
}
