//! Key encodings between notary's signer wire and Cosign's: the Sign RPC answers ECDSA in
//! notary's raw `r||s`, Cosign wants ASN.1 DER and a PEM `PUBLIC KEY`.

use trustbridge_tuf::{KeyType, PublicKey};

/// A key or signature that cannot take the asked-for encoding.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Notary's P-256 signatures are 64 bytes (`r||s`, 32 each).
    #[error("expected a 64-byte r||s signature, got {0} bytes")]
    SignatureLength(usize),
    /// Cosign's key file and `cosign.pub` carry ECDSA keys only.
    #[error("the cosign key must be an ECDSA key, not {0:?}")]
    NotEcdsa(KeyType),
}

/// Cosign stores ECDSA signatures as ASN.1 DER `SEQUENCE { r, s }` (Go's `ecdsa.VerifyASN1`);
/// the Sign RPC returns notary's raw `r||s`. Converts one to the other.
pub fn raw_to_der(raw: &[u8]) -> Result<Vec<u8>, KeyError> {
    if raw.len() != 64 {
        return Err(KeyError::SignatureLength(raw.len()));
    }
    fn integer(x: &[u8]) -> Vec<u8> {
        let start = x.iter().position(|b| *b != 0).unwrap_or(x.len() - 1);
        let mut v = x[start..].to_vec();
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend_from_slice(&v);
        out
    }
    let (r, s) = (integer(&raw[..32]), integer(&raw[32..]));
    let mut out = vec![0x30, (r.len() + s.len()) as u8];
    out.extend_from_slice(&r);
    out.extend_from_slice(&s);
    Ok(out)
}

/// `cosign.pub`: PEM `PUBLIC KEY` over the DER SubjectPublicKeyInfo.
pub fn public_pem(key: &PublicKey) -> Result<String, KeyError> {
    if key.key_type != KeyType::Ecdsa {
        return Err(KeyError::NotEcdsa(key.key_type));
    }
    Ok(pem::encode(&pem::Pem::new(
        "PUBLIC KEY",
        key.public.clone(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_of_high_bit_and_leading_zero_halves() {
        let mut raw = [0u8; 64];
        raw[0] = 0x80; // r needs a 0x00 pad
        raw[32] = 0;
        raw[33] = 0x01; // s loses its leading zero
        let der = raw_to_der(&raw).unwrap();
        assert_eq!(&der[..5], &[0x30, der.len() as u8 - 2, 0x02, 33, 0x00]);
        assert!(matches!(
            raw_to_der(&[0u8; 10]),
            Err(KeyError::SignatureLength(10))
        ));
    }
}
