//! notary-signer's at-rest encryption of a private key: a JWE compact serialisation with
//! `alg` PBES2-HS256+A128KW and `enc` A256GCM (jose2go, as `signer/keydbstore` uses it).
//!
//! * Protected header (Go marshals a map, so keys are sorted):
//!   `{"alg":"PBES2-HS256+A128KW","enc":"A256GCM","p2c":8192,"p2s":"<base64url salt>"}`.
//! * Key-encryption key: PBKDF2-HMAC-SHA256(passphrase, `alg || 0x00 || p2s`, p2c, 16 bytes)
//!   (RFC 7518 §4.8.1.1), which AES-128-KW-wraps a random 32-byte content key.
//! * Content: AES-256-GCM with a 12-byte IV, AAD = the ASCII of the encoded protected header.
//! * Plaintext: notary's private key bytes ([`crate::PrivateKey::notary_bytes`]).
//!
//! Rows encrypted this way move between notary-signer and trustbridge-signer unchanged.

use std::num::NonZeroU32;

use aes_kw::KeyInit as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::Error;

pub const ALG: &str = "PBES2-HS256+A128KW";
pub const ENC: &str = "A256GCM";
/// notary-signer's PBKDF2 iteration count.
pub const DEFAULT_ITERATIONS: u32 = 8192;
/// The most PBKDF2 iterations a JWE may ask for. `p2c` comes from the row itself, so without a
/// bound one row (or a backup file) could hold a process in key derivation for hours (u32::MAX
/// iterations); go-jose bounds it too. Our backups use 600,000; notary-signer 8,192.
pub const MAX_ITERATIONS: u32 = 10_000_000;

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    enc: String,
    p2c: u32,
    p2s: String,
}

fn kek(passphrase: &str, p2s: &[u8], p2c: u32) -> Result<Zeroizing<[u8; 16]>, Error> {
    if p2c > MAX_ITERATIONS {
        return Err(Error::Jwe(format!(
            "p2c {p2c} is above the {MAX_ITERATIONS} PBKDF2 iterations allowed"
        )));
    }
    let iterations =
        NonZeroU32::new(p2c).ok_or_else(|| Error::Jwe("p2c must be positive".into()))?;
    let mut salt = ALG.as_bytes().to_vec();
    salt.push(0);
    salt.extend_from_slice(p2s);
    let mut out = Zeroizing::new([0u8; 16]);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        passphrase.as_bytes(),
        &mut out[..],
    );
    Ok(out)
}

/// Encrypt `plaintext` under `passphrase` as notary-signer does.
pub fn encrypt(plaintext: &[u8], passphrase: &str) -> Result<String, Error> {
    encrypt_with_iterations(plaintext, passphrase, DEFAULT_ITERATIONS)
}

pub fn encrypt_with_iterations(
    plaintext: &[u8],
    passphrase: &str,
    p2c: u32,
) -> Result<String, Error> {
    let rng = SystemRandom::new();
    let no_rng = |_| Error::Jwe("no randomness".into());
    let mut p2s = [0u8; 12];
    let mut cek = Zeroizing::new([0u8; 32]);
    let mut iv = [0u8; 12];
    rng.fill(&mut p2s).map_err(no_rng)?;
    rng.fill(&mut cek[..]).map_err(no_rng)?;
    rng.fill(&mut iv).map_err(no_rng)?;
    let header = Header {
        alg: ALG.into(),
        enc: ENC.into(),
        p2c,
        p2s: B64URL.encode(p2s),
    };
    let header_b64 =
        B64URL.encode(serde_json::to_vec(&header).map_err(|e| Error::Jwe(e.to_string()))?);
    let kek = kek(passphrase, &p2s, p2c)?;
    let wrapper = aes_kw::KwAes128::new((&*kek).into());
    let mut wrapped = [0u8; 40];
    let wrapped = wrapper
        .wrap_key(&cek[..], &mut wrapped)
        .map_err(|e| Error::Jwe(format!("key wrap: {e}")))?;
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &cek[..])
            .map_err(|_| Error::Jwe("bad content key".into()))?,
    );
    let mut buf = plaintext.to_vec();
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(header_b64.as_bytes()),
            &mut buf,
        )
        .map_err(|_| Error::Jwe("encryption failed".into()))?;
    let out = format!(
        "{header_b64}.{}.{}.{}.{}",
        B64URL.encode(wrapped),
        B64URL.encode(iv),
        B64URL.encode(&buf),
        B64URL.encode(tag.as_ref())
    );
    zeroize::Zeroize::zeroize(&mut buf);
    Ok(out)
}

/// Decrypt a notary-signer JWE. A wrong passphrase fails the key unwrap (its integrity check).
pub fn decrypt(jwe: &str, passphrase: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let parts: Vec<&str> = jwe.trim().split('.').collect();
    let [h, ek, iv, ct, tag] = parts[..] else {
        return Err(Error::Jwe("not a compact JWE (expected 5 parts)".into()));
    };
    let dec = |s: &str, what: &str| {
        B64URL
            .decode(s)
            .map_err(|_| Error::Jwe(format!("{what} is not base64url")))
    };
    let header: Header = serde_json::from_slice(&dec(h, "header")?)
        .map_err(|e| Error::Jwe(format!("header: {e}")))?;
    if header.alg != ALG || header.enc != ENC {
        return Err(Error::Jwe(format!(
            "unsupported alg/enc {}/{}",
            header.alg, header.enc
        )));
    }
    let kek = kek(passphrase, &dec(&header.p2s, "p2s")?, header.p2c)?;
    let unwrapper = aes_kw::KwAes128::new((&*kek).into());
    let ek = dec(ek, "encrypted key")?;
    let mut cek = Zeroizing::new(vec![0u8; ek.len().saturating_sub(8)]);
    unwrapper
        .unwrap_key(&ek, &mut cek)
        .map_err(|_| Error::WrongPassphrase)?;
    if cek.len() != 32 {
        return Err(Error::Jwe("content key is not 32 bytes".into()));
    }
    let iv: [u8; 12] = dec(iv, "IV")?
        .try_into()
        .map_err(|_| Error::Jwe("IV is not 12 bytes".into()))?;
    let mut buf = Zeroizing::new(dec(ct, "ciphertext")?);
    buf.extend_from_slice(&dec(tag, "tag")?);
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &cek).map_err(|_| Error::Jwe("bad content key".into()))?,
    );
    let n = key
        .open_in_place(
            Nonce::assume_unique_for_key(iv),
            Aad::from(h.as_bytes()),
            &mut buf,
        )
        .map_err(|_| Error::Jwe("ciphertext does not authenticate".into()))?
        .len();
    buf.truncate(n);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unbounded_iteration_count_is_refused_before_any_derivation() {
        let jwe = encrypt_with_iterations(b"k", "s3cret", 1000).unwrap();
        let (header, rest) = jwe.split_once('.').unwrap();
        let mut h: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(header).unwrap()).unwrap();
        h["p2c"] = u32::MAX.into();
        let forged = format!("{}.{rest}", B64URL.encode(h.to_string()));
        let start = std::time::Instant::now();
        let err = decrypt(&forged, "s3cret").unwrap_err().to_string();
        assert!(err.contains("p2c"), "{err}");
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn round_trip_and_wrong_passphrase() {
        let jwe = encrypt_with_iterations(b"private key bytes", "s3cret", 1000).unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(jwe.split('.').next().unwrap()).unwrap())
                .unwrap();
        assert_eq!(header["alg"], ALG);
        assert_eq!(header["enc"], ENC);
        assert_eq!(&decrypt(&jwe, "s3cret").unwrap()[..], b"private key bytes");
        assert_eq!(decrypt(&jwe, "other").unwrap_err(), Error::WrongPassphrase);
        let mut tampered: Vec<String> = jwe.split('.').map(str::to_string).collect();
        tampered[3] = B64URL.encode(b"xxxxxxxxxxxxxxxxx");
        assert!(decrypt(&tampered.join("."), "s3cret").is_err());
    }
}
