//! The Cosign bridge: every target an accepted update adds or changes becomes a Cosign
//! signature in the registry the GUN names (cosign-bridge.md). Jobs are written with the update
//! (an outbox in the same transaction); this worker delivers them with retry and backoff, so a
//! registry or signer outage, or a restart, loses nothing. Signatures come from the bridge key
//! in the signer (Sign RPC, r||s converted to DER).

pub mod backfill;
pub mod bundle;
pub mod payload;
mod referrers;
pub mod registry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;

use crate::signer_link::SignerLink;
use crate::storage::{Job, MetaStore};

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
    /// Also write cosign v3's layout: a Sigstore bundle attached through OCI referrers (the
    /// `sha256-<hex>` fallback index where the registry lacks the API). The legacy `.sig`
    /// layer is always written: every verifier reads it (cosign-bridge.md §5).
    pub new_bundle_format: bool,
}

/// How one tag is mirrored: the digest, the role it resolved from, and the key IDs that signed
/// that role's file (comma-separated), all named in the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirrored {
    pub digest_hex: String,
    pub role: String,
    pub signers: String,
}

/// What the bridge mirrors of a repository: each tag as docker resolves it (`targets/releases`
/// first, then `targets` and its tree, delegation paths applied).
/// Roles are given as their stored files; ones that do not parse are left out.
pub fn mirror_set<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> std::collections::BTreeMap<String, Mirrored> {
    use trustbridge_tuf::{Signed, Targets};
    let docs: std::collections::BTreeMap<String, Signed<Targets>> = files
        .into_iter()
        .filter(|(role, _)| *role == "targets" || role.starts_with("targets/"))
        .filter_map(|(role, data)| {
            Signed::<Targets>::from_bytes(role, data)
                .ok()
                .map(|d| (role.to_string(), d))
        })
        .collect();
    let roles = docs.iter().map(|(k, d)| (k.clone(), &d.signed)).collect();
    let (resolved, _) =
        trustbridge_tuf::resolve::resolve(&roles, trustbridge_tuf::resolve::DOCKER_ORDER);
    resolved
        .into_iter()
        .filter_map(|r| {
            let digest_hex = hex::encode(r.meta.sha256()?);
            let mut ids: Vec<&str> = docs[&r.role]
                .signatures
                .iter()
                .map(|s| s.keyid.as_str())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            let signers = ids.join(",");
            Some((
                r.name,
                Mirrored {
                    digest_hex,
                    role: r.role,
                    signers,
                },
            ))
        })
        .collect()
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

/// `registry.example:5000/team/app` → (`registry.example:5000`, `team/app`); a GUN without a
/// registry host is Docker Hub's (`docker.io`, `library/` for single names).
pub fn split_gun(gun: &str) -> (String, String) {
    match gun.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            (host.to_string(), rest.to_string())
        }
        _ if gun.contains('/') => ("docker.io".into(), gun.to_string()),
        _ => ("docker.io".into(), format!("library/{gun}")),
    }
}

pub struct Bridge {
    metrics: crate::metrics::Metrics,
    cfg: BridgeConfig,
    store: Arc<dyn MetaStore>,
    signer: SignerLink,
    clients: tokio::sync::Mutex<HashMap<String, Arc<registry::Registry>>>,
}

/// Retry delay after `attempts` failures: 1 s doubling, at most `max`.
fn backoff(attempts: i64, max: Duration) -> Duration {
    Duration::from_secs(1u64 << attempts.clamp(0, 16)).min(max)
}

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
        }
    }

    async fn client(&self, host: &str) -> Result<Arc<registry::Registry>, String> {
        let mut c = self.clients.lock().await;
        if let Some(r) = c.get(host) {
            return Ok(r.clone());
        }
        let made = {
            {
                // Unconfigured loopback registries are plain HTTP (dev and test setups).
                let loopback = host.starts_with("127.")
                    || host.starts_with("localhost")
                    || host.starts_with("[::1]");
                let rc = self
                    .cfg
                    .registries
                    .get(host)
                    .cloned()
                    .unwrap_or(RegistryConfig {
                        plain_http: loopback,
                        ..Default::default()
                    });
                let auth = match (rc.username, rc.password) {
                    (Some(u), Some(p)) => RegistryAuth::Basic(u, p),
                    _ => RegistryAuth::Anonymous,
                };
                let ca =
                    match &rc.ca_file {
                        Some(p) => Some(std::fs::read(p).map_err(|e| {
                            format!("registry {host}: ca_file {}: {e}", p.display())
                        })?),
                        None => None,
                    };
                Arc::new(registry::Registry::new(rc.plain_http, auth, ca)?)
            }
        };
        c.insert(host.to_string(), made.clone());
        Ok(made)
    }

    fn missing_key(&self) -> String {
        format!("the signer does not hold bridge key {}", self.cfg.key_id)
    }

    /// The bridge key's public half, as the signer holds it.
    async fn bridge_key(&self) -> Result<trustbridge_tuf::PublicKey, String> {
        self.signer
            .key_info(&self.cfg.key_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| self.missing_key())
    }

    /// `data` signed with the bridge key (Sign RPC), as the ASN.1 DER cosign expects: the
    /// signer answers notary's raw r||s.
    async fn sign_der(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let sig = self
            .signer
            .sign(&self.cfg.key_id, &self.cfg.key_id, data)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| self.missing_key())?;
        trustbridge_signer::cosign::raw_to_der(&sig.sig).map_err(|e| e.to_string())
    }

    /// The bridge public key as `cosign.pub` PEM.
    pub async fn public_pem(&self) -> Result<String, String> {
        trustbridge_signer::cosign::public_pem(&self.bridge_key().await?).map_err(|e| e.to_string())
    }

    async fn deliver(&self, job: &Job) -> Result<(), String> {
        let (host, repo) = split_gun(&image_repository(&job.gun, &self.cfg.rewrite));
        let reference = format!("{host}/{repo}");
        let payload = payload::payload(
            &reference,
            &job.digest_hex,
            &job.tag,
            &job.role,
            &job.signers,
        );
        // cosign v3's statement for the same target, when that layout is on.
        let statement = self.cfg.new_bundle_format.then(|| {
            bundle::statement(
                &reference,
                &job.digest_hex,
                &job.tag,
                &job.role,
                &job.signers,
            )
        });
        let registry = self.client(&host).await?;
        if job.action == "revoke" {
            registry
                .remove_signature(&host, &repo, &job.digest_hex, &payload)
                .await?;
            if let Some(st) = &statement {
                registry
                    .remove_bundle(&host, &repo, &job.digest_hex, &bundle::sha256(st))
                    .await?;
            }
            return Ok(());
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.sign_der(&payload).await?);
        registry
            .add_signature(&host, &repo, &job.digest_hex, &payload, &b64)
            .await?;
        if let Some(st) = &statement {
            self.attach_bundle(&registry, &host, &repo, &job.digest_hex, st)
                .await?;
        }
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
    ) -> Result<(), String> {
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
                bundle::INTOTO_PAYLOAD_TYPE,
                statement,
            ))
            .await?;
        let bundle_json = bundle::bundle(statement, &der, &key.public);
        let created = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| e.to_string())?;
        registry
            .put_bundle(
                host,
                repo,
                digest_hex,
                &bundle_json,
                &subject,
                &bundle::annotations(statement, &created),
            )
            .await
    }

    /// Deliver what is due; returns the outcome (delivered or not) of each job tried.
    pub async fn run_once(&self) -> Vec<bool> {
        let jobs = match self.store.due_jobs(32) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "bridge: reading jobs failed");
                return vec![];
            }
        };
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let outcome = self.deliver(job).await;
            outcomes.push(outcome.is_ok());
            self.metrics.bridge_job(&job.action, outcome.is_ok());
            if let Err(e) = &outcome {
                tracing::warn!(gun = %job.gun, tag = %job.tag, attempts = job.attempts + 1, error = %e, "bridge: mirroring failed, will retry");
            } else {
                tracing::info!(gun = %job.gun, tag = %job.tag, digest = %job.digest_hex, "bridge: mirrored as a Cosign signature");
            }
            let give_up =
                self.cfg.max_attempts > 0 && job.attempts + 1 >= self.cfg.max_attempts as i64;
            if give_up && outcome.is_err() {
                tracing::error!(gun = %job.gun, tag = %job.tag, job = job.id, "bridge: giving up after {} attempts; `trustbridge-server bridge retry` requeues it", job.attempts + 1);
            }
            if let Err(e) = self.store.finish_job(
                job.id,
                outcome,
                backoff(job.attempts + 1, self.cfg.max_backoff),
                give_up,
            ) {
                tracing::warn!(error = %e, "bridge: recording a job failed");
            }
        }
        if !jobs.is_empty() {
            self.refresh_gauges();
        }
        outcomes
    }

    /// Read the job counts per state into `/metrics`.
    pub fn refresh_gauges(&self) {
        match self.store.job_states() {
            Ok(counts) => self.metrics.bridge_states(&counts),
            Err(e) => tracing::warn!(error = %e, "bridge: counting jobs failed"),
        }
    }

    /// The worker loop: poll every 250 ms while idle.
    pub async fn run(self: Arc<Self>) {
        let mut idle = 0u32;
        loop {
            let held = self.store.bridge_lease();
            self.metrics.bridge_lease(held);
            if !held {
                // Another replica delivers; take over when its lease goes.
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            if self.run_once().await.is_empty() {
                // Jobs arrive with updates; count them every few seconds while idle.
                if idle % 20 == 0 {
                    self.refresh_gauges();
                }
                idle = idle.wrapping_add(1);
                tokio::time::sleep(Duration::from_millis(250)).await;
            } else {
                idle = 0;
            }
        }
    }

    /// `GET /_trustbridge/v1/status?gun=`: the mirror state of every target of `gun`.
    pub fn status(&self, gun: &str) -> Result<serde_json::Value, String> {
        let jobs = self.store.jobs_for(gun).map_err(|e| e.to_string())?;
        let mut seen = std::collections::HashSet::new();
        let rows: Vec<serde_json::Value> = jobs
            .into_iter()
            .filter(|j| seen.insert((j.tag.clone(), j.role.clone())))
            .map(|j| {
                serde_json::json!({
                    "id": j.id, "gun": j.gun, "tag": j.tag, "digest": format!("sha256:{}", j.digest_hex),
                    "action": j.action,
                    "role": j.role, "signers": j.signers, "state": j.state, "attempts": j.attempts,
                    "last_error": j.last_error,
                    "updated_at": trustbridge_tuf::GoTime::from_offset_datetime(j.updated_at).to_string(),
                })
            })
            .collect();
        Ok(serde_json::json!({"gun": gun, "targets": rows}))
    }

    /// [`Self::status`] of every GUN starting with `prefix` (the migration status table).
    pub fn statuses(&self, prefix: &str) -> Result<serde_json::Value, String> {
        let guns = self.store.guns().map_err(|e| e.to_string())?;
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

    #[test]
    fn guns_name_their_registry() {
        assert_eq!(
            split_gun("127.0.0.1:5000/library/app"),
            ("127.0.0.1:5000".into(), "library/app".into())
        );
        assert_eq!(
            split_gun("docker.io/library/alpine"),
            ("docker.io".into(), "library/alpine".into())
        );
        assert_eq!(
            split_gun("team/app"),
            ("docker.io".into(), "team/app".into())
        );
        assert_eq!(
            split_gun("alpine"),
            ("docker.io".into(), "library/alpine".into())
        );
    }
}
