//! The link to the signer (trustbridge-signer or Go notary-signer): notary-signer's gRPC API
//! over mutual TLS, dialled as `hostname:port` and verified against `hostname` with
//! `tls_ca_file` as the only root (reference §5.2). The channel is lazy and reconnects by
//! itself; calls fail fast while the signer is down, so reads keep serving and writes return
//! a clear error until it is back.

use std::path::PathBuf;
use std::time::Duration;

use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use trustbridge_signer_proto::proto::key_management_client::KeyManagementClient;
use trustbridge_signer_proto::proto::signer_client::SignerClient;
use trustbridge_signer_proto::proto::{CreateKeyRequest, KeyId, SignatureRequest};
use trustbridge_tuf::metadata::Signature;
use trustbridge_tuf::{KeyType, PublicKey};

use crate::metrics::Metrics;
use crate::tls::TlsFiles;

/// Health names notary-signer registers; notary-server checks both.
const HEALTH_NAMES: [&str; 2] = [
    "grpc.health.v1.Health.KeyManagement",
    "grpc.health.v1.Health.Signer",
];

/// What kind of failure a signer call met, as far as the caller can act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignerErrorKind {
    /// The signer could not be reached or did not answer in time (notary-server's "gRPC
    /// transport failure"): retry, or serve reads meanwhile.
    Unavailable,
    /// The signer does not hold the key asked for.
    NoKey,
    /// The signer answered and refused (bad request, unknown algorithm, not serving).
    Refused,
    /// The link cannot be set up (address, CA or client certificate): a start-up error.
    Config,
}

/// A failed signer call: its kind, the endpoint and RPC, and the gRPC status or I/O error kept
/// as the cause.
#[derive(Debug, thiserror::Error)]
#[error("signer at {addr} ({rpc}): {message}")]
pub struct SignerError {
    pub kind: SignerErrorKind,
    pub addr: String,
    pub rpc: &'static str,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl SignerError {
    pub fn new(
        kind: SignerErrorKind,
        addr: &str,
        rpc: &'static str,
        message: impl Into<String>,
    ) -> Self {
        SignerError {
            kind,
            addr: addr.to_string(),
            rpc,
            message: message.into(),
            source: None,
        }
    }

    pub fn caused(
        kind: SignerErrorKind,
        addr: &str,
        rpc: &'static str,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        SignerError {
            source: Some(source.into()),
            ..SignerError::new(kind, addr, rpc, message)
        }
    }

    /// A gRPC status: transport failures and deadlines are `Unavailable`, the rest `Refused`.
    fn status(addr: &str, rpc: &'static str, s: tonic::Status) -> Self {
        let kind = match s.code() {
            Code::Unavailable | Code::DeadlineExceeded => SignerErrorKind::Unavailable,
            Code::NotFound => SignerErrorKind::NoKey,
            _ => SignerErrorKind::Refused,
        };
        let message = match kind {
            SignerErrorKind::Unavailable => format!("unavailable: {}", s.message()),
            _ => s.message().to_string(),
        };
        SignerError::caused(kind, addr, rpc, message, s)
    }
}

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
    channel: Channel,
    algorithm: String,
    addr: String,
    metrics: Metrics,
    owners: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, KeyOwner>>>,
}

fn read(addr: &str, path: &std::path::Path) -> Result<Vec<u8>, SignerError> {
    std::fs::read(path).map_err(|e| {
        SignerError::caused(
            SignerErrorKind::Config,
            addr,
            "connect",
            format!("read {}", path.display()),
            e,
        )
    })
}

impl SignerLink {
    pub fn new(cfg: &TrustService, metrics: Metrics) -> Result<Self, SignerError> {
        let addr = format!("{}:{}", cfg.hostname, cfg.port);
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&addr, &cfg.ca_file)?))
            .domain_name(cfg.hostname.clone());
        if let Some(c) = &cfg.client_cert {
            tls = tls.identity(Identity::from_pem(
                read(&addr, &c.cert)?,
                read(&addr, &c.key)?,
            ));
        }
        let config = |what: &str, e: tonic::transport::Error| {
            SignerError::caused(SignerErrorKind::Config, &addr, "connect", what, e)
        };
        let channel = Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| config("trust_service address", e))?
            .tls_config(tls)
            .map_err(|e| config("trust_service TLS", e))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .connect_lazy();
        Ok(SignerLink {
            channel,
            algorithm: cfg.key_algorithm.clone(),
            addr,
            metrics,
            owners: Default::default(),
        })
    }

    /// The signer does not hold a key the caller needs.
    pub fn missing(&self, rpc: &'static str, message: impl Into<String>) -> SignerError {
        SignerError::new(SignerErrorKind::NoKey, &self.addr, rpc, message)
    }

    /// The signer answered something the caller cannot use.
    pub fn refused(
        &self,
        rpc: &'static str,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> SignerError {
        SignerError::caused(SignerErrorKind::Refused, &self.addr, rpc, message, source)
    }

    fn fail(&self, rpc: &'static str, s: tonic::Status) -> SignerError {
        self.metrics.signer_call(rpc, false);
        SignerError::status(&self.addr, rpc, s)
    }

    /// CreateKey for (role, gun) with the configured algorithm.
    pub async fn create_key(&self, gun: &str, role: &str) -> Result<PublicKey, SignerError> {
        let r = KeyManagementClient::new(self.channel.clone())
            .create_key(CreateKeyRequest {
                algorithm: self.algorithm.clone(),
                gun: gun.into(),
                role: role.into(),
            })
            .await
            .map_err(|s| self.fail("CreateKey", s))?
            .into_inner();
        self.metrics.signer_call("CreateKey", true);
        public_key(&self.addr, "CreateKey", r.key_info, r.public_key)
    }

    /// GetKeyInfo for `key_id`: None if the signer does not hold it.
    async fn get_key_info(
        &self,
        key_id: &str,
    ) -> Result<Option<trustbridge_signer_proto::proto::GetKeyInfoResponse>, SignerError> {
        match KeyManagementClient::new(self.channel.clone())
            .get_key_info(KeyId { id: key_id.into() })
            .await
        {
            Ok(r) => {
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
                Ok(Some(r))
            }
            Err(s) if s.code() == Code::NotFound => {
                self.metrics.signer_call("GetKeyInfo", true);
                Ok(None)
            }
            Err(s) => Err(self.fail("GetKeyInfo", s)),
        }
    }

    /// The public key of `key_id`, if the signer holds it.
    pub async fn key_info(&self, key_id: &str) -> Result<Option<PublicKey>, SignerError> {
        match self.get_key_info(key_id).await? {
            Some(r) => public_key(&self.addr, "GetKeyInfo", r.key_info, r.public_key).map(Some),
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
        Ok(self.get_key_info(key_id).await?.map(|r| KeyOwner {
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
        match SignerClient::new(self.channel.clone())
            .sign(SignatureRequest {
                key_id: Some(KeyId {
                    id: canonical_id.into(),
                }),
                content: msg.to_vec(),
            })
            .await
        {
            Ok(r) => {
                self.metrics.signer_call("Sign", true);
                let r = r.into_inner();
                Ok(Some(Signature {
                    keyid: keyid.into(),
                    method: r.algorithm.map(|a| a.algorithm).unwrap_or_default(),
                    sig: r.content,
                }))
            }
            Err(s) if s.code() == Code::NotFound => {
                self.metrics.signer_call("Sign", true);
                Ok(None)
            }
            Err(s) => Err(self.fail("Sign", s)),
        }
    }

    /// notary-server's "Trust operational" check: both health names SERVING.
    pub async fn check_health(&self) -> Result<(), SignerError> {
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_client::HealthClient;
        let mut client = HealthClient::new(self.channel.clone());
        for name in HEALTH_NAMES {
            let r = client
                .check(HealthCheckRequest {
                    service: name.into(),
                })
                .await
                .map_err(|s| self.fail("Health", s))?
                .into_inner();
            if r.status != 1 {
                return Err(SignerError::new(
                    SignerErrorKind::Refused,
                    &self.addr,
                    "Health",
                    format!("{name} is not serving"),
                ));
            }
        }
        Ok(())
    }
}
