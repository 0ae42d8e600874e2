//! The Cosign bridge: every target an accepted update adds or changes becomes a Cosign
//! signature in the registry the GUN names (cosign-bridge.md). Jobs are written with the update
//! (an outbox in the same transaction); this worker delivers them with retry and backoff, so a
//! registry or signer outage, or a restart, loses nothing. Signatures come from the bridge key
//! in the signer (Sign RPC, r||s converted to DER).

pub mod backfill;
pub mod notation;
pub mod reconcile;
mod referrers;
pub mod registry;

pub use crate::mirror::OnExpiry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;

use trustbridge_cosign::{bundle, payload};

use crate::signer_link::{SignerError, SignerLink};
use crate::storage::{Action, Finish, Job, MetaStore, StorageError};
use registry::{RegistryError, RegistryErrorKind};

/// Per-registry settings (`trustbridge.bridge.registries.<host>`).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct RegistryConfig {
    #[serde(default)]
    pub plain_http: bool,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// PEM CA bundle the registry's certificate must chain to (instead of the system roots);
    /// relative to the config file.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Clone, Debug)]
pub struct BridgeConfig {
    /// The signer key (role `cosign`) that signs payloads.
    pub key_id: String,
    pub registries: HashMap<String, RegistryConfig>,
    /// Longest wait between retries of a failing job (default 300 s).
    pub max_backoff: Duration,
    /// GUN prefix → registry/repository prefix, for GUNs whose images live elsewhere
    /// (`docker.io/library/` → `mirror.example/library/`). The longest matching prefix wins.
    pub rewrite: Vec<(String, String)>,
    /// Deliveries tried before a job is `dead` (0: retry forever; default 50, about four hours
    /// at the default backoff cap). `trustbridge-server bridge retry` revives dead jobs.
    pub max_attempts: u32,
    /// How often the reconciler reads every mirrored tag back from its registry (default 10
    /// minutes; None: only on demand, `trustbridge-server bridge verify`).
    pub reconcile_every: Option<Duration>,
    /// Whether tags of expired roles stay signed (default) or are revoked as DCT refuses them.
    pub on_expiry: OnExpiry,
    /// Also deliver to any loopback registry not named in `registries` (plain HTTP): dev
    /// mode's setting. Otherwise only the registries named there are ever contacted.
    pub allow_loopback: bool,
    /// Also write cosign v3's layout: a Sigstore bundle attached through OCI referrers (the
    /// `sha256-<hex>` fallback index where the registry lacks the API). The legacy `.sig`
    /// layer is always written: every verifier reads it (cosign-bridge.md §5).
    pub new_bundle_format: bool,
    /// Also sign every mirrored tag for Notation (off when None).
    pub notation: Option<notation::NotationConfig>,
}

impl Default for BridgeConfig {
    /// Everything but the key: the signer's bridge key ID has no default.
    fn default() -> Self {
        BridgeConfig {
            key_id: String::new(),
            registries: HashMap::new(),
            max_backoff: Duration::from_secs(300),
            rewrite: vec![],
            max_attempts: 50,
            reconcile_every: Some(Duration::from_secs(600)),
            on_expiry: OnExpiry::Keep,
            allow_loopback: false,
            new_bundle_format: false,
            notation: None,
        }
    }
}

/// Where the image of `gun` lives: `gun` after the longest matching rewrite.
pub fn image_repository(gun: &str, rewrite: &[(String, String)]) -> String {
    rewrite
        .iter()
        .filter(|(from, _)| gun.starts_with(from.as_str()))
        .max_by_key(|(from, _)| from.len())
        .map(|(from, to)| format!("{to}{}", &gun[from.len()..]))
        .unwrap_or_else(|| gun.to_string())
}

/// The registry and repository a GUN's images live in (see
/// [`trustbridge_cosign::names::split_repository`]).
pub use trustbridge_cosign::names::split_repository as split_gun;

pub struct Bridge {
    metrics: crate::metrics::Metrics,
    cfg: BridgeConfig,
    store: Arc<dyn MetaStore>,
    signer: SignerLink,
    clients: tokio::sync::Mutex<HashMap<String, Arc<registry::Registry>>>,
    /// Registries with a delivery under way (the worker loop starts one per registry at a
    /// time, so a hung or slow registry holds up only its own jobs).
    busy: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The Notation chain last read from the signer, and when.
    notation: tokio::sync::Mutex<Option<(std::time::Instant, Arc<notation::SigningChain>)>>,
}

/// Retry delay after `attempts` failures: 1 s doubling, at most `max`.
fn backoff(attempts: i64, max: Duration) -> Duration {
    Duration::from_secs(1u64 << attempts.clamp(0, 16)).min(max)
}

/// Whether `host` (`name[:port]`) is this machine: `localhost`, 127.0.0.0/8 or ::1.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Most registries delivered to at once.
const MAX_REGISTRIES_AT_ONCE: usize = 16;
/// Longest one job may take (several registry calls), after which it counts as a transient
/// failure.
const JOB_TIMEOUT: Duration = Duration::from_secs(90);

impl Bridge {
    pub fn new(
        cfg: BridgeConfig,
        store: Arc<dyn MetaStore>,
        signer: SignerLink,
        metrics: crate::metrics::Metrics,
    ) -> Self {
        Bridge {
            metrics,
            cfg,
            store,
            signer,
            clients: tokio::sync::Mutex::new(HashMap::new()),
            busy: Default::default(),
            notation: Default::default(),
        }
    }

    /// A storage read from the bridge's tasks ([`crate::storage::in_place`]).
    fn db<T>(&self, f: impl FnOnce(&dyn MetaStore) -> T) -> T {
        crate::storage::in_place(self.store.as_ref(), f)
    }

    /// The registry and repository a GUN's images live in (after rewrites).
    fn repository_of(&self, gun: &str) -> (String, String) {
        split_gun(&image_repository(gun, &self.cfg.rewrite))
    }

    /// The client for `host`, if the config allows it: a `registries` entry, or any loopback
    /// registry with `allow_loopback` (dev mode), reached over plain HTTP.
    async fn client(&self, host: &str) -> Result<Arc<registry::Registry>, RegistryError> {
        let mut c = self.clients.lock().await;
        if let Some(r) = c.get(host) {
            return Ok(r.clone());
        }
        let rc = match self.cfg.registries.get(host) {
            Some(rc) => rc.clone(),
            None if self.cfg.allow_loopback && is_loopback(host) => RegistryConfig {
                plain_http: true,
                ..Default::default()
            },
            None => {
                return Err(RegistryError::not_configured(format!(
                    "registry {host} is not configured: add it to trustbridge.bridge.registries (then `trustbridge-server bridge retry`)"
                )));
            }
        };
        let auth = match (rc.username, rc.password) {
            (Some(u), Some(p)) => RegistryAuth::Basic(u, p),
            _ => RegistryAuth::Anonymous,
        };
        let ca = match &rc.ca_file {
            Some(p) => Some(std::fs::read(p).map_err(|e| {
                RegistryError::not_configured(format!(
                    "registry {host}: ca_file {}: {e}",
                    p.display()
                ))
            })?),
            None => None,
        };
        let made = Arc::new(registry::Registry::new(rc.plain_http, auth, ca)?);
        c.insert(host.to_string(), made.clone());
        Ok(made)
    }

    fn missing_key(&self, rpc: &'static str) -> SignerError {
        self.signer.missing(
            rpc,
            format!("the signer does not hold bridge key {}", self.cfg.key_id),
        )
    }

    /// The bridge key's public half, as the signer holds it.
    async fn bridge_key(&self) -> Result<trustbridge_tuf::PublicKey, SignerError> {
        self.signer
            .key_info(&self.cfg.key_id)
            .await?
            .ok_or_else(|| self.missing_key("GetKeyInfo"))
    }

    /// `data` signed with the bridge key (Sign RPC), as the ASN.1 DER cosign expects: the
    /// signer answers notary's raw r||s.
    async fn sign_der(&self, data: &[u8]) -> Result<Vec<u8>, SignerError> {
        let sig = self
            .signer
            .sign(&self.cfg.key_id, &self.cfg.key_id, data)
            .await?
            .ok_or_else(|| self.missing_key("Sign"))?;
        trustbridge_signer_proto::keys::raw_to_der(&sig.sig).map_err(|e| {
            self.signer
                .refused("Sign", "answered a signature cosign cannot use", e)
        })
    }

    /// The bridge public key as `cosign.pub` PEM.
    pub async fn public_pem(&self) -> Result<String, SignerError> {
        trustbridge_signer_proto::keys::public_pem(&self.bridge_key().await?).map_err(|e| {
            self.signer
                .refused("GetKeyInfo", "holds a bridge key cosign cannot use", e)
        })
    }

    async fn deliver(&self, job: &Job) -> Result<(), RegistryError> {
        let (host, repo) = self.repository_of(&job.gun);
        let reference = format!("{host}/{repo}");
        let claim = payload::Claim {
            reference: &reference,
            gun: Some(&job.gun),
            digest_hex: &job.digest_hex,
            tag: &job.tag,
            role: &job.role,
            signers: &job.signers,
        };
        let registry = self.client(&host).await?;
        if job.action == Action::Revoke {
            // Only layers and bundles that name this GUN (see Claim::revocable).
            for form in claim.revocable() {
                registry
                    .remove_signature(&host, &repo, &job.digest_hex, &payload::payload(&form))
                    .await?;
                if self.cfg.new_bundle_format {
                    let st = bundle::statement(&form);
                    registry
                        .remove_bundle(&host, &repo, &job.digest_hex, &bundle::sha256(&st))
                        .await?;
                }
                if self.cfg.notation.is_some() {
                    self.revoke_notation(&registry, &host, &repo, &form).await?;
                }
            }
            return Ok(());
        }
        let payload = payload::payload(&claim);
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.sign_der(&payload).await?);
        registry
            .add_signature(&host, &repo, &job.digest_hex, &payload, &b64)
            .await?;
        if self.cfg.new_bundle_format {
            let st = bundle::statement(&claim);
            self.attach_bundle(&registry, &host, &repo, &job.digest_hex, &st)
                .await?;
        }
        self.attach_notation(&registry, &host, &repo, &claim)
            .await?;
        Ok(())
    }

    /// cosign v3's layout for one sign job, unless a bundle with the same statement is
    /// already attached (delivery is retried; the bundle bytes are not reproducible).
    async fn attach_bundle(
        &self,
        registry: &registry::Registry,
        host: &str,
        repo: &str,
        digest_hex: &str,
        statement: &[u8],
    ) -> Result<(), RegistryError> {
        if registry
            .has_bundle(host, repo, digest_hex, &bundle::sha256(statement))
            .await?
        {
            return Ok(());
        }
        let subject = registry.subject(host, repo, digest_hex).await?;
        let key = self.bridge_key().await?;
        let der = self
            .sign_der(&trustbridge_tuf::dsse::pae(
                trustbridge_cosign::media::INTOTO_PAYLOAD,
                statement,
            ))
            .await?;
        let bundle_json = bundle::bundle(statement, &der, &key.public);
        let created = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| RegistryError::failed("the bundle's creation time", e))?;
        registry
            .put_referrer(
                host,
                repo,
                digest_hex,
                &referrers::Referrer {
                    artifact_type: trustbridge_cosign::media::BUNDLE,
                    layer_media_type: trustbridge_cosign::media::BUNDLE,
                    blob: &bundle_json,
                    subject: &subject,
                    annotations: &bundle::annotations(statement, &created),
                },
            )
            .await
    }

    /// Deliver one registry's jobs in order (a tag's sign before the revoke of its old
    /// layer), recording each outcome. A transient failure ends the batch: the registry is
    /// likely down, and the rest stay due for the next round.
    async fn deliver_batch(&self, jobs: &[Job]) -> Vec<bool> {
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            let outcome = match tokio::time::timeout(JOB_TIMEOUT, self.deliver(job)).await {
                Ok(o) => o,
                Err(_) => Err(RegistryError::transient(format!(
                    "no answer within {} s",
                    JOB_TIMEOUT.as_secs()
                ))),
            };
            outcomes.push(outcome.is_ok());
            self.metrics
                .bridge_job(job.action.as_str(), outcome.is_ok());
            let exhausted =
                self.cfg.max_attempts > 0 && job.attempts + 1 >= self.cfg.max_attempts as i64;
            let finish = match &outcome {
                Ok(()) => {
                    tracing::info!(gun = %job.gun, tag = %job.tag, digest = %job.digest_hex, action = %job.action, "bridge: mirrored");
                    Finish::Mirrored
                }
                Err(e) if e.kind == RegistryErrorKind::NotConfigured => {
                    tracing::warn!(gun = %job.gun, tag = %job.tag, error = %e, "bridge: registry not configured; not retried");
                    Finish::NotConfigured(e.to_string())
                }
                Err(e) if !e.retryable() => {
                    tracing::error!(gun = %job.gun, tag = %job.tag, error = %e, "bridge: the registry refused; dead until `trustbridge-server bridge retry`");
                    Finish::Dead(e.to_string())
                }
                Err(e) if exhausted => {
                    tracing::error!(gun = %job.gun, tag = %job.tag, job = job.id, error = %e, "bridge: giving up after {} attempts; `trustbridge-server bridge retry` requeues it", job.attempts + 1);
                    Finish::Dead(e.to_string())
                }
                Err(e) => {
                    tracing::warn!(gun = %job.gun, tag = %job.tag, attempts = job.attempts + 1, error = %e, "bridge: mirroring failed, will retry");
                    Finish::Retry(
                        e.to_string(),
                        backoff(job.attempts + 1, self.cfg.max_backoff),
                    )
                }
            };
            let stop = matches!(finish, Finish::Retry(..));
            let id = job.id;
            if let Err(e) =
                crate::storage::write(&self.store, move |s| s.finish_job(id, finish)).await
            {
                tracing::warn!(error = %e, "bridge: recording a job failed");
            }
            if stop {
                break;
            }
        }
        outcomes
    }

    /// Due jobs grouped by registry, oldest first within each (skipping registries in `busy`).
    fn due_by_registry(&self, busy: &std::collections::HashSet<String>) -> Vec<(String, Vec<Job>)> {
        let jobs = match self.db(|s| s.due_jobs(512)) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "bridge: reading jobs failed");
                return vec![];
            }
        };
        let mut groups: Vec<(String, Vec<Job>)> = Vec::new();
        for job in jobs {
            let (host, _) = self.repository_of(&job.gun);
            if busy.contains(&host) {
                continue;
            }
            match groups.iter_mut().find(|(h, _)| *h == host) {
                Some((_, g)) => g.push(job),
                None => groups.push((host, vec![job])),
            }
        }
        groups
    }

    /// Deliver what is due now, every registry at once, and wait; returns the outcome
    /// (delivered or not) of each job tried. For the CLI (backfill) and tests.
    pub async fn run_once(&self) -> Vec<bool> {
        let groups = self.due_by_registry(&Default::default());
        let tried: Vec<bool> =
            futures_util::future::join_all(groups.iter().map(|(_, jobs)| self.deliver_batch(jobs)))
                .await
                .into_iter()
                .flatten()
                .collect();
        if !tried.is_empty() {
            self.refresh_gauges();
        }
        tried
    }

    /// Read the job counts per state into `/metrics`.
    pub fn refresh_gauges(&self) {
        match self.db(|s| s.job_states()) {
            Ok(counts) => self.metrics.bridge_states(&counts),
            Err(e) => tracing::warn!(error = %e, "bridge: counting jobs failed"),
        }
    }

    /// The worker loop, while this replica holds the lease: every 250 ms, start one delivery
    /// task per registry that has due jobs and none under way (at most
    /// [`MAX_REGISTRIES_AT_ONCE`]), without waiting for the others.
    pub async fn run(self: Arc<Self>) {
        let mut idle = 0u32;
        loop {
            let held = self.db(|s| s.bridge_lease());
            self.metrics.bridge_lease(held);
            if !held {
                // Another replica delivers; take over when its lease goes.
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            let busy = self.busy.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let groups = self.due_by_registry(&busy);
            let room = MAX_REGISTRIES_AT_ONCE.saturating_sub(busy.len());
            let started = !groups.is_empty() && room > 0;
            for (host, jobs) in groups.into_iter().take(room) {
                self.busy
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(host.clone());
                let me = self.clone();
                tokio::spawn(async move {
                    me.deliver_batch(&jobs).await;
                    me.busy
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&host);
                    me.refresh_gauges();
                });
            }
            // Jobs arrive with updates; count them every few seconds while idle.
            if !started {
                if idle.is_multiple_of(20) {
                    self.refresh_gauges();
                }
                idle = idle.wrapping_add(1);
            } else {
                idle = 0;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// What one sign job writes and one read-back checks: the `.sig` layer always, cosign v3's
    /// bundle and Notation's signature when on.
    pub fn layouts(&self) -> Vec<&'static str> {
        let mut l = vec!["cosign"];
        if self.cfg.new_bundle_format {
            l.push("cosign-bundle");
        }
        if self.cfg.notation.is_some() {
            l.push("notation");
        }
        l
    }

    /// `GET /_trustbridge/v1/status?gun=`: the mirror state of every target of `gun` (its
    /// newest job per tag and role) with what the reconciler last found in the registry
    /// (`verified_at`, `registry_digest`, `drift`, `check_error`) and the `layouts` those
    /// cover.
    pub fn status(&self, gun: &str) -> Result<serde_json::Value, StorageError> {
        let jobs = self.db(|s| s.jobs_for(gun))?;
        let checks: HashMap<String, crate::storage::TagCheck> = self
            .store
            .checks_for(gun)?
            .into_iter()
            .map(|c| (c.tag.clone(), c))
            .collect();
        let time =
            |t: time::OffsetDateTime| trustbridge_tuf::GoTime::from_offset_datetime(t).to_string();
        let mut seen = std::collections::HashSet::new();
        let rows: Vec<serde_json::Value> = jobs
            .into_iter()
            .filter(|j| seen.insert((j.tag.clone(), j.role.clone())))
            .map(|j| {
                let mut row = serde_json::json!({
                    "id": j.id, "gun": j.gun, "tag": j.tag, "digest": format!("sha256:{}", j.digest_hex),
                    "action": j.action.as_str(),
                    "role": j.role, "signers": j.signers, "state": j.state.as_str(), "attempts": j.attempts,
                    "last_error": j.last_error,
                    "updated_at": time(j.updated_at),
                    "layouts": self.layouts(),
                });
                if let Some(c) = checks.get(&j.tag).filter(|c| c.digest_hex == j.digest_hex) {
                    row["verified_at"] = c.verified_at.map(time).into();
                    row["registry_digest"] =
                        c.registry_digest.as_ref().map(|d| format!("sha256:{d}")).into();
                    row["drift"] = c.drift.into();
                    row["check_error"] = c.error.clone().into();
                    row["checked_at"] = time(c.checked_at).into();
                    row["expires"] = c.expires.map(time).into();
                    row["expired"] =
                        c.expires.is_some_and(|t| t < time::OffsetDateTime::now_utc()).into();
                }
                row
            })
            .collect();
        Ok(serde_json::json!({"gun": gun, "targets": rows}))
    }

    /// [`Self::status`] of every GUN starting with `prefix` (the migration status table).
    pub fn statuses(&self, prefix: &str) -> Result<serde_json::Value, StorageError> {
        let guns = self.db(|s| s.guns())?;
        let all = guns
            .iter()
            .filter(|g| g.starts_with(prefix))
            .map(|g| self.status(g))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(serde_json::json!({ "prefix": prefix, "guns": all }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_is_loopback() {
        for yes in [
            "127.0.0.1:5000",
            "127.9.9.9",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "localhost.evil.example:5000",
            "localhostx:5000",
            "10.0.0.1:5000",
            "registry.example",
            "[::2]:5000",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    #[test]
    fn rewrites_pick_the_longest_prefix() {
        let rw = vec![
            ("docker.io/".to_string(), "mirror.example/hub/".to_string()),
            (
                "docker.io/library/".to_string(),
                "mirror.example/official/".to_string(),
            ),
        ];
        assert_eq!(
            image_repository("docker.io/library/alpine", &rw),
            "mirror.example/official/alpine"
        );
        assert_eq!(
            image_repository("docker.io/team/app", &rw),
            "mirror.example/hub/team/app"
        );
        assert_eq!(image_repository("quay.io/x/y", &rw), "quay.io/x/y");
        assert_eq!(
            split_gun(&image_repository("docker.io/library/alpine", &rw)),
            ("mirror.example".into(), "official/alpine".into())
        );
    }
}
