//! Root certificates: generation as the notary client makes them and validation as
//! `trustpinning.ValidateRoot` / `utils.ValidateCertificate` do (with TOFU, no pinning).
//!
//! Root keys in notary metadata are certificates (`ecdsa-x509`/`rsa-x509`, `public` = PEM
//! text). A client-made root certificate is self-signed, CN = GUN, a random serial below
//! 2^128, valid now..now+10y, KeyUsage digitalSignature|keyEncipherment, ExtKeyUsage
//! codeSigning, basicConstraints CA=false.

use std::collections::BTreeMap;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SerialNumber,
};
use ring::rand::SecureRandom;
use x509_parser::prelude::*;

use crate::asn1;
use crate::error::Error;
use crate::gotime::GoTime;
use crate::keys::{KeyType, PublicKey};
use crate::metadata::{Root, Signed};
use crate::private::PrivateKey;

pub use crate::certpem::certificate_ders;

/// PEM text as Go's `pem.EncodeToMemory` writes it (64-column base64, `\n` line ends).
pub fn certificates_to_pem(ders: &[Vec<u8>]) -> Vec<u8> {
    let cfg = ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF);
    ders.iter()
        .map(|d| ::pem::encode_config(&::pem::Pem::new("CERTIFICATE", d.clone()), cfg))
        .collect::<String>()
        .into_bytes()
}

/// A standard PKCS#8 of an ECDSA key, for rcgen (notary's own PKCS#8 is not standard).
fn standard_ec_pkcs8(key: &PrivateKey) -> Vec<u8> {
    let alg = asn1::sequence(&[
        &asn1::tlv(asn1::TAG_OID, asn1::OID_EC_PUBLIC_KEY),
        &asn1::tlv(asn1::TAG_OID, asn1::OID_P256),
    ]);
    asn1::sequence(&[
        &asn1::small_int(0),
        &alg,
        &asn1::tlv(asn1::TAG_OCTET_STRING, key.notary_bytes()),
    ])
}

/// A root certificate for `gun` over `key`, as notary's `cryptoservice.GenerateCertificate`
/// makes it, valid from `start` for `years`. Returns the `ecdsa-x509` key root.json lists.
pub fn generate_root_certificate(
    gun: &str,
    key: &PrivateKey,
    years: i32,
) -> Result<PublicKey, Error> {
    if key.key_type() != KeyType::Ecdsa {
        return Err(Error::Certificate(format!(
            "root certificates are made for ecdsa keys, not {}",
            key.key_type()
        )));
    }
    let der = zeroize::Zeroizing::new(standard_ec_pkcs8(key));
    let signer = rcgen::KeyPair::try_from(der.as_slice())
        .map_err(|e| Error::Certificate(format!("cannot use key for a certificate: {e}")))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, gun);
    params.distinguished_name = dn;
    let mut serial = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| Error::Certificate("no randomness".into()))?;
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let now = GoTime::now();
    params.not_before = now.as_offset_datetime();
    params.not_after = now.plus_years(years).as_offset_datetime();
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    params.is_ca = IsCa::ExplicitNoCa;
    let cert = params
        .self_signed(&signer)
        .map_err(|e| Error::Certificate(format!("cannot sign certificate: {e}")))?;
    Ok(PublicKey::new(
        KeyType::EcdsaX509,
        certificates_to_pem(&[cert.der().to_vec()]),
    ))
}

const OID_SHA1_RSA: &str = "1.2.840.113549.1.1.5";
const OID_SHA1_ECDSA: &str = "1.2.840.10045.4.1";
const OID_SHA1_DSA: &str = "1.2.840.10040.4.3";

fn common_name(cert: &X509Certificate<'_>) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Notary's `ValidateCertificate`: sane validity window, no SHA-1 signature, RSA ≥ 2048 bits,
/// and with `check_expiry` `NotBefore ≤ now + 1 day` and `now ≤ NotAfter`.
pub fn validate_certificate(der: &[u8], check_expiry: bool, now: &GoTime) -> Result<(), Error> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::Certificate(format!("cannot parse: {e}")))?;
    let cn = common_name(&cert);
    let v = cert.validity();
    let (nb, na) = (v.not_before.timestamp(), v.not_after.timestamp());
    if nb > na {
        return Err(Error::Certificate(format!(
            "certificate with CN {cn} has an invalid validity window"
        )));
    }
    let sig_oid = cert.signature_algorithm.algorithm.to_id_string();
    if [OID_SHA1_RSA, OID_SHA1_ECDSA, OID_SHA1_DSA].contains(&sig_oid.as_str()) {
        return Err(Error::Certificate(format!(
            "certificate with CN {cn} uses invalid SHA1 signature algorithm"
        )));
    }
    if let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = cert.public_key().parsed()
        && rsa.key_size() < 2048
    {
        return Err(Error::Certificate(format!(
            "certificate with CN {cn}: RSA bit length is too short"
        )));
    }
    if check_expiry {
        let now_s = now.as_offset_datetime().unix_timestamp();
        if nb > now_s + 86_400 || now_s > na {
            return Err(Error::Certificate(format!(
                "certificate with CN {cn} is expired or not yet valid"
            )));
        }
    }
    Ok(())
}

fn is_ca(cert: &X509Certificate<'_>) -> bool {
    matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

fn cn_matches(cn: &str, gun: &str) -> bool {
    cn == gun
        || cn
            .strip_suffix('*')
            .is_some_and(|prefix| gun.starts_with(prefix))
}

/// The root role's keys that are valid certificates for `gun`, rebuilt as Go rebuilds them
/// (`CertsToKeys`: leaf + intermediates re-encoded as PEM), keyed by their rebuilt key ID.
fn valid_root_keys(
    gun: &str,
    root: &Root,
    check_expiry: bool,
    now: &GoTime,
) -> BTreeMap<String, PublicKey> {
    let mut out = BTreeMap::new();
    let Some(role) = root.roles.get("root") else {
        return out;
    };
    for id in &role.keyids {
        let Some(key) = root.keys.get(id) else {
            continue;
        };
        if !key.key_type.is_x509() {
            continue;
        }
        let Ok(ders) = certificate_ders(&key.public) else {
            continue;
        };
        let parsed: Vec<_> = ders
            .iter()
            .filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c))
            .collect();
        if parsed.len() != ders.len() || is_ca(&parsed[0]) || parsed[1..].iter().any(|c| !is_ca(c))
        {
            continue;
        }
        if !cn_matches(&common_name(&parsed[0]), gun)
            || validate_certificate(&ders[0], check_expiry, now).is_err()
        {
            continue;
        }
        let rebuilt = PublicKey::new(key.key_type, certificates_to_pem(&ders));
        out.insert(rebuilt.id(), rebuilt);
    }
    out
}

/// Notary's `ValidateRoot` with an empty trust-pinning config (TOFU): the root role must hold
/// valid, unexpired certificates for `gun`; a rotation must be signed by the previous root's
/// threshold of its valid certificate keys; and the new root must meet its own threshold.
pub fn validate_root(
    gun: &str,
    root: &Signed<Root>,
    previous: Option<&Signed<Root>>,
    now: &GoTime,
) -> Result<(), Error> {
    use crate::metadata::Role as _;
    let invalid = |reason: String| Error::RootInvalid {
        gun: gun.into(),
        reason,
    };
    root.signed
        .check_structure("root")
        .map_err(|e| invalid(e.to_string()))?;
    let keys = valid_root_keys(gun, &root.signed, true, now);
    if keys.is_empty() {
        return Err(invalid("no valid root certificate for this GUN".into()));
    }
    if let Some(prev) = previous {
        let prev_keys = valid_root_keys(gun, &prev.signed, false, now);
        let ids: Vec<String> = prev_keys.keys().cloned().collect();
        let threshold = prev
            .signed
            .roles
            .get("root")
            .map(|r| r.threshold)
            .unwrap_or(1);
        root.verify_signatures("root", &prev_keys, &ids, threshold)
            .map_err(|e| Error::RootRotation {
                gun: gun.into(),
                reason: e.to_string(),
            })?;
    }
    let ids: Vec<String> = keys.keys().cloned().collect();
    let threshold = root
        .signed
        .roles
        .get("root")
        .map(|r| r.threshold)
        .unwrap_or(1);
    root.verify_signatures("root", &keys, &ids, threshold)
        .map(|_| ())
        .map_err(|e| invalid(e.to_string()))
}
