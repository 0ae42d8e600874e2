//! The link to the signer (trustbridge-signer or Go notary-signer): notary-signer's gRPC API
//! over mutual TLS, dialled as `hostname:port` and verified against `hostname` with
//! `tls_ca_file` as the only root (reference §5.2), plus any further `trust_service.endpoints`
//! serving the same keys ([`pool`]: spread, failover, health). Channels are lazy and reconnect
//! by themselves; calls fail fast while no signer is up, so reads keep serving and writes
//! return a clear error until one is back.

mod error;
mod pool;
mod unary;

use std::path::PathBuf;
use std::sync::Arc;

use tonic::Code;
use trustbridge_signer_proto::proto::key_management_client::KeyManagementClient;
use trustbridge_signer_proto::proto::signer_client::SignerClient;
use trustbridge_signer_proto::proto::{CreateKeyRequest, KeyId, SignatureRequest};
use trustbridge_tuf::metadata::Signature;
use trustbridge_tuf::{KeyType, PublicKey};

pub use error::{SignerError, SignerErrorKind};
pub use pool::HEALTH_EVERY;

use crate::metrics::Metrics;
use crate::tls::TlsFiles;

/// Health names notary-signer registers; notary-server checks both.
const HEALTH_NAMES: [&str; 2] = [
    "grpc.health.v1.Health.KeyManagement",
    "grpc.health.v1.Health.Signer",
];

/// A key as the signer reports it: `keyInfo.algorithm` names the key type.
fn public_key(
    addr: &str,
    rpc: &'static str,
    info: Option<trustbridge_signer_proto::proto::KeyInfo>,
    public: Vec<u8>,
) -> Result<PublicKey, SignerError> {
    let alg = info
        .and_then(|k| k.algorithm)
        .map(|a| a.algorithm)
        .unwrap_or_default();
    let key_type = KeyType::parse(&alg).map_err(|e| {
        SignerError::caused(
            SignerErrorKind::Refused,
            addr,
            rpc,
            "answered a key of a type notary does not know",
            e,
        )
    })?;
    Ok(PublicKey::new(key_type, public))
}

/// The key type CreateKey asks for unless `trust_service.key_algorithm` says (notary's
/// default).
pub const DEFAULT_KEY_ALGORITHM: &str = "ecdsa";
/// The key types notary-signer creates.
pub const KEY_ALGORITHMS: [&str; 3] = ["ecdsa", "ed25519", "rsa"];

/// Where the signer is and how to reach it (`trust_service`, type `remote`).
#[derive(Clone, Debug)]
pub struct TrustService {
    pub hostname: String,
    pub port: u16,
    pub key_algorithm: String,
    pub ca_file: PathBuf,
    pub client_cert: Option<TlsFiles>,
    /// `trust_service.endpoints` (ours): further signers serving the same keys (on one key
    /// database), as (host, port). Empty: notary's single signer.
    pub additional: Vec<(String, u16)>,
}

impl TrustService {
    /// Every endpoint, `hostname:port` first, each once.
    pub fn endpoints(&self) -> Vec<(String, u16)> {
        let mut all = vec![(self.hostname.clone(), self.port)];
        for e in &self.additional {
            if !all.contains(e) {
                all.push(e.clone());
            }
        }
        all
    }
}

/// What a key was created for, as the signer reports it (GetKeyInfo): its role, and its GUN
/// where the signer says (trustbridge-signer does; Go notary-signer leaves it empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyOwner {
    pub role: String,
    pub gun: String,
}

impl KeyOwner {
    /// Whether this key may sign `role` of `gun`: created for that role, and for that GUN
    /// when the signer names one. Keeps the bridge and token keys, and other repositories'
    /// keys, out of a repository's timestamp and snapshot.
    pub fn may_sign(&self, gun: &str, role: &str) -> bool {
        self.role == role && (self.gun.is_empty() || self.gun == gun)
    }
}

/// Owners are fixed when a key is made, so they are remembered (bounded: cleared when full).
const OWNER_CACHE: usize = 65_536;

#[derive(Clone)]
pub struct SignerLink {
    pool: Arc<pool::Pool>,
    algorithm: String,
    metrics: Metrics,
    owners: Arc<std::sync::Mutex<std::collections::HashMap<String, KeyOwner>>>,
}

impl SignerLink {
    pub fn new(cfg: &TrustService, metrics: Metrics) -> Result<Self, SignerError> {
        Ok(SignerLink {
            pool: Arc::new(pool::Pool::new(cfg, metrics.clone())?),
            algorithm: cfg.key_algorithm.clone(),
            metrics,
            owners: Default::default(),
        })
    }

    /// How many signer endpoints the link spreads over.
    pub fn endpoints(&self) -> usize {
        self.pool.endpoints.len()
    }

    /// Start the health task (with more than one endpoint; one is marked by its calls).
    pub fn watch_health(&self) -> Option<tokio::task::JoinHandle<()>> {
        (self.endpoints() > 1).then(|| pool::watch(self.pool.clone()))
    }

    /// The signer does not hold a key the caller needs.
    pub fn missing(&self, rpc: &'static str, message: impl Into<String>) -> SignerError {
        SignerError::new(SignerErrorKind::NoKey, self.pool.primary(), rpc, message)
    }

    /// The signer answered something the caller cannot use.
    pub fn refused(
        &self,
        rpc: &'static str,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> SignerError {
        SignerError::caused(
            SignerErrorKind::Refused,
            self.pool.primary(),
            rpc,
            message,
            source,
        )
    }

    fn fail(&self, rpc: &'static str, (s, addr): (tonic::Status, &str)) -> SignerError {
        self.metrics.signer_call(rpc, false);
        SignerError::status(addr, rpc, s)
    }

    /// CreateKey for (role, gun) with the configured algorithm.
    pub async fn create_key(&self, gun: &str, role: &str) -> Result<PublicKey, SignerError> {
        let req = CreateKeyRequest {
            algorithm: self.algorithm.clone(),
            gun: gun.into(),
            role: role.into(),
        };
        let (r, addr) = self
            .pool
            .call("CreateKey", |c| {
                let req = req.clone();
                async move { KeyManagementClient::new(c).create_key(req).await }
            })
            .await
            .map_err(|e| self.fail("CreateKey", e))?;
        self.metrics.signer_call("CreateKey", true);
        let r = r.into_inner();
        public_key(addr, "CreateKey", r.key_info, r.public_key)
    }

    /// GetKeyInfo for `key_id`: None if the signer does not hold it.
    async fn get_key_info(
        &self,
        key_id: &str,
    ) -> Result<Option<(trustbridge_signer_proto::proto::GetKeyInfoResponse, String)>, SignerError>
    {
        let res = self
            .pool
            .call("GetKeyInfo", |c| async move {
                KeyManagementClient::new(c)
                    .get_key_info(KeyId { id: key_id.into() })
                    .await
            })
            .await;
        match res {
            Ok((r, addr)) => {
                self.metrics.signer_call("GetKeyInfo", true);
                let r = r.into_inner();
                let owner = KeyOwner {
                    role: r.role.clone(),
                    gun: r.gun.clone(),
                };
                let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
                if owners.len() >= OWNER_CACHE {
                    owners.clear();
                }
                owners.insert(key_id.to_string(), owner);
                Ok(Some((r, addr.to_string())))
            }
            Err((s, _)) if s.code() == Code::NotFound => {
                self.metrics.signer_call("GetKeyInfo", true);
                Ok(None)
            }
            Err(e) => Err(self.fail("GetKeyInfo", e)),
        }
    }

    /// The public key of `key_id`, if the signer holds it.
    pub async fn key_info(&self, key_id: &str) -> Result<Option<PublicKey>, SignerError> {
        match self.get_key_info(key_id).await? {
            Some((r, addr)) => public_key(&addr, "GetKeyInfo", r.key_info, r.public_key).map(Some),
            None => Ok(None),
        }
    }

    /// What `key_id` was created for, if the signer holds it.
    pub async fn owner(&self, key_id: &str) -> Result<Option<KeyOwner>, SignerError> {
        if let Some(o) = self
            .owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
        {
            return Ok(Some(o.clone()));
        }
        Ok(self.get_key_info(key_id).await?.map(|(r, _)| KeyOwner {
            role: r.role,
            gun: r.gun,
        }))
    }

    /// Whether the signer holds the private key with canonical ID `key_id`.
    pub async fn holds(&self, key_id: &str) -> Result<bool, SignerError> {
        Ok(self.key_info(key_id).await?.is_some())
    }

    /// Sign `msg` with the private key `canonical_id`, reporting the signature under `keyid`
    /// (the ID root lists). None if the signer does not hold the key.
    pub async fn sign(
        &self,
        keyid: &str,
        canonical_id: &str,
        msg: &[u8],
    ) -> Result<Option<Signature>, SignerError> {
        let req = SignatureRequest {
            key_id: Some(KeyId {
                id: canonical_id.into(),
            }),
            content: msg.to_vec(),
        };
        let res = self
            .pool
            .call("Sign", |c| {
                let req = req.clone();
                async move { SignerClient::new(c).sign(req).await }
            })
            .await;
        match res {
            Ok((r, _)) => {
                self.metrics.signer_call("Sign", true);
                let r = r.into_inner();
                Ok(Some(Signature {
                    keyid: keyid.into(),
                    method: r.algorithm.map(|a| a.algorithm).unwrap_or_default(),
                    sig: r.content,
                }))
            }
            Err((s, _)) if s.code() == Code::NotFound => {
                self.metrics.signer_call("Sign", true);
                Ok(None)
            }
            Err(e) => Err(self.fail("Sign", e)),
        }
    }

    /// notary-server's "Trust operational" check: some endpoint has both health names
    /// SERVING (each endpoint's state is in `/metrics` as `trustbridge_signer_up`).
    pub async fn check_health(&self) -> Result<(), SignerError> {
        self.pool.check_all().await
    }
}
