//! Registry bearer tokens as notary-server checks them (reference §7.4, docker/distribution's
//! `registry/auth/token`): three base64url parts, `alg` one of ES256/384/512 and RS256/384/512
//! (never `none`), the signing key named by an `x5c` chain leading to the root bundle or by a
//! `kid` equal to the libtrust fingerprint of a root certificate's key, `iss` and the single
//! string `aud`, `exp`/`nbf` with 60 s leeway, and the `access` claim. Verified with ring and
//! x509-parser (jsonwebtoken has no ring backend).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde::Deserialize;
use x509_parser::prelude::*;

/// Clock skew tolerated on `exp` and `nbf`, as in docker/distribution.
pub const LEEWAY_SECONDS: i64 = 60;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ResourceActions {
    #[serde(rename = "type")]
    pub typ: String,
    pub name: String,
    #[serde(default)]
    pub actions: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub iss: String,
    #[serde(default)]
    pub sub: String,
    /// A single string in notary's vendored library; an array is a malformed token.
    #[serde(default)]
    pub aud: String,
    #[serde(default)]
    pub exp: i64,
    #[serde(default)]
    pub nbf: i64,
    #[serde(default)]
    pub access: Vec<ResourceActions>,
}

#[derive(Debug, Deserialize)]
struct Header {
    #[serde(default)]
    alg: String,
    #[serde(default)]
    kid: String,
    #[serde(default)]
    x5c: Vec<String>,
}

/// The root bundle: certificates (DER) whose keys or chains may sign tokens.
pub struct Roots {
    certs: Vec<Vec<u8>>,
}

/// Why a bearer token (or the root bundle that checks tokens) was refused. The kinds follow
/// what the operator or client can do: a malformed or untrusted token is the client's, an
/// unreadable bundle is the config's. Every token kind is answered as `invalid_token`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT this server can read (parts, base64url, JSON).
    #[error("{0}")]
    Malformed(String),
    /// An algorithm the server does not accept.
    #[error("{0}")]
    Algorithm(String),
    /// Issuer, audience or validity window wrong for this server now.
    #[error("{0}")]
    Claims(String),
    /// Signed by no key of the root bundle, or the signature does not verify.
    #[error("{0}")]
    Untrusted(String),
    /// `auth.options.rootcertbundle` cannot be used.
    #[error("root bundle: {0}")]
    Bundle(String),
}

fn b64url(s: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed("token part is not base64url".into()))
}

/// libtrust's key ID: SHA-256 of the DER SPKI, first 240 bits, base32 (no padding) in twelve
/// colon-separated groups of four.
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let h = ring::digest::digest(&ring::digest::SHA256, spki_der);
    let bytes = &h.as_ref()[..30];
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = String::new();
    for b in bytes {
        bits = (bits << 8) | u32::from(*b);
        nbits += 8;
        while nbits >= 5 {
            nbits -= 5;
            out.push(ALPHABET[((bits >> nbits) & 31) as usize] as char);
        }
    }
    out.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(":")
}

fn algorithm(alg: &str) -> Result<&'static dyn VerificationAlgorithm, TokenError> {
    Ok(match alg {
        "ES256" => &signature::ECDSA_P256_SHA256_FIXED,
        "ES384" => &signature::ECDSA_P384_SHA384_FIXED,
        "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
        "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
        "ES512" => {
            return Err(TokenError::Algorithm(
                "ES512 (P-521) tokens are not supported by this server".into(),
            ));
        }
        other => {
            return Err(TokenError::Algorithm(format!(
                "signing algorithm {other:?} is not accepted"
            )));
        }
    })
}

/// The key bytes ring verifies with: the EC point or the RSA PKCS#1 key inside an SPKI.
fn spki_key(spki_der: &[u8]) -> Result<Vec<u8>, TokenError> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| TokenError::Untrusted(format!("signing key: {e}")))?;
    Ok(spki.subject_public_key.data.to_vec())
}

impl Roots {
    pub fn from_pem(pem_text: &[u8]) -> Result<Roots, TokenError> {
        let certs: Vec<Vec<u8>> = ::pem::parse_many(pem_text)
            .map_err(|e| TokenError::Bundle(e.to_string()))?
            .into_iter()
            .filter(|p| p.tag() == "CERTIFICATE")
            .map(|p| p.contents().to_vec())
            .collect();
        if certs.is_empty() {
            return Err(TokenError::Bundle("it holds no CERTIFICATE".into()));
        }
        Ok(Roots { certs })
    }

    /// Verify the `x5c` chain (leaf first, then intermediates) up to a root certificate, valid
    /// now; returns the leaf's SPKI.
    fn verify_chain(&self, chain: &[Vec<u8>], now: i64) -> Result<Vec<u8>, TokenError> {
        let parsed: Vec<X509Certificate<'_>> = chain
            .iter()
            .map(|d| {
                X509Certificate::from_der(d)
                    .map(|(_, c)| c)
                    .map_err(|e| TokenError::Malformed(format!("x5c: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let roots: Vec<X509Certificate<'_>> = self
            .certs
            .iter()
            .filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c))
            .collect();
        let valid = |c: &X509Certificate<'_>| {
            let v = c.validity();
            v.not_before.timestamp() <= now && now <= v.not_after.timestamp()
        };
        let leaf = parsed
            .first()
            .ok_or_else(|| TokenError::Malformed("empty x5c".into()))?;
        let mut cur = leaf;
        for _ in 0..=parsed.len() {
            if !valid(cur) {
                return Err(TokenError::Untrusted(
                    "a certificate in x5c is not valid now".into(),
                ));
            }
            // The current certificate is itself a root, or is signed by one.
            if roots
                .iter()
                .any(|r| r.tbs_certificate.as_ref() == cur.tbs_certificate.as_ref())
            {
                return Ok(leaf.public_key().raw.to_vec());
            }
            if let Some(r) = roots.iter().find(|r| {
                r.subject() == cur.issuer() && cur.verify_signature(Some(r.public_key())).is_ok()
            }) {
                if !valid(r) {
                    return Err(TokenError::Untrusted(
                        "the root certificate is not valid now".into(),
                    ));
                }
                return Ok(leaf.public_key().raw.to_vec());
            }
            cur = parsed
                .iter()
                .find(|p| {
                    p.subject() == cur.issuer()
                        && cur.verify_signature(Some(p.public_key())).is_ok()
                        && !std::ptr::eq(*p, cur)
                })
                .ok_or_else(|| {
                    TokenError::Untrusted("x5c does not chain to the root bundle".into())
                })?;
        }
        Err(TokenError::Untrusted(
            "x5c does not chain to the root bundle".into(),
        ))
    }

    /// The root certificate key whose libtrust ID is `kid`.
    fn by_kid(&self, kid: &str) -> Option<Vec<u8>> {
        self.certs.iter().find_map(|d| {
            let (_, c) = X509Certificate::from_der(d).ok()?;
            let spki = c.public_key().raw;
            (libtrust_key_id(spki) == kid).then(|| spki.to_vec())
        })
    }

    /// Check `token` (the text after `Bearer `) and return its claims; every error is an
    /// `invalid_token` for the challenge.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        service: &str,
        now: i64,
    ) -> Result<Claims, TokenError> {
        let parts: Vec<&str> = token.split('.').collect();
        let [h, c, s] = parts[..] else {
            return Err(TokenError::Malformed("token must have three parts".into()));
        };
        let header: Header = serde_json::from_slice(&b64url(h)?)
            .map_err(|e| TokenError::Malformed(format!("token header: {e}")))?;
        let claims: Claims = serde_json::from_slice(&b64url(c)?)
            .map_err(|e| TokenError::Malformed(format!("token claims: {e}")))?;
        let sig = b64url(s)?;
        if sig.is_empty() {
            return Err(TokenError::Untrusted("token is not signed".into()));
        }
        if claims.iss != issuer {
            return Err(TokenError::Claims("token has the wrong issuer".into()));
        }
        if claims.aud != service {
            return Err(TokenError::Claims(
                "token is for another service (aud)".into(),
            ));
        }
        if now > claims.exp + LEEWAY_SECONDS {
            return Err(TokenError::Claims("token has expired".into()));
        }
        if now < claims.nbf - LEEWAY_SECONDS {
            return Err(TokenError::Claims("token is not valid yet".into()));
        }
        let alg = algorithm(&header.alg)?;
        let spki = if !header.x5c.is_empty() {
            let chain: Vec<Vec<u8>> = header
                .x5c
                .iter()
                .map(|c| {
                    STANDARD
                        .decode(c)
                        .map_err(|_| TokenError::Malformed("x5c entry is not base64".into()))
                })
                .collect::<Result<_, _>>()?;
            self.verify_chain(&chain, now)?
        } else if !header.kid.is_empty() {
            self.by_kid(&header.kid).ok_or_else(|| {
                TokenError::Untrusted("kid names no key of the root bundle".into())
            })?
        } else {
            return Err(TokenError::Untrusted(
                "token names no signing key (x5c or kid)".into(),
            ));
        };
        let signed = format!("{h}.{c}");
        UnparsedPublicKey::new(alg, spki_key(&spki)?)
            .verify(signed.as_bytes(), &sig)
            .map_err(|_| TokenError::Untrusted("token signature does not verify".into()))?;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtrust_key_id_shape() {
        let id = libtrust_key_id(b"any spki bytes");
        assert_eq!(id.len(), 12 * 4 + 11);
        assert_eq!(id.split(':').count(), 12);
        assert!(
            id.chars()
                .all(|c| c == ':' || c.is_ascii_uppercase() || ('2'..='7').contains(&c))
        );
    }
}
