//! Private key files as the notary client and `docker trust` keep them in
//! `<trust_dir>/private/<canonical key ID>.key`.
//!
//! A file is one PEM block, `ENCRYPTED PRIVATE KEY` (or `PRIVATE KEY` without a passphrase),
//! with the headers `gun:` (only for targets/snapshot/timestamp keys) and `role:`, sorted, then
//! a blank line. The body is PKCS#8 in notary's non-standard form ([`PrivateKey::to_notary_pkcs8`]),
//! encrypted as `tuf/utils/pkcs8.go` does: PBES2, PBKDF2-HMAC-SHA1 (no PRF parameter written),
//! 2048 iterations, 8-byte salt, AES-256-CBC with a 16-byte IV and PKCS#7 padding.

use std::num::NonZeroU32;

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
use base64::Engine as _;
use ring::rand::SecureRandom;
use zeroize::Zeroizing;

use crate::asn1::{self, Reader};
use crate::error::Error;
use crate::private::PrivateKey;

const OID_PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
const OID_PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
const OID_HMAC_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x07];
const ITERATIONS: u32 = 2048;

/// A key read from a key file, with its PEM headers.
#[derive(Debug)]
pub struct KeyFile {
    pub key: PrivateKey,
    pub role: Option<String>,
    pub gun: Option<String>,
}

/// Whether notary writes a `gun:` header for `role`: only for targets, snapshot and timestamp
/// keys (root keys, delegation keys and docker signer names have none).
pub fn role_has_gun_header(role: &str) -> bool {
    matches!(role, "targets" | "snapshot" | "timestamp")
}

/// Write `key` as notary does. An empty passphrase writes an unencrypted `PRIVATE KEY`.
pub fn encode(
    key: &PrivateKey,
    role: &str,
    gun: Option<&str>,
    passphrase: &str,
) -> Result<String, Error> {
    let pkcs8 = key.to_notary_pkcs8();
    let (tag, body) = if passphrase.is_empty() {
        ("PRIVATE KEY", pkcs8.to_vec())
    } else {
        ("ENCRYPTED PRIVATE KEY", encrypt(&pkcs8, passphrase)?)
    };
    // Go's pem.Encode: headers sorted by name ("gun" before "role"), a blank line, base64 in
    // 64-column lines. Written by hand: the pem crate refuses ':' in header values, and GUNs
    // of registries with a port (`registry.example:5000/team/app`) have one.
    let mut out = format!("-----BEGIN {tag}-----\n");
    if let Some(g) = gun.filter(|_| role_has_gun_header(role)) {
        out.push_str(&format!("gun: {}\n", header_value(g)?));
    }
    out.push_str(&format!("role: {}\n\n", header_value(role)?));
    let b64 = base64::engine::general_purpose::STANDARD.encode(&body);
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {tag}-----\n"));
    Ok(out)
}

fn header_value(v: &str) -> Result<&str, Error> {
    if v.contains('\n') || v.contains('\r') {
        return Err(Error::PrivateKey(format!(
            "PEM header value {v:?} has a line break"
        )));
    }
    Ok(v)
}

/// Read a key file. A wrong passphrase is [`Error::WrongPassphrase`].
pub fn decode(text: &[u8], passphrase: &str) -> Result<KeyFile, Error> {
    let pem =
        pem::parse(text).map_err(|e| Error::PrivateKey(format!("not a PEM key file: {e}")))?;
    let role = pem.headers().get("role").map(str::to_string);
    let gun = pem.headers().get("gun").map(str::to_string);
    let key = match pem.tag() {
        "ENCRYPTED PRIVATE KEY" => {
            let plain = decrypt_pkcs8(pem.contents(), passphrase)?;
            PrivateKey::from_pkcs8(&plain).map_err(|_| Error::WrongPassphrase)?
        }
        "PRIVATE KEY" => PrivateKey::from_pkcs8(pem.contents())?,
        "EC PRIVATE KEY" => PrivateKey::from_notary_bytes(crate::KeyType::Ecdsa, pem.contents())?,
        "RSA PRIVATE KEY" => PrivateKey::from_notary_bytes(crate::KeyType::Rsa, pem.contents())?,
        "ED25519 PRIVATE KEY" => {
            PrivateKey::from_notary_bytes(crate::KeyType::Ed25519, pem.contents())?
        }
        other => return Err(Error::PrivateKey(format!("unsupported PEM type {other:?}"))),
    };
    Ok(KeyFile { key, role, gun })
}

fn derive(passphrase: &str, salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    let iterations = NonZeroU32::new(iterations.max(1)).expect("non-zero");
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA1,
        iterations,
        salt,
        passphrase.as_bytes(),
        &mut key[..],
    );
    key
}

/// `EncryptedPrivateKeyInfo` DER, with Go's exact parameter layout.
fn encrypt(plain: &[u8], passphrase: &str) -> Result<Vec<u8>, Error> {
    let rng = ring::rand::SystemRandom::new();
    let mut salt = [0u8; 8];
    let mut iv = [0u8; 16];
    rng.fill(&mut salt)
        .and_then(|_| rng.fill(&mut iv))
        .map_err(|_| Error::PrivateKey("no randomness".into()))?;
    let key = derive(passphrase, &salt, ITERATIONS);
    let ct = cbc::Encryptor::<aes::Aes256>::new((&*key).into(), (&iv).into())
        .encrypt_padded_vec::<Pkcs7>(plain);
    let iter = asn1::tlv(asn1::TAG_INTEGER, &[0x08, 0x00]);
    let kdf_params = asn1::sequence(&[&asn1::tlv(asn1::TAG_OCTET_STRING, &salt), &iter]);
    let kdf = asn1::sequence(&[&asn1::tlv(asn1::TAG_OID, OID_PBKDF2), &kdf_params]);
    let enc = asn1::sequence(&[
        &asn1::tlv(asn1::TAG_OID, OID_AES256_CBC),
        &asn1::tlv(asn1::TAG_OCTET_STRING, &iv),
    ]);
    let pbes2 = asn1::sequence(&[
        &asn1::tlv(asn1::TAG_OID, OID_PBES2),
        &asn1::sequence(&[&kdf, &enc]),
    ]);
    Ok(asn1::sequence(&[
        &pbes2,
        &asn1::tlv(asn1::TAG_OCTET_STRING, &ct),
    ]))
}

/// The decrypted PKCS#8 bytes of an `ENCRYPTED PRIVATE KEY` body (padding removed).
pub fn decrypt_pkcs8(der: &[u8], passphrase: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let unsupported = |what: &str| {
        Error::PrivateKey(format!(
            "encrypted key: {what} (notary writes PBES2/PBKDF2/AES-256-CBC)"
        ))
    };
    let mut r =
        Reader::new(Reader::new(der).expect(asn1::TAG_SEQUENCE, "EncryptedPrivateKeyInfo")?);
    let mut alg = Reader::new(r.expect(asn1::TAG_SEQUENCE, "encryptionAlgorithm")?);
    if alg.expect(asn1::TAG_OID, "algorithm")? != OID_PBES2 {
        return Err(unsupported("only PBES2 is supported"));
    }
    let mut params = Reader::new(alg.expect(asn1::TAG_SEQUENCE, "PBES2-params")?);
    let mut kdf = Reader::new(params.expect(asn1::TAG_SEQUENCE, "keyDerivationFunc")?);
    if kdf.expect(asn1::TAG_OID, "kdf")? != OID_PBKDF2 {
        return Err(unsupported("only PBKDF2 is supported"));
    }
    let mut kp = Reader::new(kdf.expect(asn1::TAG_SEQUENCE, "PBKDF2-params")?);
    let salt = kp.expect(asn1::TAG_OCTET_STRING, "salt")?;
    let iterations = asn1::read_small_int(kp.expect(asn1::TAG_INTEGER, "iterationCount")?)?;
    if iterations == 0 || iterations > 10_000_000 {
        return Err(unsupported("iteration count out of range"));
    }
    // Optional keyLength INTEGER, then an optional PRF that must be HMAC-SHA1 (the default).
    while !kp.is_empty() {
        let (tag, body) = kp.next()?;
        if tag == asn1::TAG_SEQUENCE
            && Reader::new(body).expect(asn1::TAG_OID, "prf")? != OID_HMAC_SHA1
        {
            return Err(unsupported("only the HMAC-SHA1 PRF is supported"));
        }
    }
    let mut enc = Reader::new(params.expect(asn1::TAG_SEQUENCE, "encryptionScheme")?);
    if enc.expect(asn1::TAG_OID, "cipher")? != OID_AES256_CBC {
        return Err(unsupported("only AES-256-CBC is supported"));
    }
    let iv: [u8; 16] = enc
        .expect(asn1::TAG_OCTET_STRING, "IV")?
        .try_into()
        .map_err(|_| unsupported("IV is not 16 bytes"))?;
    let ct = r.expect(asn1::TAG_OCTET_STRING, "encryptedData")?;
    let key = derive(passphrase, salt, iterations as u32);
    let plain = cbc::Decryptor::<aes::Aes256>::new((&*key).into(), (&iv).into())
        .decrypt_padded_vec::<Pkcs7>(ct)
        .map_err(|_| Error::WrongPassphrase)?;
    Ok(Zeroizing::new(plain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyType;

    #[test]
    fn round_trip_with_and_without_passphrase() {
        for kt in [KeyType::Ecdsa, KeyType::Ed25519] {
            let key = PrivateKey::generate(kt).unwrap();
            let text = encode(&key, "targets", Some("example.com/a"), "pw").unwrap();
            assert!(text.starts_with(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\ngun: example.com/a\nrole: targets\n\n"
            ));
            let back = decode(text.as_bytes(), "pw").unwrap();
            assert_eq!(back.key.public_key(), key.public_key());
            assert_eq!(back.role.as_deref(), Some("targets"));
            assert_eq!(back.gun.as_deref(), Some("example.com/a"));
            assert_eq!(
                decode(text.as_bytes(), "wrong").unwrap_err(),
                Error::WrongPassphrase
            );
            let plain = encode(&key, "root", Some("ignored"), "").unwrap();
            assert!(plain.starts_with("-----BEGIN PRIVATE KEY-----\nrole: root\n\n"));
            assert_eq!(
                decode(plain.as_bytes(), "").unwrap().key.public_key(),
                key.public_key()
            );
        }
    }
}
