//! The certificate chain of a Notation signature (`signature-specification.md`, "Certificate
//! Requirements"): leaf first, then intermediates, ending in a self-signed root; each
//! certificate signed by the next. The leaf must carry keyUsage (critical) with
//! digitalSignature and none of the encipherment, agreement or CA bits, no CA
//! basicConstraints, and no extended key usage other than codeSigning (serverAuth, clientAuth,
//! emailProtection, timeStamping and anyExtendedKeyUsage are refused). Every CA certificate
//! must carry basicConstraints CA (critical) and keyUsage (critical) with keyCertSign, with
//! pathLenConstraint honoured. No SHA-1 signatures; RSA keys of 2048 bits or more, EC keys on
//! P-256 or P-384; the signing key itself is P-256 (ES256) or RSA 2048/3072/4096
//! (PS256/PS384/PS512). Notation verifies all of this again, so a chain that fails here would fail there.

use x509_parser::der_parser::oid::Oid;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_SHA1WITHRSA,
};
use x509_parser::prelude::*;

use crate::Error;

/// The JWS `alg` a chain's leaf key signs with (the spec's mapping from key to algorithm).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    /// ECDSA on P-256 with SHA-256; the signature is raw r||s.
    Es256,
    /// RSASSA-PSS with SHA-256, for RSA 2048 (also notary's `rsapss` method).
    Ps256,
    /// RSASSA-PSS with SHA-384, for RSA 3072.
    Ps384,
    /// RSASSA-PSS with SHA-512, for RSA 4096.
    Ps512,
}

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
        }
    }

    /// The signing algorithm for an RSA signing key of `bits`: the Notary Project fixes the
    /// hash by the modulus (2048 → PS256, 3072 → PS384, 4096 → PS512; notation-core-go's
    /// `ExtractKeySpec`) and accepts no other size.
    pub fn for_rsa_bits(bits: usize) -> Option<Alg> {
        match bits {
            2048 => Some(Alg::Ps256),
            3072 => Some(Alg::Ps384),
            4096 => Some(Alg::Ps512),
            _ => None,
        }
    }

    /// Verify `sig` over `msg` with the key in `spki` (DER SubjectPublicKeyInfo).
    pub fn verify(self, spki: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), Error> {
        let (_, info) = SubjectPublicKeyInfo::from_der(spki)
            .map_err(|e| Error::new(format!("the signing key does not parse: {e}")))?;
        let alg: &dyn ring::signature::VerificationAlgorithm = match self {
            Alg::Es256 => &ring::signature::ECDSA_P256_SHA256_FIXED,
            Alg::Ps256 => &ring::signature::RSA_PSS_2048_8192_SHA256,
            Alg::Ps384 => &ring::signature::RSA_PSS_2048_8192_SHA384,
            Alg::Ps512 => &ring::signature::RSA_PSS_2048_8192_SHA512,
        };
        ring::signature::UnparsedPublicKey::new(alg, &info.subject_public_key.data)
            .verify(msg, sig)
            .map_err(|_| Error::new("the signature does not verify with the signing certificate"))
    }
}

/// What a checked chain tells the signer and the bridge.
#[derive(Clone, Debug)]
pub struct ChainInfo {
    pub alg: Alg,
    /// The leaf's SubjectPublicKeyInfo (DER): which key must sign.
    pub leaf_spki: Vec<u8>,
    /// The leaf's subject, as `x509.subject:` in a trust policy names it.
    pub subject: String,
    pub not_before: ::time::OffsetDateTime,
    pub not_after: ::time::OffsetDateTime,
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, Error> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| Error::new(format!("a certificate does not parse: {e}")))
}

/// Size of an RSA key, or None for other keys.
fn rsa_bits(cert: &X509Certificate<'_>) -> Option<usize> {
    let spki = cert.public_key();
    if spki.algorithm.algorithm != OID_PKCS1_RSAENCRYPTION {
        return None;
    }
    Some(match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(k)) => k.key_size(),
        _ => 0,
    })
}

/// The named curve of an EC key, or None for other keys.
fn ec_curve(cert: &X509Certificate<'_>) -> Option<Option<Oid<'static>>> {
    let spki = cert.public_key();
    (spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY).then(|| {
        spki.algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_owned())
    })
}

/// Any certificate's key: RSA of 2048 bits or more, or EC on P-256 or P-384 (what Notation
/// and ring verify).
fn check_key(cert: &X509Certificate<'_>) -> Result<(), Error> {
    let name = cert.subject().to_string();
    if let Some(bits) = rsa_bits(cert) {
        if bits < 2048 {
            return Err(Error::new(format!(
                "{name}: an RSA key must have 2048 bits or more"
            )));
        }
        return Ok(());
    }
    match ec_curve(cert) {
        Some(Some(c)) if c == OID_EC_P256 || c == OID_NIST_EC_P384 => Ok(()),
        Some(_) => Err(Error::new(format!(
            "{name}: only P-256 and P-384 EC keys are supported"
        ))),
        None => Err(Error::new(format!("{name}: the key is neither EC nor RSA"))),
    }
}

/// The signing key's algorithm: ES256 for P-256, PS256/PS384/PS512 for RSA 2048/3072/4096
/// (the Notary Project's table; the signer holds no P-384 signing keys).
fn leaf_alg(leaf: &X509Certificate<'_>) -> Result<Alg, Error> {
    let name = leaf.subject().to_string();
    if let Some(bits) = rsa_bits(leaf) {
        return Alg::for_rsa_bits(bits).ok_or_else(|| {
            Error::new(format!(
                "leaf {name}: an RSA signing key must have 2048, 3072 or 4096 bits (PS256, PS384, PS512), not {bits}"
            ))
        });
    }
    match ec_curve(leaf) {
        Some(Some(c)) if c == OID_EC_P256 => Ok(Alg::Es256),
        _ => Err(Error::new(format!(
            "leaf {name}: the signing key must be EC P-256 (ES256) or RSA"
        ))),
    }
}

fn check_leaf(cert: &X509Certificate<'_>) -> Result<(), Error> {
    let name = cert.subject().to_string();
    let bad = |why: &str| Error::new(format!("leaf {name}: {why}"));
    if let Ok(Some(bc)) = cert.basic_constraints()
        && bc.value.ca
    {
        return Err(bad(
            "basicConstraints says CA; a signing certificate must not be a CA",
        ));
    }
    let ku = cert
        .key_usage()
        .map_err(|e| bad(&e.to_string()))?
        .ok_or_else(|| bad("keyUsage is missing (digitalSignature, critical)"))?;
    if !ku.critical {
        return Err(bad("keyUsage must be critical"));
    }
    let k = ku.value;
    if !k.digital_signature() {
        return Err(bad("keyUsage lacks digitalSignature"));
    }
    if k.key_encipherment()
        || k.data_encipherment()
        || k.key_agreement()
        || k.key_cert_sign()
        || k.crl_sign()
        || k.encipher_only()
        || k.decipher_only()
    {
        return Err(bad(
            "keyUsage may hold digitalSignature (and nonRepudiation) only",
        ));
    }
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        let e = eku.value;
        if e.any || e.server_auth || e.client_auth || e.email_protection || e.time_stamping {
            return Err(bad(
                "extendedKeyUsage may name codeSigning, never serverAuth, clientAuth, emailProtection, timeStamping or any",
            ));
        }
    }
    Ok(())
}

fn check_ca(cert: &X509Certificate<'_>, below: usize) -> Result<(), Error> {
    let name = cert.subject().to_string();
    let bad = |why: &str| Error::new(format!("CA {name}: {why}"));
    let bc = cert
        .basic_constraints()
        .map_err(|e| bad(&e.to_string()))?
        .ok_or_else(|| bad("basicConstraints is missing (CA, critical)"))?;
    if !bc.critical || !bc.value.ca {
        return Err(bad("basicConstraints must be critical and say CA"));
    }
    if let Some(n) = bc.value.path_len_constraint
        && (n as usize) < below
    {
        return Err(bad(&format!(
            "pathLenConstraint {n} allows fewer CAs than the {below} below it"
        )));
    }
    let ku = cert
        .key_usage()
        .map_err(|e| bad(&e.to_string()))?
        .ok_or_else(|| bad("keyUsage is missing (keyCertSign, critical)"))?;
    if !ku.critical || !ku.value.key_cert_sign() {
        return Err(bad("keyUsage must be critical and hold keyCertSign"));
    }
    Ok(())
}

/// Check `ders` (leaf first) against the Notary Project's rules and, with `at`, that every
/// certificate is valid then.
pub fn check(ders: &[Vec<u8>], at: Option<::time::OffsetDateTime>) -> Result<ChainInfo, Error> {
    if ders.is_empty() {
        return Err(Error::new("the chain is empty"));
    }
    let certs: Vec<X509Certificate<'_>> =
        ders.iter().map(|d| parse(d)).collect::<Result<_, _>>()?;
    for (i, cert) in certs.iter().enumerate() {
        let name = cert.subject().to_string();
        let sig = &cert.signature_algorithm.algorithm;
        if *sig == OID_PKCS1_SHA1WITHRSA || sig.to_id_string() == "1.2.840.10045.4.1" {
            return Err(Error::new(format!("{name}: SHA-1 signatures are refused")));
        }
        check_key(cert)?;
        let issuer = certs.get(i + 1).unwrap_or(cert);
        if cert.issuer() != issuer.subject() {
            return Err(Error::new(format!(
                "{name} is not issued by the next certificate in the chain ({})",
                issuer.subject()
            )));
        }
        cert.verify_signature(Some(issuer.public_key()))
            .map_err(|e| {
                Error::new(format!(
                    "{name}: its issuer's signature does not verify: {e}"
                ))
            })?;
        if let Some(now) = at {
            let v = cert.validity();
            if now < v.not_before.to_datetime() || now > v.not_after.to_datetime() {
                return Err(Error::new(format!(
                    "{name} is not valid now (valid {} to {})",
                    v.not_before, v.not_after
                )));
            }
        }
    }
    if certs.len() == 1 {
        // A lone root must meet the leaf rules.
        check_leaf(&certs[0])?;
    } else {
        check_leaf(&certs[0])?;
        for (i, ca) in certs.iter().enumerate().skip(1) {
            check_ca(ca, i - 1)?;
        }
    }
    let leaf = &certs[0];
    Ok(ChainInfo {
        alg: leaf_alg(leaf)?,
        leaf_spki: leaf.public_key().raw.to_vec(),
        subject: leaf.subject().to_string(),
        not_before: leaf.validity().not_before.to_datetime(),
        not_after: leaf.validity().not_after.to_datetime(),
    })
}
