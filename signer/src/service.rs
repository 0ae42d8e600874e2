//! The gRPC services, answering as notary-signer's `signer/api/rpc_api.go` does: the same
//! messages, the same status codes (NotFound for an unknown key, Unknown for an unsupported
//! algorithm, Internal otherwise) and the same "key %s not found" text.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::keystore::KeyStore;
use crate::proto;
use crate::proto::key_management_server::KeyManagement;
use crate::proto::signer_server::Signer;

/// Both services share one key store.
#[derive(Clone)]
pub struct SignerService {
    store: Arc<KeyStore>,
}

impl SignerService {
    pub fn new(store: Arc<KeyStore>) -> Self {
        SignerService { store }
    }

    /// Run a store call off the async workers: decrypting a key costs a PBKDF2 and the
    /// store holds a SQLite connection.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&KeyStore) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Error::Invalid(format!("worker failed: {e}")))?
    }
}

fn key_info(key_id: String, algorithm: &str) -> Option<proto::KeyInfo> {
    Some(proto::KeyInfo {
        key_id: Some(proto::KeyId { id: key_id }),
        algorithm: Some(proto::Algorithm {
            algorithm: algorithm.to_string(),
        }),
    })
}

fn requested_id(k: Option<proto::KeyId>) -> String {
    k.map(|k| k.id).unwrap_or_default()
}

fn not_found_or_internal(e: Error) -> Status {
    match e {
        Error::KeyNotFound(id) => Status::not_found(format!("key {id} not found")),
        other => Status::internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl KeyManagement for SignerService {
    async fn create_key(
        &self,
        req: Request<proto::CreateKeyRequest>,
    ) -> Result<Response<proto::PublicKey>, Status> {
        let r = req.into_inner();
        let (role, gun, algorithm) = (r.role, r.gun, r.algorithm);
        let res = {
            let (role, gun, algorithm) = (role.clone(), gun.clone(), algorithm.clone());
            self.blocking(move |s| s.create(&role, &gun, &algorithm))
                .await
        };
        match res {
            Ok(key) => {
                let id = key.id();
                tracing::info!(key_id = %id, %role, %gun, %algorithm, "CreateKey");
                Ok(Response::new(proto::PublicKey {
                    key_info: key_info(id, key.key_type.as_str()),
                    public_key: key.public,
                }))
            }
            Err(e @ Error::UnsupportedAlgorithm(_)) => {
                tracing::error!(error = %e, "CreateKey");
                Err(Status::unknown(e.to_string()))
            }
            Err(e) => {
                tracing::error!(error = %e, %role, %gun, "CreateKey failed");
                Err(Status::internal("Key creation failed"))
            }
        }
    }

    async fn delete_key(
        &self,
        req: Request<proto::KeyId>,
    ) -> Result<Response<proto::Void>, Status> {
        let id = req.into_inner().id;
        let key_id = id.clone();
        match self.blocking(move |s| s.delete(&key_id)).await {
            Ok(existed) => {
                tracing::info!(key_id = %id, existed, "DeleteKey");
                Ok(Response::new(proto::Void {}))
            }
            Err(e) => {
                tracing::error!(key_id = %id, error = %e, "DeleteKey failed");
                Err(Status::internal(format!(
                    "Key deletion for KeyID {id} failed"
                )))
            }
        }
    }

    async fn get_key_info(
        &self,
        req: Request<proto::KeyId>,
    ) -> Result<Response<proto::GetKeyInfoResponse>, Status> {
        let id = req.into_inner().id;
        let key_id = id.clone();
        match self
            .blocking(move |s| crate::notation::served_info(s, &key_id))
            .await
        {
            Ok(info) => Ok(Response::new(proto::GetKeyInfoResponse {
                key_info: key_info(info.key_id, &info.algorithm),
                public_key: info.public.public,
                role: info.role,
                gun: info.gun,
            })),
            Err(e) => {
                tracing::error!(key_id = %id, error = %e, "GetKeyInfo");
                Err(not_found_or_internal(e))
            }
        }
    }
}

#[tonic::async_trait]
impl Signer for SignerService {
    async fn sign(
        &self,
        req: Request<proto::SignatureRequest>,
    ) -> Result<Response<proto::Signature>, Status> {
        let r = req.into_inner();
        let id = requested_id(r.key_id);
        let key_id = id.clone();
        let content = r.content;
        let res = match self.store.sign_cached(&key_id, &content) {
            Some(res) => res,
            None => self.blocking(move |s| s.sign(&key_id, &content)).await,
        };
        match res {
            Ok(sig) => {
                tracing::debug!(key_id = %id, "Sign");
                Ok(Response::new(proto::Signature {
                    key_info: key_info(sig.key.id(), sig.key.key_type.as_str()),
                    algorithm: Some(proto::Algorithm {
                        algorithm: sig.method.to_string(),
                    }),
                    content: sig.bytes,
                }))
            }
            Err(e) => {
                tracing::error!(key_id = %id, error = %e, "Sign");
                Err(not_found_or_internal(e))
            }
        }
    }
}
