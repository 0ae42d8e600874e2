//! Dev/test PKI for trustbridge (rcgen, ring): one CA and the three leaf certificates a
//! deployment needs — the server's HTTPS certificate (SANs 127.0.0.1, ::1, localhost), the
//! signer's gRPC certificate (also named `notary-signer`, the name Go notary-server dials), and
//! the client certificate the server presents to the signer (mutual TLS). File names follow
//! `../shared/peers/certs.sh`, so the Go peers and ours can share one directory.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// A PEM certificate and its PEM (PKCS#8) private key.
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The whole dev PKI.
pub struct DevPki {
    pub ca: Pair,
    pub server: Pair,
    pub signer: Pair,
    pub signer_client: Pair,
}

fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    sans: &[&str],
    eku: &[ExtendedKeyUsagePurpose],
    days: i64,
) -> Result<Pair, Error> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    p.subject_alt_names = sans
        .iter()
        .map(|s| match s.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => s.to_string().try_into().map(SanType::DnsName),
        })
        .collect::<Result<_, _>>()?;
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = eku.to_vec();
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(days);
    let cert = p.signed_by(&key, issuer)?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Make a CA and the server, signer and signer-client leaves, valid for `days`.
pub fn generate(days: i64) -> Result<DevPki, Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "trustbridge dev CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    ca.not_before = now - Duration::hours(1);
    ca.not_after = now + Duration::days(days);
    let ca_cert = ca.self_signed(&ca_key)?;
    let ca_pair = Pair {
        cert_pem: ca_cert.pem(),
        key_pem: ca_key.serialize_pem(),
    };
    let issuer = Issuer::new(ca, ca_key);
    use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    Ok(DevPki {
        server: leaf(
            &issuer,
            "trustbridge-server",
            &["127.0.0.1", "::1", "localhost", "notary-server"],
            &[ServerAuth],
            days,
        )?,
        signer: leaf(
            &issuer,
            "trustbridge-signer",
            &[
                "127.0.0.1",
                "::1",
                "localhost",
                "notary-signer",
                "notarysigner",
            ],
            &[ServerAuth, ClientAuth],
            days,
        )?,
        signer_client: leaf(
            &issuer,
            "trustbridge-server (signer client)",
            &["127.0.0.1", "localhost"],
            &[ClientAuth],
            days,
        )?,
        ca: ca_pair,
    })
}

impl DevPki {
    /// A client certificate from this CA valid from `not_before` to `not_after`, e.g. an
    /// expired one to prove the signer refuses it.
    pub fn issue_client(
        &self,
        cn: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Pair, Error> {
        let ca_key = KeyPair::from_pem(&self.ca.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&self.ca.cert_pem, ca_key)?;
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(vec!["localhost".to_string()])?;
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.not_before = not_before;
        p.not_after = not_after;
        let cert = p.signed_by(&key, &issuer)?;
        Ok(Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Write `root-ca.crt`, `server.{crt,key}`, `signer.{crt,key}`, `signer-client.{crt,key}`
    /// (keys 0600) into `dir`. The CA's private key is not written: nothing needs it later.
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| Error::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let files: [(&str, &str, bool); 7] = [
            ("root-ca.crt", &self.ca.cert_pem, false),
            ("server.crt", &self.server.cert_pem, false),
            ("server.key", &self.server.key_pem, true),
            ("signer.crt", &self.signer.cert_pem, false),
            ("signer.key", &self.signer.key_pem, true),
            ("signer-client.crt", &self.signer_client.cert_pem, false),
            ("signer-client.key", &self.signer_client.key_pem, true),
        ];
        for (name, content, secret) in files {
            let path = dir.join(name);
            write_file(&path, content.as_bytes(), secret).map_err(io(&path))?;
        }
        Ok(())
    }
}

fn write_file(path: &Path, content: &[u8], secret: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 });
    opts.open(path)?.write_all(content)
}
