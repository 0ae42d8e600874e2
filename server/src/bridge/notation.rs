//! The Notation side of the bridge: every tag the Cosign side signs is also signed for
//! Notation (Notary Project signatures, trustbridge-notation), as an OCI 1.1 referrer of the
//! image: artifactType `application/vnd.cncf.notary.signature`, the empty config, one
//! `application/jose+json` layer holding the JWS envelope, `subject` = the image, and the
//! chain's thumbprint annotation. The key is the signer's (Sign RPC; ES256 wants notary's raw
//! r||s as it is), its chain comes with GetKeyInfo (`ecdsa-x509`, leaf first), so a leaf the
//! signer renews is used within [`CHAIN_TTL`].
//!
//! Our signatures carry the claim's `dev.trustbridge/notary-*` annotations twice: signed, as
//! the payload's target annotations (Notation's user metadata: `notation verify
//! --user-metadata dev.trustbridge/notary-target=v1`), and on the manifest, where the referrers
//! listing shows them, so a revoke removes exactly the signatures of that GUN, tag and role.
//! A signature made with an older leaf is replaced by one with the current chain (the
//! reconciler finds it by its thumbprints).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use trustbridge_cosign::payload::Claim;
use trustbridge_notation::chain::{self, Alg};
use trustbridge_notation::envelope;
use trustbridge_notation::media::{JWS_ENVELOPE, SIGNATURE_ARTIFACT, THUMBPRINT};
use trustbridge_tuf::x509::{certificate_ders, certificates_to_pem};

use super::Bridge;
use super::referrers::Referrer;
use super::registry::{Registry, RegistryError};
use crate::signer_link::SignerError;

/// `trustbridge.bridge.notation`: Notation signatures beside Cosign's (off when absent).
#[derive(Clone, Debug)]
pub struct NotationConfig {
    /// The signer's Notation key (`trustbridge-signer notation-key id`).
    pub key_id: String,
}

/// How long a chain read from the signer is used (by the CA endpoint and the reconciler)
/// before it is read again, and how often the server looks for a renewed leaf. Signing
/// always reads it afresh, so no signature is made with a chain the signer has replaced.
pub const CHAIN_TTL: Duration = Duration::from_secs(10);

/// The program named in our envelopes' unprotected header.
const AGENT: &str = concat!("trustbridge/", env!("CARGO_PKG_VERSION"));

/// The signing key's chain as the signer serves it, checked.
#[derive(Debug)]
pub struct SigningChain {
    pub ders: Vec<Vec<u8>>,
    pub alg: Alg,
    pub leaf_spki: Vec<u8>,
    pub subject: String,
    pub not_after: time::OffsetDateTime,
    /// The thumbprint annotation's value: which chain a signature was made with.
    pub thumbprints: String,
}

impl SigningChain {
    /// The root certificate, PEM: the trust anchor Notation users add to their trust store.
    pub fn root_pem(&self) -> String {
        String::from_utf8_lossy(&certificates_to_pem(&self.ders[self.ders.len() - 1..]))
            .into_owned()
    }
}

/// Whether a referrer entry is our Notation signature for exactly this claim.
pub fn is_claim(entry: &Value, claim: &Claim<'_>) -> bool {
    entry["artifactType"] == SIGNATURE_ARTIFACT && claim.annotated_in(&entry["annotations"])
}

impl Bridge {
    fn notation_missing(&self, cfg: &NotationConfig, rpc: &'static str) -> SignerError {
        self.signer.missing(
            rpc,
            format!(
                "the signer does not hold Notation key {} (trustbridge-signer notation-key generate)",
                cfg.key_id
            ),
        )
    }

    /// The Notation chain, read within [`CHAIN_TTL`] or now.
    pub async fn notation_chain(&self) -> Result<Arc<SigningChain>, RegistryError> {
        if let Some((at, c)) = self.notation.lock().await.as_ref()
            && at.elapsed() < CHAIN_TTL
        {
            return Ok(c.clone());
        }
        self.read_notation_chain().await
    }

    /// The Notation chain as the signer serves it now; an expired or broken chain is the
    /// admin's to fix (`notation-key renew` or `import`), so jobs wait as for a missing key.
    async fn read_notation_chain(&self) -> Result<Arc<SigningChain>, RegistryError> {
        let Some(cfg) = &self.cfg.notation else {
            return Err(RegistryError::not_configured(
                "Notation signing is off (trustbridge.bridge.notation)",
            ));
        };
        let key = self
            .signer
            .key_info(&cfg.key_id)
            .await?
            .ok_or_else(|| self.notation_missing(cfg, "GetKeyInfo"))?;
        if !key.key_type.is_x509() {
            return Err(RegistryError::not_configured(format!(
                "Notation key {} has no certificate chain in the signer: run `trustbridge-signer notation-key import --cert chain.pem` (or generate)",
                cfg.key_id
            )));
        }
        let ders = certificate_ders(&key.public).map_err(|e| {
            RegistryError::not_configured(format!("the Notation chain in the signer: {e}"))
        })?;
        let info = chain::check(&ders, Some(time::OffsetDateTime::now_utc())).map_err(|e| {
            RegistryError::not_configured(format!(
                "the Notation chain cannot sign: {e} (renew: `trustbridge-signer notation-key renew`, or import a new chain)"
            ))
        })?;
        let c = Arc::new(SigningChain {
            thumbprints: envelope::thumbprints(&ders),
            ders,
            alg: info.alg,
            leaf_spki: info.leaf_spki,
            subject: info.subject,
            not_after: info.not_after,
        });
        *self.notation.lock().await = Some((Instant::now(), c.clone()));
        Ok(c)
    }

    /// Sign one claim for Notation unless a signature of ours with the current chain is
    /// attached; then drop ours made with an older chain.
    pub(super) async fn attach_notation(
        &self,
        registry: &Registry,
        host: &str,
        repo: &str,
        claim: &Claim<'_>,
    ) -> Result<(), RegistryError> {
        let Some(cfg) = &self.cfg.notation else {
            return Ok(());
        };
        let chain = self.read_notation_chain().await?;
        let current = |e: &Value| e["annotations"][THUMBPRINT] == chain.thumbprints.as_str();
        let entries = registry.referrers(host, repo, claim.digest_hex).await?;
        if !entries.iter().any(|e| is_claim(e, claim) && current(e)) {
            let subject = registry.subject(host, repo, claim.digest_hex).await?;
            let claims = claim.annotations();
            let payload = envelope::payload(&subject, &claims);
            let now = time::OffsetDateTime::now_utc();
            let protected = envelope::protected_header(chain.alg, now);
            let input = envelope::signing_input(&protected, &payload);
            let sig = self
                .signer
                .sign(&cfg.key_id, &cfg.key_id, &input)
                .await?
                .ok_or_else(|| self.notation_missing(cfg, "Sign"))?;
            chain
                .alg
                .verify(&chain.leaf_spki, &input, &sig.sig)
                .map_err(|e| {
                    RegistryError::from(self.signer.refused(
                        "Sign",
                        "answered a signature the Notation certificate does not verify (is notation.key_id the chain's key?)",
                        e,
                    ))
                })?;
            let env = envelope::envelope(&protected, &payload, &chain.ders, &sig.sig, AGENT);
            let mut annotations = json!({
                THUMBPRINT: chain.thumbprints,
                "org.opencontainers.image.created": envelope::rfc3339(now),
            });
            for (k, v) in claims {
                annotations[k] = v.into();
            }
            registry
                .put_referrer(
                    host,
                    repo,
                    claim.digest_hex,
                    &Referrer {
                        artifact_type: SIGNATURE_ARTIFACT,
                        layer_media_type: JWS_ENVELOPE,
                        blob: &env,
                        subject: &subject,
                        annotations: &annotations,
                    },
                )
                .await?;
        }
        registry
            .remove_referrers(host, repo, claim.digest_hex, |e| {
                is_claim(e, claim) && !current(e)
            })
            .await?;
        Ok(())
    }

    /// Remove our Notation signatures for one claim (every chain's).
    pub(super) async fn revoke_notation(
        &self,
        registry: &Registry,
        host: &str,
        repo: &str,
        claim: &Claim<'_>,
    ) -> Result<(), RegistryError> {
        registry
            .remove_referrers(host, repo, claim.digest_hex, |e| is_claim(e, claim))
            .await?;
        Ok(())
    }

    /// While the server runs: read the chain now and every [`CHAIN_TTL`] (on the replica
    /// holding the bridge lease) and, when it changed (a renewed leaf, an imported chain),
    /// reconcile at once, which queues every tag whose signature has another chain. A change
    /// while the server was down is found by the periodic reconciler. Returns at once when
    /// Notation is off.
    pub async fn follow_notation_chain(&self, repo: &crate::repo::Repo) {
        if self.cfg.notation.is_none() {
            return;
        }
        let mut last: Option<String> = None;
        loop {
            if self.db(|s| s.bridge_lease()) {
                match self.read_notation_chain().await {
                    Ok(c) => {
                        if last.as_ref().is_some_and(|l| *l != c.thumbprints) {
                            tracing::info!(subject = %c.subject, "bridge: the Notation chain changed; signing every mirrored tag again");
                            if let Err(e) = self.reconcile(repo, "").await {
                                tracing::warn!(error = %e, "bridge: reconciling after the chain changed failed");
                                tokio::time::sleep(CHAIN_TTL).await;
                                continue;
                            }
                        }
                        last = Some(c.thumbprints.clone());
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "bridge: the Notation chain cannot be read")
                    }
                }
            }
            tokio::time::sleep(CHAIN_TTL).await;
        }
    }

    /// Whether `referrers` (the image's listing) hold our Notation signature for the claim,
    /// made with the current chain (true when Notation is off).
    pub(super) async fn notation_signed(
        &self,
        referrers: &[Value],
        claim: &Claim<'_>,
    ) -> Result<bool, RegistryError> {
        if self.cfg.notation.is_none() {
            return Ok(true);
        }
        let chain = self.notation_chain().await?;
        Ok(referrers.iter().any(|e| {
            is_claim(e, claim) && e["annotations"][THUMBPRINT] == chain.thumbprints.as_str()
        }))
    }
}
