//! Cosign's encrypted private key file (`cosign.key`) and public key PEM, for the Cosign
//! bridge key (../shared/reference/cosign-bridge.md §3). The file is a PEM block
//! `ENCRYPTED SIGSTORE PRIVATE KEY` (older: `ENCRYPTED COSIGN PRIVATE KEY`) whose body is
//! go-securesystemslib's JSON: scrypt (r=8, p=1, N of 2^15, 2^16 or 2^17) derives a 32-byte
//! key that opens a NaCl secretbox (XSalsa20-Poly1305) holding PKCS#8 DER.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use trustbridge_tuf::{KeyType, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Role and GUN under which the bridge key is stored in `private_keys`.
pub const COSIGN_ROLE: &str = "cosign";
pub const COSIGN_GUN: &str = "";

pub const PEM_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
const LEGACY_PEM_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

#[derive(Serialize, Deserialize)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

#[derive(Serialize, Deserialize)]
struct Encrypted {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

fn err(s: impl Into<String>) -> Error {
    Error::CosignKey(s.into())
}

fn derive(password: &str, salt: &[u8], log_n: u8) -> Result<Zeroizing<[u8; 32]>> {
    let params = scrypt::Params::new(log_n, 8, 1, 32).map_err(|e| err(e.to_string()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password.as_bytes(), salt, &params, &mut key[..])
        .map_err(|e| err(e.to_string()))?;
    Ok(key)
}

/// Decrypt a cosign private key file with `password` (cosign reads it from `COSIGN_PASSWORD`;
/// empty is allowed). Only ECDSA P-256 keys are accepted: that is what cosign makes and what
/// the bridge signs with.
pub fn decrypt(pem_text: &[u8], password: &str) -> Result<PrivateKey> {
    let block = pem::parse(pem_text).map_err(|e| err(format!("not a PEM file: {e}")))?;
    if block.tag() != PEM_LABEL && block.tag() != LEGACY_PEM_LABEL {
        return Err(err(format!(
            "PEM block is {:?}; expected {PEM_LABEL:?} (a file written by `cosign generate-key-pair`)",
            block.tag()
        )));
    }
    let doc: Encrypted = serde_json::from_slice(block.contents())
        .map_err(|e| err(format!("encrypted key JSON: {e}")))?;
    if doc.kdf.name != "scrypt" || doc.cipher.name != "nacl/secretbox" {
        return Err(err(format!(
            "unsupported kdf/cipher {}/{}",
            doc.kdf.name, doc.cipher.name
        )));
    }
    let log_n = match (doc.kdf.params.n, doc.kdf.params.r, doc.kdf.params.p) {
        (32768, 8, 1) => 15,
        (65536, 8, 1) => 16,
        (131072, 8, 1) => 17,
        (n, r, p) => {
            return Err(err(format!(
                "scrypt parameters N={n} r={r} p={p} are not one of cosign's sets"
            )));
        }
    };
    let b64 = |s: &str, what: &str| {
        B64.decode(s)
            .map_err(|_| err(format!("{what} is not base64")))
    };
    let salt = b64(&doc.kdf.salt, "salt")?;
    let nonce = b64(&doc.cipher.nonce, "nonce")?;
    if nonce.len() != 24 {
        return Err(err("nonce is not 24 bytes"));
    }
    let ciphertext = b64(&doc.ciphertext, "ciphertext")?;
    let key = derive(password, &salt, log_n)?;
    let cipher = XSalsa20Poly1305::new((&*key).into());
    let der = Zeroizing::new(
        cipher
            .decrypt(nonce.as_slice().into(), ciphertext.as_slice())
            .map_err(|_| err("wrong password (COSIGN_PASSWORD) or corrupt key file"))?,
    );
    let key = PrivateKey::from_pkcs8(&der).map_err(|e| err(format!("PKCS#8: {e}")))?;
    if key.key_type() != KeyType::Ecdsa {
        return Err(err("only ECDSA P-256 cosign keys are supported"));
    }
    Ok(key)
}

/// Encrypt `key` as cosign does (scrypt N=2^16, the current default).
pub fn encrypt(key: &PrivateKey, password: &str) -> Result<String> {
    let rng = SystemRandom::new();
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    rng.fill(&mut salt)
        .and_then(|_| rng.fill(&mut nonce))
        .map_err(|_| err("no randomness"))?;
    let der = standard_pkcs8(key)?;
    let k = derive(password, &salt, 16)?;
    let ciphertext = XSalsa20Poly1305::new((&*k).into())
        .encrypt((&nonce).into(), der.as_slice())
        .map_err(|_| err("encryption failed"))?;
    let doc = Encrypted {
        kdf: Kdf {
            name: "scrypt".into(),
            params: KdfParams {
                n: 65536,
                r: 8,
                p: 1,
            },
            salt: B64.encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: B64.encode(nonce),
        },
        ciphertext: B64.encode(ciphertext),
    };
    let body = serde_json::to_vec(&doc).map_err(|e| err(e.to_string()))?;
    Ok(pem::encode(&pem::Pem::new(PEM_LABEL, body)))
}

/// The standard PKCS#8 of an ECDSA key, as cosign writes it.
fn standard_pkcs8(key: &PrivateKey) -> Result<Zeroizing<Vec<u8>>> {
    if key.key_type() != KeyType::Ecdsa {
        return Err(err("only ECDSA P-256 cosign keys are supported"));
    }
    Ok(p256_pkcs8(key.notary_bytes()))
}

/// Standard PKCS#8 v0 for a P-256 key from notary's SEC1 bytes: what cosign, sigstore-rs,
/// rcgen and ring read (notary's own PKCS#8 says version 1 without the public key field, which
/// they refuse; sigstore-rs found this).
pub fn p256_pkcs8(sec1: &[u8]) -> Zeroizing<Vec<u8>> {
    const ALG: [u8; 21] = [
        0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
        0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ];
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(&ALG);
    body.push(0x04);
    push_len(&mut body, sec1.len());
    body.extend_from_slice(sec1);
    let mut out = Zeroizing::new(vec![0x30]);
    push_len(&mut out, body.len());
    out.extend_from_slice(&body);
    zeroize::Zeroize::zeroize(&mut body);
    out
}

fn push_len(out: &mut Vec<u8>, n: usize) {
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
}

pub use trustbridge_signer_proto::keys::{KeyError, raw_to_der};

/// `cosign.pub`: PEM `PUBLIC KEY` over the DER SubjectPublicKeyInfo.
pub fn public_pem(key: &PublicKey) -> Result<String> {
    trustbridge_signer_proto::keys::public_pem(key).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_wrong_password_and_labels() {
        let key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
        let file = encrypt(&key, "pw").unwrap();
        assert!(file.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
        assert_eq!(decrypt(file.as_bytes(), "pw").unwrap().id(), key.id());
        let e = decrypt(file.as_bytes(), "nope").unwrap_err().to_string();
        assert!(e.contains("COSIGN_PASSWORD"), "{e}");
        let legacy = file.replace("SIGSTORE", "COSIGN");
        assert_eq!(decrypt(legacy.as_bytes(), "pw").unwrap().id(), key.id());
        let other = file.replace("ENCRYPTED SIGSTORE PRIVATE KEY", "PRIVATE KEY");
        assert!(decrypt(other.as_bytes(), "pw").is_err());
        let pem = public_pem(key.public_key()).unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    }

    #[test]
    fn raw_signatures_become_der_that_ring_verifies() {
        let key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
        for i in 0..32u8 {
            let msg = [i; 17];
            let der = raw_to_der(&key.sign(&msg).unwrap()).unwrap();
            let point = &key.public_key().public[26..];
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_ASN1,
                point,
            )
            .verify(&msg, &der)
            .unwrap();
        }
        assert!(raw_to_der(&[0u8; 10]).is_err());
    }
}
