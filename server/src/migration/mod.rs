//! The migration control room: how far the DCT → Sigstore migration is (every tag DCT
//! trusts: mirrored, verified in the registry?), who still reads DCT, what is about to break
//! (roles that expire, drift), and whether DCT can be switched off per GUN — as JSON under
//! `/_trustbridge/v1/migration` (schema in the README) and as the HTML page at
//! `/_trustbridge/`. Everything is read from the summary tables the store keeps on write
//! ([`crate::storage::migration`]), never by walking every GUN.
//!
//! Also here: the brownout windows and the read-only switch (how DCT is switched off), DCT
//! usage recording, and the expiry watchdog.

pub mod page;
pub mod usage;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::error::Error;
use crate::storage::MetaStore;
use crate::storage::migration::{GunSummary, PageQuery, Totals, day_of};

/// Version of the JSON documents below; bumped only for incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;
/// Largest page a client may ask for.
pub const MAX_PAGE: i64 = 500;
pub const DEFAULT_PAGE: i64 = 50;

/// `trustbridge.migration` in the server config.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationConfig {
    /// Roles expiring within this many days are listed, counted and logged (default 30).
    pub horizon_days: u32,
    /// How often counted DCT reads are written (default 10 s).
    pub usage_flush_seconds: u64,
    /// How often the summaries of GUNs written since are brought up to date (default 1 s):
    /// how far the page may lag behind a write.
    pub summary_seconds: f64,
    /// How often the expiry watchdog logs what expires (default daily).
    pub watchdog_seconds: u64,
    /// Windows in which DCT reads of some GUNs are refused, to flush out hidden users.
    pub brownouts: Vec<Brownout>,
    /// GUNs (or prefixes ending in `/`) that have moved to Cosign: DCT publishes are refused.
    pub read_only: Vec<String>,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        MigrationConfig {
            horizon_days: 30,
            usage_flush_seconds: 10,
            summary_seconds: 1.0,
            watchdog_seconds: 86_400,
            brownouts: vec![],
            read_only: vec![],
        }
    }
}

/// A brownout: from `start` to `end` (RFC 3339), DCT reads of GUNs starting with `prefix`
/// are answered with `status` and `message`. The default is notary's 400 with the message as
/// a validation detail, because that is what legacy clients print: the notary client shows
/// "An error occurred during validation: <message>", while on a 503 it prints only "unable to
/// reach trust server at this time: 503." (docker trust prints "no signatures or cannot
/// access" for either). `503` makes a brownout look like an outage to monitoring instead.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Brownout {
    pub prefix: String,
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
    #[serde(default = "Brownout::default_message")]
    pub message: String,
    #[serde(default = "Brownout::default_status")]
    pub status: u16,
}

impl Brownout {
    fn default_message() -> String {
        "Docker Content Trust is being retired for this repository: verify with cosign (see your migration notice)".into()
    }
    fn default_status() -> u16 {
        400
    }
    pub fn active(&self, now: OffsetDateTime) -> bool {
        self.start <= now && now < self.end
    }
}

/// `trustbridge.migration` that cannot be used (the message names the key).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MigrationConfigError(String);

impl MigrationConfig {
    /// Parse and check the section.
    pub fn from_value(v: Value) -> Result<Self, MigrationConfigError> {
        Self::checked(v).map_err(MigrationConfigError)
    }

    fn checked(v: Value) -> Result<Self, String> {
        let c: MigrationConfig =
            serde_json::from_value(v).map_err(|e| format!("trustbridge.migration: {e}"))?;
        for b in &c.brownouts {
            if b.end <= b.start {
                return Err(format!(
                    "trustbridge.migration.brownouts: the window for {:?} ends before it starts",
                    b.prefix
                ));
            }
            if ![400, 403, 404, 410, 500, 503].contains(&b.status) {
                return Err(format!(
                    "trustbridge.migration.brownouts: status {} must be 400, 403, 404, 410, 500 or 503",
                    b.status
                ));
            }
        }
        Ok(c)
    }

    /// The brownout that applies to a DCT read of `gun` now, if any.
    pub fn brownout(&self, gun: &str, now: OffsetDateTime) -> Option<&Brownout> {
        self.brownouts
            .iter()
            .find(|b| gun.starts_with(b.prefix.as_str()) && b.active(now))
    }

    /// Whether the config switches DCT publishes to `gun` off.
    pub fn read_only(&self, gun: &str) -> bool {
        self.read_only.iter().any(|r| {
            if r.ends_with('/') {
                gun.starts_with(r.as_str())
            } else {
                gun == r
            }
        })
    }
}

/// How a role the server cannot renew is renewed by its owner (notary 0.7's client; our
/// `trustbridge` CLI takes the same verbs). `publish` re-signs a root within six months of
/// expiry; targets and delegations need `witness` first.
pub fn renew_command(gun: &str, role: &str) -> String {
    if role == "root" {
        format!(
            "notary publish {gun}   # re-signs root when it is within 6 months of expiry (needs the root key)"
        )
    } else {
        format!("notary witness {gun} {role} && notary publish {gun}")
    }
}

/// Go's time format on the wire, as elsewhere in the API.
pub fn wire_time(t: OffsetDateTime) -> String {
    trustbridge_tuf::GoTime::from_offset_datetime(t).to_string()
}

/// A day number as `YYYY-MM-DD`.
pub fn wire_day(day: i64) -> String {
    OffsetDateTime::from_unix_timestamp(day * 86_400)
        .map(|t| t.date().to_string())
        .unwrap_or_default()
}

/// The control room's domain functions, over the store.
pub struct ControlRoom {
    pub store: Arc<dyn MetaStore>,
    pub config: MigrationConfig,
    pub usage: usage::Recorder,
    pub metrics: crate::metrics::Metrics,
    /// The bridge is configured (otherwise the Cosign columns stay empty).
    pub bridge_on: bool,
    /// Notation signatures are written too: each tag row shows them beside Cosign's.
    pub notation_on: bool,
}

fn summary_json(s: &GunSummary, now: OffsetDateTime) -> Value {
    json!({
        "gun": s.gun, "tags": s.tags, "mirrored": s.mirrored, "verified": s.verified,
        "queued": s.queued, "dead": s.dead, "drift": s.drift,
        "expires": s.expires.map(wire_time),
        "expired": s.expires.is_some_and(|t| t < now),
        "last_read": s.last_read.map(wire_day),
        "ready": s.ready(),
    })
}

impl ControlRoom {
    pub fn new(
        store: Arc<dyn MetaStore>,
        config: MigrationConfig,
        metrics: crate::metrics::Metrics,
        bridge_on: bool,
        notation_on: bool,
    ) -> Self {
        ControlRoom {
            usage: usage::Recorder::new(metrics.clone()),
            store,
            config,
            metrics,
            bridge_on,
            notation_on,
        }
    }

    /// Whether DCT publishes to `gun` are refused: by the config, or switched off for it with
    /// `POST /_trustbridge/v1/read-only/<gun>` (`trustbridge migration read-only`).
    pub fn read_only(&self, gun: &str) -> Result<bool, Error> {
        Ok(self.config.read_only(gun) || self.store.read_only_since(gun)?.is_some())
    }

    /// Switch DCT publishing to `gun` off or back on (a GUN the config lists stays off).
    pub fn switch_read_only(&self, gun: &str, on: bool) -> Result<Value, Error> {
        if on && self.store.latest(gun, "root")?.is_none() {
            return Err(Error::NotFound);
        }
        let changed = self.store.set_read_only(gun, on)?;
        tracing::info!(%gun, read_only = on, changed, "migration: DCT publishing switched");
        Ok(
            json!({"gun": gun, "read_only": self.read_only(gun)?, "changed": changed,
                  "by_config": self.config.read_only(gun)}),
        )
    }

    fn horizon(&self, now: OffsetDateTime) -> OffsetDateTime {
        now + time::Duration::days(self.config.horizon_days.into())
    }

    /// The overview's numbers at `now` (reads in the last 7 and 30 days, roles expired or
    /// within the horizon); the expiry gauges follow them.
    fn totals(&self, now: OffsetDateTime) -> Result<Totals, Error> {
        let today = day_of(now);
        let t = self
            .store
            .totals(now, self.horizon(now), today - 6, today - 29)?;
        self.metrics.roles_expiry(t.expired_roles, t.expiring_roles);
        Ok(t)
    }

    /// `GET /_trustbridge/v1/migration`: the overview.
    pub fn overview(&self) -> Result<Value, Error> {
        let now = OffsetDateTime::now_utc();
        let t = self.totals(now)?;
        let brownouts: Vec<Value> = self
            .config
            .brownouts
            .iter()
            .map(|b| {
                json!({"prefix": b.prefix, "start": wire_time(b.start), "end": wire_time(b.end),
                       "active": b.active(now), "status": b.status, "message": b.message})
            })
            .collect();
        Ok(json!({
            "schema": SCHEMA_VERSION,
            "generated_at": wire_time(now),
            "bridge": self.bridge_on,
            "horizon_days": self.config.horizon_days,
            "totals": t,
            "brownouts": brownouts,
            "read_only": self.config.read_only,
        }))
    }

    /// `GET /_trustbridge/v1/migration/guns`: one page of GUN summaries, with the cursor of
    /// the next page (`next`, or null on the last).
    pub fn guns(&self, q: &PageQuery) -> Result<Value, Error> {
        let now = OffsetDateTime::now_utc();
        let limit = q.limit.clamp(1, MAX_PAGE);
        let mut rows = self.store.summaries(&PageQuery {
            limit: limit + 1,
            ..q.clone()
        })?;
        rows.retain(|s| s.gun.starts_with(&q.prefix));
        let next = (rows.len() as i64 > limit).then(|| rows[limit as usize - 1].gun.clone());
        rows.truncate(limit as usize);
        Ok(json!({
            "schema": SCHEMA_VERSION,
            "prefix": q.prefix, "after": q.after, "limit": limit, "ready": q.ready,
            "guns": rows.iter().map(|s| summary_json(s, now)).collect::<Vec<_>>(),
            "next": next,
        }))
    }

    /// `GET /_trustbridge/v1/migration/gun?gun=`: one GUN, tag by tag (DCT state, Cosign
    /// state, reconciler findings), its roles' expiry and its DCT reads of the last 30 days.
    pub fn gun(&self, gun: &str) -> Result<Option<Value>, Error> {
        // A GUN written within the last summary_seconds has no summary yet: shown as such.
        let (summary, summarizing) = match self.store.summary(gun)? {
            Some(s) => (s, false),
            None if self.store.latest(gun, "root")?.is_some() => (
                GunSummary {
                    gun: gun.to_string(),
                    ..GunSummary::default()
                },
                true,
            ),
            None => return Ok(None),
        };
        let now = OffsetDateTime::now_utc();
        let jobs = self.store.jobs_for(gun)?;
        let checks = self.store.checks_for(gun)?;
        // Indexed by (tag, digest), first entry kept: a lookup per tag, not a scan (a scan
        // per tag is quadratic in a repository with 100k tags).
        let mut sign_jobs: HashMap<(&str, &str), &crate::storage::Job> = HashMap::new();
        for j in jobs
            .iter()
            .filter(|j| j.action == crate::storage::Action::Sign)
        {
            sign_jobs
                .entry((j.tag.as_str(), j.digest_hex.as_str()))
                .or_insert(j);
        }
        let mut tag_checks: HashMap<(&str, &str), &crate::storage::TagCheck> = HashMap::new();
        for c in &checks {
            tag_checks
                .entry((c.tag.as_str(), c.digest_hex.as_str()))
                .or_insert(c);
        }
        let tags: Vec<Value> = self
            .store
            .trust_of(gun)?
            .into_iter()
            .map(|t| {
                let key = (t.tag.as_str(), t.digest_hex.as_str());
                let job = sign_jobs.get(&key).copied();
                let check = tag_checks.get(&key).copied();
                let verified = check.is_some_and(|c| c.verified_at.is_some() && !c.drift);
                let state = if check.is_some_and(|c| c.drift) {
                    "drift"
                } else if verified {
                    "verified"
                } else {
                    job.map_or("unmirrored", |j| j.state.as_str())
                };
                let mut row = json!({
                    "tag": t.tag, "digest": format!("sha256:{}", t.digest_hex), "role": t.role,
                    "signers": t.signers.split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
                    "expires": t.expires.map(wire_time),
                    "expired": t.expires.is_some_and(|e| e < now),
                    "cosign": {
                        "state": state,
                        "job_state": job.map(|j| j.state.as_str()),
                        "attempts": job.map(|j| j.attempts),
                        "last_error": job.and_then(|j| j.last_error.clone()),
                        "updated_at": job.map(|j| wire_time(j.updated_at)),
                        "verified_at": check.and_then(|c| c.verified_at).map(wire_time),
                        "registry_digest": check.and_then(|c| c.registry_digest.as_ref()).map(|d| format!("sha256:{d}")),
                        "drift": check.is_some_and(|c| c.drift),
                        "check_error": check.and_then(|c| c.error.clone()),
                    },
                });
                // One job signs both layouts and one read-back checks both, so the Notation
                // cell tells the same story for its own signature.
                if self.notation_on {
                    row["notation"] = row["cosign"].clone();
                }
                row
            })
            .collect();
        let roles: Vec<Value> = self
            .store
            .roles_of(gun)?
            .into_iter()
            .map(|e| {
                json!({"role": e.role, "expires": wire_time(e.expires),
                       "expired": e.expires < now, "soon": e.expires < self.horizon(now),
                       "renew": renew_command(gun, &e.role)})
            })
            .collect();
        let usage = self.usage_rows(gun, true, 30, 500)?;
        Ok(Some(json!({
            "schema": SCHEMA_VERSION,
            "gun": gun,
            "summary": summary_json(&summary, now),
            "summarizing": summarizing,
            "read_only": self.read_only(gun)?,
            "read_only_since": self.store.read_only_since(gun)?.map(wire_time),
            "tags": tags,
            "roles": roles,
            "usage": usage,
        })))
    }

    fn usage_rows(
        &self,
        prefix: &str,
        exact: bool,
        days: i64,
        limit: i64,
    ) -> Result<Vec<Value>, Error> {
        let since = day_of(OffsetDateTime::now_utc()) - days.max(1) + 1;
        Ok(self
            .store
            .usage(prefix, exact, since, limit)?
            .into_iter()
            .map(|u| {
                json!({"gun": u.gun, "day": wire_day(u.day), "client": u.client,
                       "client_name": usage::Client::describe(&u.client),
                       "version": u.version, "reads": u.reads, "last_seen": wire_time(u.last_seen)})
            })
            .collect())
    }

    /// `GET /_trustbridge/v1/migration/usage?prefix=&days=`: DCT reads per GUN, day, client.
    pub fn usage(&self, prefix: &str, days: i64, limit: i64) -> Result<Value, Error> {
        let days = days.clamp(1, 366);
        Ok(json!({
            "schema": SCHEMA_VERSION, "prefix": prefix, "days": days,
            "usage": self.usage_rows(prefix, false, days, limit.clamp(1, 10_000))?,
        }))
    }

    /// `GET /_trustbridge/v1/migration/expiring?prefix=&days=`: roles the server cannot renew
    /// that expire within `days` (default: the horizon), soonest first, with the command
    /// that renews each.
    pub fn expiring(&self, prefix: &str, days: Option<i64>, limit: i64) -> Result<Value, Error> {
        let now = OffsetDateTime::now_utc();
        let days = days
            .unwrap_or(self.config.horizon_days.into())
            .clamp(0, 36_500);
        let rows: Vec<Value> = self
            .store
            .expiring(
                prefix,
                now + time::Duration::days(days),
                limit.clamp(1, 10_000),
            )?
            .into_iter()
            .map(|e| {
                json!({"gun": e.gun, "role": e.role, "expires": wire_time(e.expires),
                       "expired": e.expires < now, "renew": renew_command(&e.gun, &e.role)})
            })
            .collect();
        Ok(json!({"schema": SCHEMA_VERSION, "prefix": prefix, "days": days, "roles": rows}))
    }

    /// Write what the read path counted. On failure the counts are kept for the next flush.
    pub fn flush_usage(&self) {
        let batch = self.usage.drain();
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.store.add_usage(&batch) {
            tracing::warn!(error = %e, rows = batch.len(), "DCT usage: writing failed; kept for the next flush");
            self.usage.restore(batch);
        }
    }

    /// The expiry watchdog: count and log the roles that expire within the horizon, each
    /// with the command that renews it (at most 100 lines a run).
    pub fn watch_expiry(&self) {
        let now = OffsetDateTime::now_utc();
        if let Err(e) = self.totals(now) {
            tracing::warn!(error = %e, "expiry watchdog: counting failed");
        }
        match self.store.expiring("", self.horizon(now), 100) {
            Ok(rows) => {
                for e in rows {
                    let renew = renew_command(&e.gun, &e.role);
                    if e.expires < now {
                        tracing::warn!(gun = %e.gun, role = %e.role, expires = %wire_time(e.expires), %renew, "DCT role has expired: clients refuse it");
                    } else {
                        tracing::warn!(gun = %e.gun, role = %e.role, expires = %wire_time(e.expires), %renew, "DCT role expires soon");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "expiry watchdog: listing failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_checks_windows_and_switches() {
        let c = MigrationConfig::from_value(json!({
            "brownouts": [{"prefix": "example.com/", "start": "2026-12-01T10:00:00Z", "end": "2026-12-01T11:00:00Z"}],
            "read_only": ["example.com/moved", "example.com/team/"]
        }))
        .unwrap();
        let at = |s: &str| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
        };
        assert!(
            c.brownout("example.com/app", at("2026-12-01T10:30:00Z"))
                .is_some()
        );
        assert!(
            c.brownout("example.com/app", at("2026-12-01T11:00:00Z"))
                .is_none()
        );
        assert!(
            c.brownout("other.io/app", at("2026-12-01T10:30:00Z"))
                .is_none()
        );
        assert!(c.read_only("example.com/moved"));
        assert!(!c.read_only("example.com/moved2"));
        assert!(c.read_only("example.com/team/app"));
        let e = MigrationConfig::from_value(json!({"brownouts": [{"prefix": "a/", "start": "2026-12-01T11:00:00Z", "end": "2026-12-01T10:00:00Z"}]})).unwrap_err();
        assert!(e.to_string().contains("ends before it starts"), "{e}");
        assert!(MigrationConfig::from_value(json!({"horizon": 3})).is_err());
    }
}
