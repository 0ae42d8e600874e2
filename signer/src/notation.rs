//! The Notation signing key (role `notation`) and its X.509 chain. The key never leaves this
//! process (or its PKCS#11 token); the chain is kept beside it as a row of its own (`x509-` +
//! the key ID, private column [`CERT_CHAIN`]) and served by GetKeyInfo in place of the bare
//! public key, as notary serves certificate keys (`ecdsa-x509`, PEM). The server builds each
//! envelope's `x5c` from it and signs with the Sign RPC, so a chain renewed here reaches the
//! bridge with no restart.
//!
//! A chain comes from `notation-key generate` (a CA of our own, role `notation-ca`, whose key
//! stays here too and issues every leaf) or from the admin's PKI (`notation-key import`). The
//! Notary Project's certificate rules are checked either way (trustbridge-notation's
//! [`chain`](trustbridge_notation::chain)). A generated leaf is renewed for the same key by
//! the CA before a third of its life is left ([`renew_if_due`], run by the serving signer
//! hourly and by `notation-key renew`).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, PublicKeyData, SerialNumber, SigningKey,
};
use ring::rand::SecureRandom;
use trustbridge_notation::chain::{self, ChainInfo};
use trustbridge_tuf::x509::{certificate_ders, certificates_to_pem};
use trustbridge_tuf::{KeyType, PrivateKey, PublicKey};

use crate::error::{Error, Result};
use crate::keystore::{KeyInfo, KeyStore};

pub use crate::keystore::NOTATION_ROLE;
/// The CA key of a generated chain.
pub const NOTATION_CA_ROLE: &str = "notation-ca";
/// The role of a chain row.
pub const CHAIN_ROLE: &str = "notation-chain";
/// A generated leaf's life unless `--days` says.
pub const DEFAULT_LEAF_DAYS: i64 = 365;
/// How often the serving signer looks at the leaf's expiry unless the config says.
pub const RENEW_CHECK: std::time::Duration = std::time::Duration::from_secs(3600);
/// A generated CA's life (the trust anchor users install: long, and re-made only by the admin).
const CA_YEARS: i64 = 10;

fn err(s: impl Into<String>) -> Error {
    Error::Notation(s.into())
}

impl From<trustbridge_notation::Error> for Error {
    fn from(e: trustbridge_notation::Error) -> Self {
        Error::Notation(e.0)
    }
}

/// The row ID of `key_id`'s chain.
pub fn chain_id(key_id: &str) -> String {
    format!("x509-{key_id}")
}

/// A key of the store as rcgen's signer: the Sign path (soft or token key), ECDSA P-256 with
/// the raw r||s turned into the DER X.509 wants.
struct StoreKey<'a> {
    store: &'a KeyStore,
    key_id: String,
    point: Vec<u8>,
}

impl<'a> StoreKey<'a> {
    fn new(store: &'a KeyStore, key: &PublicKey) -> Result<Self> {
        if key.key_type != KeyType::Ecdsa || key.public.len() != 91 {
            return Err(err(format!("key {} is not an ECDSA P-256 key", key.id())));
        }
        Ok(StoreKey {
            store,
            key_id: key.id(),
            point: key.public[26..].to_vec(),
        })
    }
}

impl PublicKeyData for StoreKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl SigningKey for StoreKey<'_> {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        let sig = self
            .store
            .sign(&self.key_id, msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)?;
        crate::cosign::raw_to_der(&sig.bytes).map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// `CN=…,O=…,ST=…,C=…` as a distinguished name, attribute by attribute. Notation's trust
/// policies name a signer by `x509.subject` and insist it holds C, ST and O, so a subject
/// without them is refused here.
pub fn parse_subject(subject: &str) -> Result<Vec<(DnType, String)>> {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for part in subject.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| err(format!("subject part {part:?} is not KEY=value")))?;
        let k = k.trim().to_ascii_uppercase();
        let t = match k.as_str() {
            "CN" => DnType::CommonName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "L" => DnType::LocalityName,
            "ST" | "S" => DnType::StateOrProvinceName,
            "C" => DnType::CountryName,
            other => {
                return Err(err(format!(
                    "subject attribute {other} is not one of CN, O, OU, L, ST, C"
                )));
            }
        };
        seen.push(t.clone());
        out.push((t, v.trim().to_string()));
    }
    for (need, t) in [
        ("CN", DnType::CommonName),
        ("O", DnType::OrganizationName),
        ("ST", DnType::StateOrProvinceName),
        ("C", DnType::CountryName),
    ] {
        if !seen.contains(&t) {
            return Err(err(format!(
                "the subject needs {need}= (Notation trust policies name a signer by C, ST and O; CN names the certificate), e.g. \"CN=trustbridge,O=Example,ST=Berlin,C=DE\""
            )));
        }
    }
    Ok(out)
}

fn dn(pairs: &[(DnType, String)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (t, v) in pairs {
        dn.push(t.clone(), v.as_str());
    }
    dn
}

/// The subject of a certificate as rcgen's name (a renewed leaf keeps its subject exactly).
fn dn_of(der: &[u8]) -> Result<DistinguishedName> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| err(format!("the leaf certificate does not parse: {e}")))?;
    let mut dn = DistinguishedName::new();
    for attr in cert.subject().iter_attributes() {
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .map(|i| i.collect())
            .unwrap_or_default();
        let value = attr
            .as_str()
            .map_err(|e| err(format!("a subject attribute is not text: {e}")))?;
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

fn serial() -> Result<SerialNumber> {
    let mut s = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut s)
        .map_err(|_| err("no randomness"))?;
    s[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&s))
}

/// How far before its issue a leaf starts: a verifier whose clock is behind ours still sees it
/// valid. Not counted in the leaf's life.
const BACKDATE: time::Duration = time::Duration::minutes(10);

fn leaf_params(dn: DistinguishedName, life: time::Duration) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn;
    p.serial_number = Some(serial()?);
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - BACKDATE;
    p.not_after = now + life;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    p.is_ca = IsCa::ExplicitNoCa;
    Ok(p)
}

fn rcgen_err(what: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |e| err(format!("{what}: {e}"))
}

/// The live Notation signing key, if any.
pub fn current_key(store: &KeyStore) -> Result<Option<KeyInfo>> {
    Ok(store.list()?.into_iter().find(|k| k.role == NOTATION_ROLE))
}

fn refuse_second_key(store: &KeyStore) -> Result<()> {
    if let Some(k) = current_key(store)? {
        return Err(err(format!(
            "a Notation key already exists ({}): delete it first with `trustbridge-signer keys delete {}`",
            k.key_id, k.key_id
        )));
    }
    Ok(())
}

/// Store `ders` (checked) as the chain of `key`.
fn store_chain(store: &KeyStore, key: &PublicKey, ders: &[Vec<u8>]) -> Result<ChainInfo> {
    store_chain_if(store, key, ders, None)?
        .ok_or_else(|| err("the chain row changed while it was written; try again"))
}

/// [`store_chain`], only while the stored chain is still `expected` (PEM, as stored); None
/// when it was not (another signer on the same database renewed first).
fn store_chain_if(
    store: &KeyStore,
    key: &PublicKey,
    ders: &[Vec<u8>],
    expected: Option<&[u8]>,
) -> Result<Option<ChainInfo>> {
    let info = chain::check(ders, Some(time::OffsetDateTime::now_utc()))?;
    if info.leaf_spki != key.public {
        return Err(err(format!(
            "the leaf certificate ({}) is not for key {}",
            info.subject,
            key.id()
        )));
    }
    let alg = match key.key_type {
        KeyType::Rsa => "rsa-x509",
        _ => "ecdsa-x509",
    };
    let stored = store.put_chain(
        &chain_id(&key.id()),
        CHAIN_ROLE,
        alg,
        &certificates_to_pem(ders),
        expected,
    )?;
    Ok(stored.then_some(info))
}

/// `notation-key generate`: a CA key and a signing key (in the token when one is configured),
/// a self-signed CA certificate (basicConstraints CA critical with pathLen 0, keyUsage
/// keyCertSign critical, ten years) and a leaf for `subject` (keyUsage digitalSignature
/// critical, extendedKeyUsage codeSigning, valid for `life`). Returns the signing key's ID.
pub fn generate(store: &KeyStore, subject: &str, life: time::Duration) -> Result<String> {
    refuse_second_key(store)?;
    let pairs = parse_subject(subject)?;
    let ca_pub = store.generate(NOTATION_CA_ROLE, "", KeyType::Ecdsa)?;
    let leaf_pub = store.generate(NOTATION_ROLE, "", KeyType::Ecdsa)?;
    let ca_pairs: Vec<(DnType, String)> = pairs
        .iter()
        .map(|(t, v)| match t {
            DnType::CommonName => (t.clone(), format!("{v} CA")),
            _ => (t.clone(), v.clone()),
        })
        .collect();
    let mut ca = CertificateParams::default();
    ca.distinguished_name = dn(&ca_pairs);
    ca.serial_number = Some(serial()?);
    let now = time::OffsetDateTime::now_utc();
    ca.not_before = now - time::Duration::minutes(10);
    ca.not_after = now + time::Duration::days(365 * CA_YEARS);
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = StoreKey::new(store, &ca_pub)?;
    let ca_cert = ca
        .self_signed(&ca_key)
        .map_err(rcgen_err("the CA certificate"))?;
    let issuer = Issuer::new(ca, ca_key);
    let leaf_spki = rcgen::SubjectPublicKeyInfo::from_der(&leaf_pub.public)
        .map_err(rcgen_err("the signing key"))?;
    let leaf = leaf_params(dn(&pairs), life)?
        .signed_by(&leaf_spki, &issuer)
        .map_err(rcgen_err("the leaf certificate"))?;
    store_chain(
        store,
        &leaf_pub,
        &[leaf.der().to_vec(), ca_cert.der().to_vec()],
    )?;
    Ok(leaf_pub.id())
}

/// `notation-key import --cert chain.pem [--key key.pem]`: a chain from the admin's PKI, leaf
/// first, for the signing key already here or for `key_pem` (an unencrypted PKCS#8 PEM, which
/// is stored encrypted and may then be deleted). Returns the key ID.
pub fn import(store: &KeyStore, chain_pem: &[u8], key_pem: Option<&[u8]>) -> Result<String> {
    let ders = certificate_ders(chain_pem)?;
    let key = match key_pem {
        Some(text) => {
            refuse_second_key(store)?;
            let block = pem::parse(text).map_err(|e| err(format!("the key file is not PEM: {e}")))?;
            if block.tag() != "PRIVATE KEY" {
                return Err(err(format!(
                    "the key file holds {:?}; expected an unencrypted PKCS#8 \"PRIVATE KEY\" (openssl pkcs8 -topk8 -nocrypt)",
                    block.tag()
                )));
            }
            let key = PrivateKey::from_pkcs8(block.contents())?;
            let info = chain::check(&ders, Some(time::OffsetDateTime::now_utc()))?;
            if info.leaf_spki != key.public_key().public {
                return Err(err(
                    "the leaf certificate (first in --cert) is not for the key in --key",
                ));
            }
            store.add(NOTATION_ROLE, "", &key, store.default_alias())?;
            key.public_key().clone()
        }
        None => current_key(store)?
            .ok_or_else(|| {
                err("no Notation key here: pass --key key.pem, or make one with `trustbridge-signer notation-key generate`")
            })?
            .public,
    };
    store_chain(store, &key, &ders)?;
    Ok(key.id())
}

/// The chain of the current key, leaf first.
pub fn current_chain(store: &KeyStore) -> Result<Option<(KeyInfo, Vec<Vec<u8>>)>> {
    current_chain_pem(store)?
        .map(|(key, pem_text)| Ok((key, certificate_ders(&pem_text)?)))
        .transpose()
}

/// The current key and its chain as stored (PEM, leaf first).
fn current_chain_pem(store: &KeyStore) -> Result<Option<(KeyInfo, Vec<u8>)>> {
    let Some(key) = current_key(store)? else {
        return Ok(None);
    };
    Ok(store
        .chain(&chain_id(&key.key_id))?
        .map(|pem_text| (key, pem_text)))
}

/// GetKeyInfo's answer for `key_id`: a Notation key with a chain is served as that chain
/// (`ecdsa-x509`/`rsa-x509`, PEM leaf first), every other key as stored.
pub fn served_info(store: &KeyStore, key_id: &str) -> Result<KeyInfo> {
    let mut info = store.info(key_id)?;
    if info.role == NOTATION_ROLE
        && let Some(pem_text) = store.chain(&chain_id(key_id))?
    {
        let x509 = if info.public.key_type == KeyType::Rsa {
            KeyType::RsaX509
        } else {
            KeyType::EcdsaX509
        };
        info.algorithm = x509.as_str().to_string();
        info.public = PublicKey::new(x509, pem_text);
    }
    Ok(info)
}

/// Whether a leaf valid from `from` to `until` should be renewed at `now`: when less than a
/// third of its life is left.
pub fn due(
    from: time::OffsetDateTime,
    until: time::OffsetDateTime,
    now: time::OffsetDateTime,
) -> bool {
    until - now < (until - from) / 3
}

/// Issue a new leaf for the same key with the CA key held here, keeping the subject and the
/// leaf's length of life (or `days`). Refused for an imported chain (its CA is elsewhere).
/// Returns the new leaf's validity end.
pub fn renew(store: &KeyStore, days: Option<i64>) -> Result<time::OffsetDateTime> {
    renew_once(store, days)?.ok_or_else(|| {
        err("another signer on this database renewed the leaf at the same moment: see `notation-key show`")
    })
}

/// [`renew`]; None when another signer sharing the database replaced the chain between our
/// read and our write (its new leaf stands, ours is dropped).
fn renew_once(store: &KeyStore, days: Option<i64>) -> Result<Option<time::OffsetDateTime>> {
    let (key, pem_text) = current_chain_pem(store)?.ok_or_else(|| {
        err("no Notation key with a chain: run `trustbridge-signer notation-key generate` first")
    })?;
    let ders = certificate_ders(&pem_text)?;
    let root = ders.last().cloned().unwrap_or_default();
    let ca = store
        .list()?
        .into_iter()
        .filter(|k| k.role == NOTATION_CA_ROLE)
        .find(|k| x509_spki(&root).is_some_and(|s| s == k.public.public))
        .ok_or_else(|| {
            err("the chain's CA key is not here (an imported chain): renew the leaf with your CA and run `notation-key import --cert` again")
        })?;
    let old = chain::check(&ders, None)?;
    // The old leaf's life (it starts BACKDATE before it was issued).
    let life = days.map_or(
        old.not_after - old.not_before - BACKDATE,
        time::Duration::days,
    );
    let subject = dn_of(&ders[0])?;
    let issuer = Issuer::from_ca_cert_der(&root.clone().into(), StoreKey::new(store, &ca.public)?)
        .map_err(rcgen_err("the CA certificate"))?;
    let spki = rcgen::SubjectPublicKeyInfo::from_der(&key.public.public)
        .map_err(rcgen_err("the signing key"))?;
    let leaf = leaf_params(subject, life)?
        .signed_by(&spki, &issuer)
        .map_err(rcgen_err("the leaf certificate"))?;
    let info = store_chain_if(
        store,
        &key.public,
        &[leaf.der().to_vec(), root],
        Some(&pem_text),
    )?;
    Ok(info.map(|i| i.not_after))
}

fn x509_spki(der: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    x509_parser::certificate::X509Certificate::from_der(der)
        .ok()
        .map(|(_, c)| c.public_key().raw.to_vec())
}

/// Renew the current leaf if a third of its life or less is left and its CA is here; returns
/// the new validity end when it did.
pub fn renew_if_due(store: &KeyStore) -> Result<Option<time::OffsetDateTime>> {
    let Some((_, ders)) = current_chain(store)? else {
        return Ok(None);
    };
    let info = chain::check(&ders, None)?;
    if !due(
        info.not_before,
        info.not_after,
        time::OffsetDateTime::now_utc(),
    ) {
        return Ok(None);
    }
    // Lost to another signer renewing at the same check: its leaf stands (Ok(None)).
    renew_once(store, None)
}

/// `notation-key show`.
pub fn describe(store: &KeyStore) -> Result<String> {
    let (key, ders) = current_chain(store)?.ok_or_else(|| {
        err("no Notation key with a chain: run `trustbridge-signer notation-key generate`")
    })?;
    let info = chain::check(&ders, None)?;
    let generated = ders.last().and_then(|r| x509_spki(r)).is_some_and(|spki| {
        store
            .list()
            .map(|l| {
                l.iter()
                    .any(|k| k.role == NOTATION_CA_ROLE && k.public.public == spki)
            })
            .unwrap_or(false)
    });
    Ok(format!(
        "key_id:      {}\nalgorithm:   {}\nsubject:     {}\nnot_before:  {}\nnot_after:   {}\nchain:       {} certificate(s)\nca:          {}\nthumbprints: {}\n",
        key.key_id,
        info.alg.name(),
        info.subject,
        trustbridge_notation::envelope::rfc3339(info.not_before),
        trustbridge_notation::envelope::rfc3339(info.not_after),
        ders.len(),
        if generated {
            "generated here (renewed automatically)"
        } else {
            "imported (renew with your CA, then notation-key import --cert)"
        },
        trustbridge_notation::envelope::thumbprints(&ders),
    ))
}

/// `notation-key export-ca`: the chain's root, PEM (the trust anchor for `notation cert add`).
pub fn export_ca(store: &KeyStore) -> Result<String> {
    let (_, ders) = current_chain(store)?.ok_or_else(|| {
        err("no Notation key with a chain: run `trustbridge-signer notation-key generate`")
    })?;
    Ok(String::from_utf8_lossy(&certificates_to_pem(&ders[ders.len() - 1..])).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::Backend;

    fn store() -> KeyStore {
        KeyStore::open(&Backend::Memory, "default").unwrap()
    }

    #[test]
    fn a_generated_chain_meets_notations_rules_and_renews_for_the_same_key() {
        let s = store();
        let id = generate(
            &s,
            "CN=tb test,O=Example,ST=Berlin,C=DE",
            time::Duration::days(30),
        )
        .unwrap();
        let (key, ders) = current_chain(&s).unwrap().unwrap();
        assert_eq!(key.key_id, id);
        assert_eq!(ders.len(), 2);
        let info = chain::check(&ders, Some(time::OffsetDateTime::now_utc())).unwrap();
        assert_eq!(info.leaf_spki, key.public.public);
        let served = served_info(&s, &id).unwrap();
        assert_eq!(served.public.key_type, KeyType::EcdsaX509);
        assert_eq!(certificate_ders(&served.public.public).unwrap(), ders);
        // Renewal keeps key, subject and root; the leaf is new.
        renew(&s, Some(60)).unwrap();
        let (_, after) = current_chain(&s).unwrap().unwrap();
        assert_ne!(after[0], ders[0]);
        assert_eq!(after[1], ders[1]);
        let info2 = chain::check(&after, Some(time::OffsetDateTime::now_utc())).unwrap();
        assert_eq!(info2.subject, info.subject);
        assert_eq!(info2.leaf_spki, info.leaf_spki);
        assert!(info2.not_after > info.not_after);
        // A second key is refused; a subject Notation policies cannot name is refused.
        assert!(generate(&s, "CN=x,O=y,ST=z,C=DE", time::Duration::days(30)).is_err());
        let e = generate(&store(), "CN=only a name", time::Duration::days(30))
            .unwrap_err()
            .to_string();
        assert!(e.contains("O="), "{e}");
    }

    /// Two signers on one database renew at the same moment: one new leaf is stored, the
    /// other's write (from the chain it read before) is refused, not swapped in over it.
    #[test]
    fn of_two_renewals_from_the_same_chain_one_writes() {
        let s = store();
        generate(
            &s,
            "CN=tb race,O=Example,ST=Berlin,C=DE",
            time::Duration::days(30),
        )
        .unwrap();
        let key = current_key(&s).unwrap().unwrap();
        let row = chain_id(&key.key_id);
        let before = s.chain(&row).unwrap().unwrap();
        // Another signer renews first.
        renew(&s, Some(60)).unwrap();
        let first = s.chain(&row).unwrap().unwrap();
        assert_ne!(first, before);
        // Ours, made from what we read before, is refused; the stored chain stays theirs.
        let ders = certificate_ders(&before).unwrap();
        let lost = store_chain_if(&s, &key.public, &ders, Some(&before)).unwrap();
        assert!(lost.is_none());
        assert_eq!(s.chain(&row).unwrap().unwrap(), first);
        // From the current chain a renewal goes through.
        renew(&s, Some(60)).unwrap();
        assert_ne!(s.chain(&row).unwrap().unwrap(), first);
    }

    #[test]
    fn renewal_is_due_when_a_third_of_the_life_is_left() {
        let t0 = time::OffsetDateTime::UNIX_EPOCH;
        let end = t0 + time::Duration::days(90);
        assert!(!due(t0, end, t0 + time::Duration::days(59)));
        assert!(due(t0, end, t0 + time::Duration::days(61)));
    }
}
