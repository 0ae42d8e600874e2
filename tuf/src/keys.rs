//! Public keys as notary lists them in metadata, their key IDs, and signature verification.
//!
//! A key object is `{"keytype":T,"keyval":{"private":null,"public":"<base64>"}}` and its ID is
//! the lowercase hex SHA-256 of exactly that canonical JSON — `"private":null` included. For
//! `*-x509` keys `public` is the PEM text of a certificate (chain), so the same key has a
//! second, "canonical" ID: that of the plain key built from the certificate's
//! SubjectPublicKeyInfo. Metadata uses the certificate ID; private key files and signer look-ups
//! use the canonical one.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{self, UnparsedPublicKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use x509_parser::prelude::*;

use crate::error::Error;

/// Key types notary knows (`tuf/data/types.go`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyType {
    Ecdsa,
    EcdsaX509,
    Ed25519,
    Rsa,
    RsaX509,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ecdsa => "ecdsa",
            KeyType::EcdsaX509 => "ecdsa-x509",
            KeyType::Ed25519 => "ed25519",
            KeyType::Rsa => "rsa",
            KeyType::RsaX509 => "rsa-x509",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "ecdsa" => KeyType::Ecdsa,
            "ecdsa-x509" => KeyType::EcdsaX509,
            "ed25519" => KeyType::Ed25519,
            "rsa" => KeyType::Rsa,
            "rsa-x509" => KeyType::RsaX509,
            other => return Err(Error::UnsupportedKeyType(other.to_string())),
        })
    }

    pub fn is_x509(self) -> bool {
        matches!(self, KeyType::EcdsaX509 | KeyType::RsaX509)
    }

    /// The signature method notary writes for this key type.
    pub fn signature_method(self) -> &'static str {
        match self {
            KeyType::Ecdsa | KeyType::EcdsaX509 => "ecdsa",
            KeyType::Ed25519 => "eddsa",
            KeyType::Rsa | KeyType::RsaX509 => "rsapss",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A public key as it appears in `keys` of root and delegations.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PublicKey {
    pub key_type: KeyType,
    /// The decoded `keyval.public`: DER SPKI (ecdsa, rsa), 32 raw bytes (ed25519), or PEM
    /// text of a certificate chain (`*-x509`).
    pub public: Vec<u8>,
}

/// DER prefix of a P-256 SubjectPublicKeyInfo; the 65-byte uncompressed point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

impl PublicKey {
    pub fn new(key_type: KeyType, public: Vec<u8>) -> Self {
        PublicKey { key_type, public }
    }

    /// An `ecdsa` key from an uncompressed P-256 point (65 bytes, `04||x||y`).
    pub fn ecdsa_p256_from_point(point: &[u8]) -> Self {
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(point);
        PublicKey::new(KeyType::Ecdsa, spki)
    }

    /// The canonical JSON the key ID is computed over.
    pub fn canonical_json(&self) -> Vec<u8> {
        // Both strings are plain ASCII (a key type name and base64), so no escaping applies.
        format!(
            r#"{{"keytype":"{}","keyval":{{"private":null,"public":"{}"}}}}"#,
            self.key_type,
            B64.encode(&self.public)
        )
        .into_bytes()
    }

    /// The TUF key ID: hex SHA-256 of the canonical key JSON.
    pub fn id(&self) -> String {
        hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            &self.canonical_json(),
        ))
    }

    /// The ID of the private key behind this key: for `*-x509` keys the ID of the plain key
    /// built from the leaf certificate's SPKI (`utils.CanonicalKeyID`), else [`Self::id`].
    pub fn canonical_id(&self) -> Result<String, Error> {
        Ok(self.without_certificate()?.id())
    }

    /// The plain key (`ecdsa`/`rsa` with DER SPKI) behind a certificate key; other keys as they are.
    pub fn without_certificate(&self) -> Result<PublicKey, Error> {
        let plain = match self.key_type {
            KeyType::EcdsaX509 => KeyType::Ecdsa,
            KeyType::RsaX509 => KeyType::Rsa,
            _ => return Ok(self.clone()),
        };
        let der = crate::certpem::first_certificate_der(&self.public)?;
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|e| Error::Certificate(format!("cannot parse certificate: {e}")))?;
        Ok(PublicKey::new(plain, cert.public_key().raw.to_vec()))
    }

    /// Verify an ECDSA P-256 signature in cosign's encoding (ASN.1 DER `SEQUENCE{r,s}` over
    /// SHA-256 of `msg`), as Cosign layers and Sigstore bundles carry it; notary's own
    /// signatures are raw r||s ([`Self::verify`]).
    pub fn verify_der(&self, msg: &[u8], der: &[u8]) -> Result<(), Error> {
        let bad = |reason: &str| Error::Key {
            key_id: self.id(),
            reason: reason.to_string(),
        };
        if !matches!(self.key_type, KeyType::Ecdsa) {
            return Err(bad("not an ECDSA public key"));
        }
        let point = spki_bit_string(&self.public).map_err(|_| bad("invalid ECDSA public key"))?;
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, point)
            .verify(msg, der)
            .map_err(|_| bad("ECDSA signature does not verify"))
    }

    /// Verify `sig` over `msg` as notary does for `method` (`tuf/signed/verifiers.go`):
    /// ECDSA raw r||s over SHA-256, Ed25519 over the message, RSA-PSS-SHA256 (salt = 32),
    /// RSA PKCS#1 v1.5 SHA-256.
    pub fn verify(&self, method: &str, msg: &[u8], sig: &[u8]) -> Result<(), Error> {
        let id = || self.id();
        let bad = |reason: &str| Error::Key {
            key_id: id(),
            reason: reason.to_string(),
        };
        let spki_der;
        let spki: &[u8] = if self.key_type.is_x509() {
            spki_der = self.without_certificate()?.public;
            &spki_der
        } else {
            &self.public
        };
        match (method, self.key_type) {
            ("ecdsa", KeyType::Ecdsa | KeyType::EcdsaX509) => {
                let point = spki_bit_string(spki).map_err(|_| bad("invalid ECDSA public key"))?;
                // Notary digests with SHA-256 whatever the curve; ring pairs P-256 with SHA-256,
                // the only ECDSA curve notary generates.
                if sig.len() != 64 {
                    return Err(bad("ECDSA signature is not 64 bytes of r||s"));
                }
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg, sig)
                    .map_err(|_| bad("ECDSA signature does not verify"))
            }
            ("eddsa", KeyType::Ed25519) => {
                if self.public.len() != 32 {
                    return Err(bad("ed25519 public key is not 32 bytes"));
                }
                UnparsedPublicKey::new(&signature::ED25519, &self.public)
                    .verify(msg, sig)
                    .map_err(|_| bad("ed25519 signature does not verify"))
            }
            ("rsapss" | "pycrypto-pkcs#1 pss", KeyType::Rsa | KeyType::RsaX509) => {
                let pkcs1 = spki_bit_string(spki).map_err(|_| bad("invalid RSA public key"))?;
                UnparsedPublicKey::new(&signature::RSA_PSS_2048_8192_SHA256, pkcs1)
                    .verify(msg, sig)
                    .map_err(|_| bad("RSA-PSS signature does not verify"))
            }
            ("rsapkcs1v15", KeyType::Rsa | KeyType::RsaX509) => {
                let pkcs1 = spki_bit_string(spki).map_err(|_| bad("invalid RSA public key"))?;
                UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, pkcs1)
                    .verify(msg, sig)
                    .map_err(|_| bad("RSA PKCS#1 v1.5 signature does not verify"))
            }
            (m, t) => Err(Error::UnsupportedMethod {
                method: m.to_string(),
                key_type: t.to_string(),
            }),
        }
    }
}

/// The subjectPublicKey BIT STRING contents of a DER SPKI (EC point or PKCS#1 RSA key).
pub(crate) fn spki_bit_string(spki: &[u8]) -> Result<&[u8], Error> {
    let (rest, info) = SubjectPublicKeyInfo::from_der(spki)
        .map_err(|e| Error::Certificate(format!("invalid SubjectPublicKeyInfo: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::Certificate(
            "trailing bytes after SubjectPublicKeyInfo".into(),
        ));
    }
    // `subject_public_key.data` borrows from `spki`; find it there to return a plain slice.
    let data = info.subject_public_key.data.as_ref();
    let start = spki.len() - data.len();
    Ok(&spki[start..])
}

#[derive(Serialize, Deserialize)]
struct KeyVal {
    private: Option<serde_json::Value>,
    #[serde(with = "crate::b64::bytes")]
    public: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct KeyJson {
    keytype: String,
    keyval: KeyVal,
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        KeyJson {
            keytype: self.key_type.as_str().to_string(),
            keyval: KeyVal {
                private: None,
                public: self.public.clone(),
            },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let k = KeyJson::deserialize(d)?;
        let key_type = KeyType::parse(&k.keytype).map_err(serde::de::Error::custom)?;
        Ok(PublicKey {
            key_type,
            public: k.keyval.public,
        })
    }
}
