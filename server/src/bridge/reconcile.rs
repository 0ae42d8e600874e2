//! The reconciler: nothing is taken on trust after delivery. On an interval (default 10
//! minutes, `trustbridge.bridge.reconcile_seconds`) and on demand (`trustbridge-server bridge
//! verify`), each tag the Cosign side must sign (see [`super::mirror_set`]) is read back from
//! the registry: our `.sig` layer must be there and verify with the bridge key (and our v3
//! bundle and our Notation signature with the current chain, when those are on), else it is
//! queued again; layers of ours that no DCT client
//! trusts any more are queued for removal; and the registry's own tag → digest is compared with
//! the digest DCT trusts. A tag that points elsewhere is **drift**: flagged (status, metrics,
//! logs), never "fixed" by signing what the registry has. Findings are stored per tag
//! (`verified_at`).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use base64::Engine as _;
use oci_client::Reference;
use time::OffsetDateTime;

use trustbridge_cosign::bundle;
use trustbridge_cosign::media::{IMAGE_ACCEPT, SIGNATURE_ANNOTATION};
use trustbridge_cosign::names::sig_tag;
use trustbridge_cosign::payload::{self, Claim};

use super::Bridge;
use super::referrers::is_bundle;
use super::registry::{Registry, RegistryError};
use crate::error::Error;
use crate::repo::Repo;
use crate::storage::{Action, NewJob, TagCheck};

/// What one pass found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Report {
    pub guns: usize,
    pub tags: usize,
    pub verified: usize,
    /// Sign jobs queued for what the registry lacked.
    pub repushed: usize,
    /// Revoke jobs queued for layers of ours that should not be there.
    pub removed: usize,
    pub drifted: usize,
    /// Tags kept signed although their role expired (`on_expiry: keep`).
    pub expired: usize,
    /// Tags that could not be checked (registry unreachable, not configured).
    pub unchecked: usize,
}

/// Our layer for one payload in a `.sig` manifest.
#[derive(Debug, PartialEq, Eq)]
enum Layer {
    Missing,
    Valid,
    /// There, but its signature does not verify with the bridge key.
    Invalid,
}

impl Registry {
    /// Whether the `.sig` manifest of `digest_hex` holds `payload` with a signature `key`
    /// verifies.
    async fn layer(
        &self,
        host: &str,
        repo: &str,
        digest_hex: &str,
        payload: &[u8],
        key: &trustbridge_tuf::PublicKey,
    ) -> Result<Layer, RegistryError> {
        let reference: Reference = format!("{host}/{repo}:{}", sig_tag(digest_hex))
            .parse()
            .map_err(|e| RegistryError::transient(format!("reference: {e}")))?;
        let Some((layers, _)) = self.current(&reference).await? else {
            return Ok(Layer::Missing);
        };
        let ours = bundle::sha256(payload);
        let Some(l) = layers.iter().find(|l| l["digest"] == ours.as_str()) else {
            return Ok(Layer::Missing);
        };
        let sig = l["annotations"][SIGNATURE_ANNOTATION]
            .as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .unwrap_or_default();
        Ok(if key.verify_der(payload, &sig).is_ok() {
            Layer::Valid
        } else {
            Layer::Invalid
        })
    }

    /// The digest (hex) the registry's `tag` points at, None when it has no such tag.
    async fn tag_digest(
        &self,
        host: &str,
        repo: &str,
        tag: &str,
    ) -> Result<Option<String>, RegistryError> {
        let url = format!("{}://{host}/v2/{repo}/manifests/{tag}", self.scheme);
        let resp = self
            .send(
                reqwest::Method::HEAD,
                &url,
                &[("Accept", IMAGE_ACCEPT)],
                None,
            )
            .await?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(RegistryError::http(
                status,
                format!("HEAD {url}: HTTP {status}"),
            ));
        }
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("sha256:"))
            .map(str::to_string)
            .ok_or_else(|| {
                RegistryError::transient(format!("HEAD {url}: no Docker-Content-Digest"))
            })?;
        Ok(Some(digest))
    }
}

impl Bridge {
    /// One pass over the GUNs starting with `prefix`; the jobs it queues are delivered by the
    /// worker (or the caller).
    pub async fn reconcile(&self, repo: &Repo, prefix: &str) -> Result<Report, Error> {
        let mut report = Report::default();
        for gun in self
            .store
            .guns()?
            .into_iter()
            .filter(|g| g.starts_with(prefix))
        {
            report.guns += 1;
            self.reconcile_gun(repo, &gun, &mut report).await?;
        }
        let (drifted, expired) = self.db(|s| s.check_counts(OffsetDateTime::now_utc()))?;
        self.metrics.bridge_checks(drifted, expired);
        tracing::info!(?report, "bridge: reconciled with the registries");
        Ok(report)
    }

    async fn reconcile_gun(
        &self,
        repo: &Repo,
        gun: &str,
        report: &mut Report,
    ) -> Result<(), Error> {
        let (expected, expiry) = repo.mirror_set(gun, self.cfg.on_expiry).await?;
        let jobs = self.db(|s| s.jobs_for(gun))?;
        let before: BTreeMap<String, TagCheck> = self
            .db(|s| s.checks_for(gun))?
            .into_iter()
            .map(|c| (c.tag.clone(), c))
            .collect();
        // Open jobs as a set: one lookup per tag, not a scan of every job.
        let open_jobs: HashSet<(Action, &str, &str)> = jobs
            .iter()
            .filter(|j| j.state.is_open())
            .map(|j| (j.action, j.tag.as_str(), j.digest_hex.as_str()))
            .collect();
        let open =
            |action: Action, tag: &str, digest: &str| open_jobs.contains(&(action, tag, digest));
        let (host, image_repo) = self.repository_of(gun);
        let reference = format!("{host}/{image_repo}");
        let now = OffsetDateTime::now_utc();
        let mut queue: Vec<NewJob> = Vec::new();
        let mut checks = Vec::with_capacity(expected.len());
        let registry = self.client(&host).await;
        let key = self.bridge_key().await?;
        for (tag, m) in &expected {
            report.tags += 1;
            let claim = Claim {
                reference: &reference,
                gun: Some(gun),
                digest_hex: &m.digest_hex,
                tag,
                role: &m.role,
                signers: &m.signers,
            };
            let mut check = TagCheck {
                tag: tag.clone(),
                digest_hex: m.digest_hex.clone(),
                verified_at: before
                    .get(tag)
                    .filter(|b| b.digest_hex == m.digest_hex)
                    .and_then(|b| b.verified_at),
                registry_digest: None,
                drift: false,
                error: None,
                checked_at: now,
                expires: expiry.get(&m.role).copied(),
            };
            if check.expires.is_some_and(|t| t < now) {
                report.expired += 1;
                tracing::warn!(%gun, %tag, role = %m.role, "bridge: the role this tag resolves from has expired: DCT clients refuse it, the Cosign side keeps it (trustbridge.bridge.on_expiry)");
            }
            let job = |action| NewJob::new(action, tag, m);
            let found = match &registry {
                Ok(r) => self.check_tag(r, &host, &image_repo, &claim, &key).await,
                Err(e) => Err(RegistryError::not_configured(e.to_string())),
            };
            match found {
                Ok((layer, bundled, registry_digest)) => {
                    check.drift = registry_digest
                        .as_deref()
                        .is_some_and(|d| d != m.digest_hex);
                    check.registry_digest = registry_digest;
                    if check.drift {
                        report.drifted += 1;
                        tracing::warn!(%gun, %tag, dct = %m.digest_hex, registry = ?check.registry_digest, "bridge: drift: the registry's tag points elsewhere than the digest DCT trusts");
                    }
                    if layer == Layer::Valid && bundled {
                        check.verified_at = Some(now);
                        report.verified += 1;
                    } else if !open(Action::Sign, tag, &m.digest_hex) {
                        if layer == Layer::Invalid {
                            // Ours is there but does not verify: take it out, then sign anew.
                            queue.push(job(Action::Revoke));
                        }
                        queue.push(job(Action::Sign));
                        report.repushed += 1;
                        tracing::warn!(%gun, %tag, ?layer, bundled, "bridge: the registry lacks our signature; queued again");
                    }
                }
                Err(e) => {
                    report.unchecked += 1;
                    check.error = Some(e.to_string());
                }
            }
            checks.push(check);
        }
        // Layers of ours that no DCT client trusts: every claim we ever signed for this GUN
        // that is not what the Cosign side must say now.
        if let Ok(r) = &registry {
            let stale: BTreeSet<(&str, &str, &str, &str)> = jobs
                .iter()
                .filter(|j| j.action == Action::Sign)
                .filter(|j| {
                    expected.get(&j.tag).is_none_or(|m| {
                        (m.digest_hex.as_str(), m.role.as_str(), m.signers.as_str())
                            != (j.digest_hex.as_str(), j.role.as_str(), j.signers.as_str())
                    })
                })
                .map(|j| {
                    (
                        j.tag.as_str(),
                        j.digest_hex.as_str(),
                        j.role.as_str(),
                        j.signers.as_str(),
                    )
                })
                .collect();
            for (tag, digest_hex, role, signers) in stale {
                let claim = Claim {
                    reference: &reference,
                    gun: Some(gun),
                    digest_hex,
                    tag,
                    role,
                    signers,
                };
                let there = r
                    .layer(
                        &host,
                        &image_repo,
                        digest_hex,
                        &payload::payload(&claim),
                        &key,
                    )
                    .await
                    .is_ok_and(|l| l != Layer::Missing);
                if there && !open(Action::Revoke, tag, digest_hex) {
                    queue.push(NewJob {
                        action: Action::Revoke,
                        tag: tag.to_string(),
                        digest_hex: digest_hex.to_string(),
                        role: role.to_string(),
                        signers: signers.to_string(),
                    });
                    report.removed += 1;
                    tracing::warn!(%gun, %tag, digest = %digest_hex, "bridge: a layer of ours that DCT no longer trusts is still in the registry; queued for removal");
                }
            }
        }
        let owned = gun.to_string();
        crate::storage::write(&self.store, move |s| {
            s.enqueue(&owned, &queue)?;
            s.record_checks(&owned, &checks)
        })
        .await?;
        Ok(())
    }

    /// (our `.sig` layer, whether our bundle and our Notation signature with the current chain
    /// are there or not needed, the registry's digest for the tag).
    async fn check_tag(
        &self,
        r: &Registry,
        host: &str,
        repo: &str,
        claim: &Claim<'_>,
        key: &trustbridge_tuf::PublicKey,
    ) -> Result<(Layer, bool, Option<String>), RegistryError> {
        let layer = r
            .layer(host, repo, claim.digest_hex, &payload::payload(claim), key)
            .await?;
        // One read of the image's referrers serves both the bundle and the Notation check.
        let referrers = if self.cfg.new_bundle_format || self.cfg.notation.is_some() {
            r.referrers(host, repo, claim.digest_hex).await?
        } else {
            vec![]
        };
        let statement = bundle::sha256(&bundle::statement(claim));
        let bundled = (!self.cfg.new_bundle_format
            || referrers.iter().any(|e| is_bundle(e, &statement)))
            && self.notation_signed(&referrers, claim).await?;
        let registry_digest = r.tag_digest(host, repo, claim.tag).await?;
        Ok((layer, bundled, registry_digest))
    }
}
