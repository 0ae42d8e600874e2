//! The key trustbridge-server's built-in token issuer signs registry tokens with. It lives here
//! like every other server key (role `token-issuer`); the server signs through the Sign RPC.
//! Registry token verifiers (trustbridge-server, notary-server, registries) find it through a
//! certificate in their `rootcertbundle`, which this module writes: self-signed, made with the
//! key itself (rcgen), ten years.

use std::path::Path;

use trustbridge_tuf::{KeyType, PrivateKey};

use crate::error::{Error, Result};
use crate::keystore::KeyStore;

pub const TOKEN_ROLE: &str = "token-issuer";

/// A self-signed certificate (PEM) for `key`, CN `cn`.
pub fn certificate(key: &PrivateKey, cn: &str) -> Result<String> {
    if key.key_type() != KeyType::Ecdsa {
        return Err(Error::Invalid("the token key must be ECDSA P-256".into()));
    }
    let der = crate::cosign::p256_pkcs8(key.notary_bytes());
    let kp = rcgen::KeyPair::try_from(der.as_slice())
        .map_err(|e| Error::Invalid(format!("token key: {e}")))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| Error::Invalid(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params
        .self_signed(&kp)
        .map_err(|e| Error::Invalid(format!("token certificate: {e}")))?;
    Ok(cert.pem())
}

/// Generate the token key and write its certificate to `cert_out`; returns the key ID.
pub fn generate(store: &KeyStore, cn: &str, cert_out: &Path) -> Result<String> {
    let key = PrivateKey::generate(KeyType::Ecdsa)?;
    let pem = certificate(&key, cn)?;
    store.add(TOKEN_ROLE, "", &key, store.default_alias())?;
    std::fs::write(cert_out, pem).map_err(|e| Error::io(cert_out, e))?;
    Ok(key.id())
}
