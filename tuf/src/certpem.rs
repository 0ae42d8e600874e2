//! Certificates in PEM files (notary's x509 keys hold one; CA bundles several): read by the
//! key types and the certificate checks alike.

use crate::error::Error;

/// DER of every CERTIFICATE block in `pem_text`, in order.
pub fn certificate_ders(pem_text: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let blocks =
        ::pem::parse_many(pem_text).map_err(|e| Error::Certificate(format!("invalid PEM: {e}")))?;
    let ders: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect();
    if ders.is_empty() {
        return Err(Error::Certificate(
            "no certificates found in PEM data".into(),
        ));
    }
    Ok(ders)
}

pub(crate) fn first_certificate_der(pem_text: &[u8]) -> Result<Vec<u8>, Error> {
    Ok(certificate_ders(pem_text)?.remove(0))
}
