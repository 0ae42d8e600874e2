//! The notary CLI's config file (`-c`, as `~/.notary/config.json`), so a team moving from the
//! notary CLI keeps its settings: `trust_dir`, `remote_server.{url, root_ca, tls_client_cert,
//! tls_client_key}` and `trust_pinning.{certs, ca, disable_tofu}`. Relative paths are relative
//! to the file, `~` is the home directory, and command-line flags win over the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::update::Pinning;

#[derive(Debug, Default, Deserialize)]
pub struct RemoteServer {
    pub url: Option<String>,
    pub root_ca: Option<String>,
    pub tls_client_cert: Option<String>,
    pub tls_client_key: Option<String>,
    #[serde(rename = "skipTLSVerify", default)]
    pub skip_tls_verify: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct TrustPinning {
    /// GUN (or `prefix*`) → allowed root certificate key IDs.
    #[serde(default)]
    pub certs: BTreeMap<String, Vec<String>>,
    /// GUN prefix → CA bundle file; the longest prefix applies.
    #[serde(default)]
    pub ca: BTreeMap<String, String>,
    #[serde(default)]
    pub disable_tofu: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct NotaryConfig {
    pub trust_dir: Option<String>,
    #[serde(default)]
    pub remote_server: RemoteServer,
    #[serde(default)]
    pub trust_pinning: TrustPinning,
    /// The directory relative paths are resolved against.
    #[serde(skip)]
    base: PathBuf,
}

impl NotaryConfig {
    pub fn load(path: &Path) -> Result<NotaryConfig> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut c: NotaryConfig = serde_json::from_slice(&text)
            .map_err(|e| Error::Usage(format!("config {}: {e}", path.display())))?;
        if c.remote_server.skip_tls_verify {
            return Err(Error::Usage(format!(
                "config {}: skipTLSVerify is not supported; set remote_server.root_ca to the server's CA",
                path.display()
            )));
        }
        c.base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(c)
    }

    /// A path from the file: `~/` is home, relative paths are relative to the file.
    pub fn path(&self, p: &str) -> PathBuf {
        if let Some(rest) = p.strip_prefix("~/") {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            return home.join(rest);
        }
        self.base.join(p)
    }

    /// The pins for `gun`: `certs[gun]` or the longest `certs["prefix*"]`, else the CA of the
    /// longest matching `ca` prefix; and `disable_tofu`.
    pub fn pinning_for(&self, gun: &str) -> Result<Pinning> {
        let tp = &self.trust_pinning;
        let mut pin = Pinning {
            disable_tofu: tp.disable_tofu,
            ..Default::default()
        };
        let wild = tp
            .certs
            .iter()
            .filter_map(|(k, ids)| {
                k.strip_suffix('*')
                    .filter(|p| gun.starts_with(p))
                    .map(|p| (p.len(), ids))
            })
            .max_by_key(|(n, _)| *n)
            .map(|(_, ids)| ids);
        if let Some(ids) = tp.certs.get(gun).or(wild) {
            pin.root_key_ids = ids.clone();
            return Ok(pin);
        }
        if let Some((_, file)) = tp
            .ca
            .iter()
            .filter(|(p, _)| gun.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
        {
            let path = self.path(file);
            let pem = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            pin.ca_ders = trustbridge_tuf::x509::certificate_ders(&pem)?;
        }
        Ok(pin)
    }
}
