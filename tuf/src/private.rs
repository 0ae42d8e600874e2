//! Private keys in notary's encodings, and signing.
//!
//! Notary keeps private key bytes as (`tuf/utils/x509.go`, `tuf/data/keys.go`):
//! * ECDSA: SEC1 `ECPrivateKey` DER as Go's `x509.MarshalECPrivateKey` writes it (version 1,
//!   the scalar padded to 32 bytes, `[0]` named curve, `[1]` public point);
//! * Ed25519: 96 bytes `public(32) || seed(32) || public(32)`;
//! * RSA: PKCS#1 `RSAPrivateKey` DER (loaded, never generated: notary does not make RSA keys).
//!
//! Its PKCS#8 wrapping (used inside key files) is non-standard: EC uses version 1 without a
//! public key, RSA has no NULL algorithm parameter, Ed25519 uses OID 1.3.6.1.4.1.11591.15.1
//! with the 96-byte blob. Signatures: ECDSA P-256 raw `r||s` over SHA-256 (method `ecdsa`),
//! Ed25519 (`eddsa`), RSA-PSS SHA-256 (`rsapss`).

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use zeroize::Zeroizing;

use crate::asn1::{self, Reader};
use crate::error::Error;
use crate::keys::{KeyType, PublicKey};

enum Inner {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A private key with its public half. Private bytes are zeroised on drop and never printed.
pub struct PrivateKey {
    key_type: KeyType,
    private: Zeroizing<Vec<u8>>,
    public: PublicKey,
    inner: Inner,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("key_type", &self.key_type)
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

fn rng() -> SystemRandom {
    SystemRandom::new()
}

fn pk_err(e: impl std::fmt::Display) -> Error {
    Error::PrivateKey(e.to_string())
}

impl PrivateKey {
    /// A new key of `key_type` (`ecdsa` = P-256, or `ed25519`), as notary's `GenerateKey`.
    pub fn generate(key_type: KeyType) -> Result<Self, Error> {
        match key_type {
            KeyType::Ecdsa => {
                let doc = EcdsaKeyPair::generate_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &rng(),
                )
                .map_err(|_| pk_err("ECDSA key generation failed"))?;
                let (scalar, point) = ec_parts_from_pkcs8(doc.as_ref())?;
                Self::from_ec_parts(&scalar, &point)
            }
            KeyType::Ed25519 => {
                let mut seed = Zeroizing::new([0u8; 32]);
                rng()
                    .fill(&mut seed[..])
                    .map_err(|_| pk_err("no randomness"))?;
                Self::from_ed25519_seed(&seed[..])
            }
            other => Err(Error::PrivateKey(format!(
                "cannot generate {other} keys (notary generates ecdsa and ed25519 only)"
            ))),
        }
    }

    /// Load notary's private bytes for `key_type` (§2.9 encodings).
    pub fn from_notary_bytes(key_type: KeyType, private: &[u8]) -> Result<Self, Error> {
        match key_type {
            KeyType::Ecdsa | KeyType::EcdsaX509 => {
                let (scalar, point) = parse_sec1(private)?;
                Self::from_ec_parts(&scalar, &point)
            }
            KeyType::Ed25519 => {
                if private.len() != 96 {
                    return Err(pk_err("malformed ed25519 private key (expected 96 bytes)"));
                }
                let key = Self::from_ed25519_seed(&private[32..64])?;
                if key.public.public != private[..32] || private[64..] != private[..32] {
                    return Err(pk_err("ed25519 private key does not match its public half"));
                }
                Ok(key)
            }
            KeyType::Rsa | KeyType::RsaX509 => {
                let pair = RsaKeyPair::from_der(private)
                    .map_err(|e| pk_err(format!("invalid RSA key: {e}")))?;
                let pkcs1 = pair.public().as_ref().to_vec();
                let null = asn1::tlv(asn1::TAG_NULL, &[]);
                let alg = asn1::sequence(&[&asn1::tlv(asn1::TAG_OID, asn1::OID_RSA), &null]);
                let mut bits = vec![0u8];
                bits.extend_from_slice(&pkcs1);
                let spki = asn1::sequence(&[&alg, &asn1::tlv(asn1::TAG_BIT_STRING, &bits)]);
                Ok(PrivateKey {
                    key_type: KeyType::Rsa,
                    private: Zeroizing::new(private.to_vec()),
                    public: PublicKey::new(KeyType::Rsa, spki),
                    inner: Inner::Rsa(pair),
                })
            }
        }
    }

    fn from_ec_parts(scalar: &[u8], point: &[u8]) -> Result<Self, Error> {
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            scalar,
            point,
            &rng(),
        )
        .map_err(|e| pk_err(format!("invalid P-256 key: {e}")))?;
        Ok(PrivateKey {
            key_type: KeyType::Ecdsa,
            private: Zeroizing::new(sec1(scalar, point)),
            public: PublicKey::ecdsa_p256_from_point(point),
            inner: Inner::Ecdsa(pair),
        })
    }

    fn from_ed25519_seed(seed: &[u8]) -> Result<Self, Error> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| pk_err(format!("invalid ed25519 seed: {e}")))?;
        let public = pair.public_key().as_ref().to_vec();
        let mut blob = Zeroizing::new(Vec::with_capacity(96));
        blob.extend_from_slice(&public);
        blob.extend_from_slice(seed);
        blob.extend_from_slice(&public);
        Ok(PrivateKey {
            key_type: KeyType::Ed25519,
            private: blob,
            public: PublicKey::new(KeyType::Ed25519, public),
            inner: Inner::Ed25519(pair),
        })
    }

    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// Notary's private bytes (§2.9): what the signer encrypts into its JWE.
    pub fn notary_bytes(&self) -> &[u8] {
        &self.private
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The key's canonical ID (of the plain public key): the name of its key file.
    pub fn id(&self) -> String {
        self.public.id()
    }

    /// Signature method written next to signatures by this key.
    pub fn method(&self) -> &'static str {
        self.key_type.signature_method()
    }

    /// Sign `msg` as notary does (ECDSA raw r||s, Ed25519, RSA-PSS-SHA256).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        let fail = |reason: &str| Error::Signing {
            key_id: self.id(),
            reason: reason.to_string(),
        };
        match &self.inner {
            Inner::Ecdsa(k) => k
                .sign(&rng(), msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| fail("ECDSA signing failed")),
            Inner::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
            Inner::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(&signature::RSA_PSS_SHA256, &rng(), msg, &mut sig)
                    .map_err(|_| fail("RSA-PSS signing failed"))?;
                Ok(sig)
            }
        }
    }

    /// The modulus size of an RSA key in bits (None for other keys).
    pub fn rsa_bits(&self) -> Option<usize> {
        match &self.inner {
            Inner::Rsa(k) => Some(k.public().modulus_len() * 8),
            _ => None,
        }
    }

    /// RSASSA-PSS over `msg` with `hash` (MGF1 with the same hash, salt as long as the hash),
    /// for formats other than notary's: Notation pairs the hash with the modulus size, while
    /// notary's RSA signatures are always SHA-256 ([`Self::sign`]). RSA keys only.
    pub fn sign_rsa_pss(&self, msg: &[u8], hash: PssHash) -> Result<Vec<u8>, Error> {
        let fail = |reason: &str| Error::Signing {
            key_id: self.id(),
            reason: reason.to_string(),
        };
        let Inner::Rsa(k) = &self.inner else {
            return Err(fail("RSASSA-PSS needs an RSA key"));
        };
        let alg: &'static dyn signature::RsaEncoding = match hash {
            PssHash::Sha256 => &signature::RSA_PSS_SHA256,
            PssHash::Sha384 => &signature::RSA_PSS_SHA384,
            PssHash::Sha512 => &signature::RSA_PSS_SHA512,
        };
        let mut sig = vec![0u8; k.public().modulus_len()];
        k.sign(alg, &rng(), msg, &mut sig)
            .map_err(|_| fail("RSA-PSS signing failed"))?;
        Ok(sig)
    }

    /// Notary's PKCS#8 form of this key (`convertTUFKeyToPKCS8`).
    pub fn to_notary_pkcs8(&self) -> Zeroizing<Vec<u8>> {
        let (version, alg) = match self.key_type {
            KeyType::Ecdsa | KeyType::EcdsaX509 => (
                1,
                asn1::sequence(&[
                    &asn1::tlv(asn1::TAG_OID, asn1::OID_EC_PUBLIC_KEY),
                    &asn1::tlv(asn1::TAG_OID, asn1::OID_P256),
                ]),
            ),
            KeyType::Rsa | KeyType::RsaX509 => (
                0,
                asn1::sequence(&[&asn1::tlv(asn1::TAG_OID, asn1::OID_RSA)]),
            ),
            KeyType::Ed25519 => (
                0,
                asn1::sequence(&[&asn1::tlv(asn1::TAG_OID, asn1::OID_NOTARY_ED25519)]),
            ),
        };
        let octets = Zeroizing::new(asn1::tlv(asn1::TAG_OCTET_STRING, &self.private));
        Zeroizing::new(asn1::sequence(&[&asn1::small_int(version), &alg, &octets]))
    }

    /// Read a PKCS#8 private key as notary writes it, and the standard forms Go's
    /// `x509.ParsePKCS8PrivateKey` accepts for EC and RSA. Trailing bytes (CBC padding that Go
    /// never strips) are ignored, as Go's `asn1.Unmarshal` does.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, Error> {
        let mut outer = Reader::new(der);
        let body = outer.expect(asn1::TAG_SEQUENCE, "PrivateKeyInfo")?;
        let mut r = Reader::new(body);
        let version = asn1::read_small_int(r.expect(asn1::TAG_INTEGER, "version")?)?;
        if version > 1 {
            return Err(pk_err(format!("unsupported PKCS#8 version {version}")));
        }
        let mut alg = Reader::new(r.expect(asn1::TAG_SEQUENCE, "AlgorithmIdentifier")?);
        let oid = alg.expect(asn1::TAG_OID, "algorithm OID")?;
        let private = r.expect(asn1::TAG_OCTET_STRING, "privateKey")?;
        match oid {
            o if o == asn1::OID_EC_PUBLIC_KEY => {
                if alg.is_empty() || alg.expect(asn1::TAG_OID, "curve")? != asn1::OID_P256 {
                    return Err(pk_err("only P-256 ECDSA keys are supported"));
                }
                Self::from_notary_bytes(KeyType::Ecdsa, private)
            }
            o if o == asn1::OID_RSA => Self::from_notary_bytes(KeyType::Rsa, private),
            o if o == asn1::OID_NOTARY_ED25519 => {
                Self::from_notary_bytes(KeyType::Ed25519, private)
            }
            _ => Err(pk_err("unsupported key algorithm in PKCS#8")),
        }
    }
}

/// The hash of an RSASSA-PSS signature ([`PrivateKey::sign_rsa_pss`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PssHash {
    Sha256,
    Sha384,
    Sha512,
}

/// Go's `MarshalECPrivateKey` for P-256.
fn sec1(scalar: &[u8], point: &[u8]) -> Vec<u8> {
    let mut padded = Zeroizing::new(vec![0u8; 32usize.saturating_sub(scalar.len())]);
    padded.extend_from_slice(scalar);
    let priv_octets = Zeroizing::new(asn1::tlv(asn1::TAG_OCTET_STRING, &padded));
    let curve = asn1::tlv(0xa0, &asn1::tlv(asn1::TAG_OID, asn1::OID_P256));
    let mut bits = vec![0u8];
    bits.extend_from_slice(point);
    let public = asn1::tlv(0xa1, &asn1::tlv(asn1::TAG_BIT_STRING, &bits));
    asn1::sequence(&[&asn1::small_int(1), &priv_octets, &curve, &public])
}

/// (scalar, uncompressed point) of a SEC1 `ECPrivateKey`; the public point is required.
fn parse_sec1(der: &[u8]) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), Error> {
    let mut outer = Reader::new(der);
    let mut r = Reader::new(outer.expect(asn1::TAG_SEQUENCE, "ECPrivateKey")?);
    if asn1::read_small_int(r.expect(asn1::TAG_INTEGER, "version")?)? != 1 {
        return Err(pk_err("unsupported ECPrivateKey version"));
    }
    let scalar = Zeroizing::new(r.expect(asn1::TAG_OCTET_STRING, "privateKey")?.to_vec());
    let mut point = None;
    while !r.is_empty() {
        let (tag, body) = r.next()?;
        match tag {
            0xa0 if Reader::new(body).expect(asn1::TAG_OID, "curve")? != asn1::OID_P256 => {
                return Err(pk_err("only P-256 ECDSA keys are supported"));
            }
            0xa1 => {
                let bits = Reader::new(body).expect(asn1::TAG_BIT_STRING, "publicKey")?;
                point = Some(
                    bits.get(1..)
                        .ok_or_else(|| pk_err("empty public key"))?
                        .to_vec(),
                );
            }
            _ => {}
        }
    }
    let point =
        point.ok_or_else(|| pk_err("ECPrivateKey without its public key is not supported"))?;
    Ok((scalar, point))
}

/// (scalar, point) from ring's PKCS#8 v1 P-256 document.
fn ec_parts_from_pkcs8(doc: &[u8]) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), Error> {
    let mut outer = Reader::new(doc);
    let mut r = Reader::new(outer.expect(asn1::TAG_SEQUENCE, "PrivateKeyInfo")?);
    r.expect(asn1::TAG_INTEGER, "version")?;
    r.expect(asn1::TAG_SEQUENCE, "AlgorithmIdentifier")?;
    parse_sec1(r.expect(asn1::TAG_OCTET_STRING, "privateKey")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_notary_encodings() {
        for kt in [KeyType::Ecdsa, KeyType::Ed25519] {
            let key = PrivateKey::generate(kt).unwrap();
            let again = PrivateKey::from_notary_bytes(kt, key.notary_bytes()).unwrap();
            assert_eq!(key.public_key(), again.public_key());
            let from_p8 = PrivateKey::from_pkcs8(&key.to_notary_pkcs8()).unwrap();
            assert_eq!(key.public_key(), from_p8.public_key());
            let sig = key.sign(b"message").unwrap();
            key.public_key()
                .verify(key.method(), b"message", &sig)
                .unwrap();
            assert!(
                key.public_key()
                    .verify(key.method(), b"messagf", &sig)
                    .is_err()
            );
        }
        assert!(PrivateKey::generate(KeyType::Rsa).is_err());
    }

    #[test]
    fn ecdsa_private_bytes_are_go_sec1() {
        let key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
        let b = key.notary_bytes();
        // SEQUENCE(119) { INTEGER 1, OCTET STRING(32), [0] OID P-256, [1] BIT STRING(66) }
        assert_eq!(&b[..7], &[0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20]);
        assert_eq!(b.len(), 121);
    }
}
