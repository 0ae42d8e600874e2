//! The migration control room's tables, kept up to date on write so the status page and its
//! JSON never scan every GUN:
//! - `trust_tags`: per GUN, what a fresh DCT client resolves each tag to (digest, role, real
//!   signers, the role's expiry), replaced in the transaction of the update, import or delete
//!   that changes it;
//! - `trust_roles`: when each `root`, `targets` and delegation file expires (the expiry
//!   watchdog, indexed by time);
//! - `migration_guns`: one summary row per GUN (tags, mirrored, verified, queued, dead, drift,
//!   earliest expiry, last DCT read), recomputed from that GUN's rows whenever its trust,
//!   jobs or reconciler findings change; the overview sums it, pages are range scans of it;
//! - `dct_usage`: DCT reads per (GUN, day, client kind, client version), added to in batches.
//!
//! A write does not recompute any of this itself (that costs O(tags) of the GUN, on every
//! publish): it marks its GUN in `migration_dirty`, in its own transaction, so a crash never
//! loses the mark, and the summarizer ([`crate::repo::Repo::summarize_dirty`], every
//! `summary_seconds`) recomputes each marked GUN once however often it was written. A mark
//! carries a sequence number; it is cleared only if no write marked the GUN again meanwhile.
//!
//! The SQL is written once, with `$n` parameters (SQLite takes them as `?n`) and only what
//! both SQLite and PostgreSQL accept.

use time::OffsetDateTime;

pub use super::{nanos, time_of};
use crate::storage::error::StorageError;

pub use super::trust::{TrustState, Trusted, TrustedRef};

/// One GUN's row on the status page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GunSummary {
    pub gun: String,
    /// Tags DCT trusts.
    pub tags: i64,
    /// Of those, delivered to the registry.
    pub mirrored: i64,
    /// Of those, read back and verified in the registry by the reconciler, with no drift.
    pub verified: i64,
    /// Sign jobs pending or failed (to be retried).
    pub queued: i64,
    /// Sign jobs given up (dead) or for a registry the config does not allow.
    pub dead: i64,
    /// Tags whose registry tag points elsewhere than the digest DCT trusts.
    pub drift: i64,
    /// The earliest expiry of its root, targets or delegations.
    pub expires: Option<OffsetDateTime>,
    /// The last day (since the epoch) a DCT client read its trust data.
    pub last_read: Option<i64>,
}

impl GunSummary {
    /// DCT can be switched off for this GUN: every trusted tag is verified in the registry
    /// and none drifted.
    pub fn ready(&self) -> bool {
        self.verified == self.tags && self.drift == 0
    }
}

/// The overview's numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub guns: i64,
    pub tags: i64,
    pub mirrored: i64,
    pub verified: i64,
    pub queued: i64,
    pub dead: i64,
    pub drift: i64,
    pub ready_guns: i64,
    pub read_7d: i64,
    pub read_30d: i64,
    /// Roles already expired.
    pub expired_roles: i64,
    /// Roles that expire within the horizon (not yet expired).
    pub expiring_roles: i64,
}

/// A role that expires before the horizon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiring {
    pub gun: String,
    pub role: String,
    pub expires: OffsetDateTime,
}

/// DCT reads of one GUN on one day by one client kind and version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    pub gun: String,
    /// Days since the epoch (UTC).
    pub day: i64,
    pub client: String,
    pub version: String,
    pub reads: i64,
    pub last_seen: OffsetDateTime,
}

/// Which GUNs a page lists.
#[derive(Clone, Debug, Default)]
pub struct PageQuery {
    /// GUNs starting with this.
    pub prefix: String,
    /// Only GUNs after this one (the previous page's last), for keyset paging.
    pub after: String,
    pub limit: i64,
    /// Only ready (`Some(true)`) or not ready (`Some(false)`) GUNs.
    pub ready: Option<bool>,
}

/// A GUN whose control-room rows are out of date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dirty {
    pub gun: String,
    /// Its metadata changed (trust must be recomputed), not only its jobs or checks.
    pub trust: bool,
    /// The mark's sequence number, for [`Migration::settle`].
    pub seq: i64,
}

/// The control room's reads and the writes that are not part of an update.
pub trait Migration: Send + Sync {
    /// Up to `limit` GUNs marked out of date.
    fn dirty(&self, limit: i64) -> Result<Vec<Dirty>, StorageError>;
    /// Recompute `gun`'s summary from its rows (its trust is unchanged).
    fn refresh_summary(&self, gun: &str) -> Result<(), StorageError>;
    /// Clear a mark that was dealt with, unless a write marked the GUN again since.
    fn settle(&self, d: &Dirty) -> Result<(), StorageError>;
    /// Mark (for a trust recomputation) every live GUN without trust rows — a GUN with a
    /// root has at least its root's; returns how many were marked. One statement, however
    /// many GUNs are stored.
    fn mark_unadopted(&self) -> Result<usize, StorageError>;
    /// Replace `gun`'s trust (backfill and the reconciler, for GUNs stored before the table
    /// existed) and recompute its summary.
    fn set_trust(&self, gun: &str, trust: &TrustState) -> Result<(), StorageError>;
    /// The summarizer's results for a batch of marks: each GUN's new trust (or, with none,
    /// its summary recomputed), then its mark settled. A store that can do it in one
    /// transaction does (SQLite: one commit per batch instead of two per publish, each of
    /// which wrote its pages to the WAL beside the publish's own).
    fn summarize(&self, batch: &[(Dirty, Option<TrustState>)]) -> Result<(), StorageError> {
        for (d, trust) in batch {
            match trust {
                Some(t) => self.set_trust(&d.gun, t)?,
                None => self.refresh_summary(&d.gun)?,
            }
            self.settle(d)?;
        }
        Ok(())
    }
    /// `gun`'s trusted tags, by tag.
    fn trust_of(&self, gun: &str) -> Result<Vec<Trusted>, StorageError>;
    /// `gun`'s summary, when it has one.
    fn summary(&self, gun: &str) -> Result<Option<GunSummary>, StorageError>;
    /// A page of summaries in GUN order.
    fn summaries(&self, q: &PageQuery) -> Result<Vec<GunSummary>, StorageError>;
    /// The overview: sums of the summaries, GUNs read since `day_7`/`day_30`, roles expired at
    /// `now` or expiring before `horizon`.
    fn totals(
        &self,
        now: OffsetDateTime,
        horizon: OffsetDateTime,
        day_7: i64,
        day_30: i64,
    ) -> Result<Totals, StorageError>;
    /// Roles of GUNs starting with `prefix` that expire before `horizon`, soonest first.
    fn expiring(
        &self,
        prefix: &str,
        horizon: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<Expiring>, StorageError>;
    /// Every role of `gun` the watchdog knows, soonest expiry first.
    fn roles_of(&self, gun: &str) -> Result<Vec<Expiring>, StorageError>;
    /// Add a batch of reads (counts add up; `last_seen` keeps the latest) and move each GUN's
    /// `last_read` forward.
    fn add_usage(&self, batch: &[Usage]) -> Result<(), StorageError>;
    /// Reads of `gun` (or of every GUN starting with `prefix`) since `day`, newest day first.
    fn usage(
        &self,
        prefix: &str,
        exact: bool,
        since_day: i64,
        limit: i64,
    ) -> Result<Vec<Usage>, StorageError>;
    /// Switch DCT publishing to `gun` off (`on`) or back on; returns whether it changed.
    fn set_read_only(&self, gun: &str, on: bool) -> Result<bool, StorageError>;
    /// Since when DCT publishing to `gun` is switched off, if it is.
    fn read_only_since(&self, gun: &str) -> Result<Option<OffsetDateTime>, StorageError>;
}

/// The tables, for both backends (PostgreSQL compares GUNs bytewise, as SQLite does, so a
/// prefix is a range).
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS trust_tags (
  gun varchar(255) COLLATE "C" NOT NULL, tag varchar(255) NOT NULL, digest char(64) NOT NULL,
  role varchar(255) NOT NULL, signers text NOT NULL, expires bigint NULL, PRIMARY KEY (gun, tag));
CREATE TABLE IF NOT EXISTS trust_roles (
  gun varchar(255) COLLATE "C" NOT NULL, role varchar(255) NOT NULL, expires bigint NOT NULL,
  PRIMARY KEY (gun, role));
CREATE INDEX IF NOT EXISTS idx_trust_roles_expires ON trust_roles (expires);
CREATE TABLE IF NOT EXISTS migration_guns (
  gun varchar(255) COLLATE "C" PRIMARY KEY, tags bigint NOT NULL, mirrored bigint NOT NULL,
  verified bigint NOT NULL, queued bigint NOT NULL, dead bigint NOT NULL, drift bigint NOT NULL,
  expires bigint NULL, last_read bigint NULL, updated_at bigint NOT NULL);
CREATE INDEX IF NOT EXISTS idx_migration_guns_read ON migration_guns (last_read);
CREATE TABLE IF NOT EXISTS dct_usage (
  gun varchar(255) COLLATE "C" NOT NULL, day bigint NOT NULL, client varchar(32) NOT NULL,
  version varchar(64) NOT NULL, reads bigint NOT NULL, last_seen bigint NOT NULL,
  PRIMARY KEY (gun, day, client, version));
CREATE INDEX IF NOT EXISTS idx_dct_usage_day ON dct_usage (day);
CREATE INDEX IF NOT EXISTS idx_bridge_jobs_tag ON bridge_jobs (gun, tag, id);
CREATE TABLE IF NOT EXISTS dct_read_only (
  gun varchar(255) COLLATE "C" PRIMARY KEY, since bigint NOT NULL);
CREATE TABLE IF NOT EXISTS migration_dirty (
  gun varchar(255) COLLATE "C" PRIMARY KEY, trust bigint NOT NULL, seq bigint NOT NULL);
CREATE TABLE IF NOT EXISTS migration_totals (
  shard bigint PRIMARY KEY, guns bigint NOT NULL, tags bigint NOT NULL, mirrored bigint NOT NULL,
  verified bigint NOT NULL, queued bigint NOT NULL, dead bigint NOT NULL, drift bigint NOT NULL,
  ready_guns bigint NOT NULL);
INSERT INTO migration_totals
  SELECT 0, COUNT(*), CAST(COALESCE(SUM(tags), 0) AS BIGINT), CAST(COALESCE(SUM(mirrored), 0) AS BIGINT),
    CAST(COALESCE(SUM(verified), 0) AS BIGINT), CAST(COALESCE(SUM(queued), 0) AS BIGINT),
    CAST(COALESCE(SUM(dead), 0) AS BIGINT), CAST(COALESCE(SUM(drift), 0) AS BIGINT),
    CAST(COALESCE(SUM(CASE WHEN verified = tags AND drift = 0 THEN 1 ELSE 0 END), 0) AS BIGINT)
  FROM migration_guns WHERE NOT EXISTS (SELECT 1 FROM migration_totals)
  ON CONFLICT (shard) DO NOTHING;
INSERT INTO migration_totals VALUES (1, 0, 0, 0, 0, 0, 0, 0, 0), (2, 0, 0, 0, 0, 0, 0, 0, 0),
  (3, 0, 0, 0, 0, 0, 0, 0, 0), (4, 0, 0, 0, 0, 0, 0, 0, 0), (5, 0, 0, 0, 0, 0, 0, 0, 0),
  (6, 0, 0, 0, 0, 0, 0, 0, 0), (7, 0, 0, 0, 0, 0, 0, 0, 0), (8, 0, 0, 0, 0, 0, 0, 0, 0),
  (9, 0, 0, 0, 0, 0, 0, 0, 0), (10, 0, 0, 0, 0, 0, 0, 0, 0), (11, 0, 0, 0, 0, 0, 0, 0, 0),
  (12, 0, 0, 0, 0, 0, 0, 0, 0), (13, 0, 0, 0, 0, 0, 0, 0, 0), (14, 0, 0, 0, 0, 0, 0, 0, 0),
  (15, 0, 0, 0, 0, 0, 0, 0, 0) ON CONFLICT (shard) DO NOTHING;
"#;

/// The overview's sums live in [`SHARDS`] rows of `migration_totals`, moved by each summary
/// change in its own transaction (so the overview is one small read at any number of GUNs);
/// a GUN's changes go to its own shard, so writers to different GUNs rarely wait on the same
/// row. A store made before the table gets shard 0 from the summaries once.
pub const SHARDS: i64 = 16;

/// A summary's counts: tags, mirrored, verified, queued, dead, drift.
pub type Counts = [i64; 6];

pub const COUNTS_OF: &str =
    "SELECT tags, mirrored, verified, queued, dead, drift FROM migration_guns WHERE gun = $1";

/// `$1` shard, `$2`..`$9` what to add to guns, tags, mirrored, verified, queued, dead, drift,
/// ready_guns.
pub const ADD_TOTALS: &str = "UPDATE migration_totals SET guns = guns + $2, tags = tags + $3, mirrored = mirrored + $4, verified = verified + $5, queued = queued + $6, dead = dead + $7, drift = drift + $8, ready_guns = ready_guns + $9 WHERE shard = $1";

/// The shard of `gun` (FNV-1a, the same in every process).
pub fn shard_of(gun: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in gun.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % SHARDS as u64) as i64
}

/// What a summary going from `before` to `after` adds to the totals (guns, the six counts,
/// ready GUNs); None when nothing changes.
pub fn totals_delta(before: Option<Counts>, after: Option<Counts>) -> Option<[i64; 8]> {
    if before == after {
        return None;
    }
    let part = |c: Option<Counts>| -> [i64; 8] {
        match c {
            None => [0; 8],
            Some(c) => [
                1,
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                c[5],
                i64::from(c[2] == c[0] && c[5] == 0),
            ],
        }
    };
    let (b, a) = (part(before), part(after));
    Some(std::array::from_fn(|i| a[i] - b[i]))
}

/// SQLite spells `COLLATE "C"` as `COLLATE BINARY` (its default).
pub fn sqlite_schema() -> String {
    SCHEMA.replace(r#"COLLATE "C""#, "COLLATE BINARY")
}

/// `$n` → `?n` for SQLite.
pub fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

/// `$1` gun, `$2` 1 when its metadata changed (else 0).
pub const MARK: &str = "INSERT INTO migration_dirty (gun, trust, seq) VALUES ($1, $2, 1) ON CONFLICT (gun) DO UPDATE SET trust = CASE WHEN excluded.trust > migration_dirty.trust THEN excluded.trust ELSE migration_dirty.trust END, seq = migration_dirty.seq + 1";
pub const DIRTY: &str = "SELECT gun, trust, seq FROM migration_dirty ORDER BY gun LIMIT $1";
pub const SETTLE: &str = "DELETE FROM migration_dirty WHERE gun = $1 AND seq = $2";
pub const MARK_UNADOPTED: &str = "INSERT INTO migration_dirty (gun, trust, seq) SELECT DISTINCT f.gun, 1, 1 FROM tuf_files f WHERE f.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM trust_roles r WHERE r.gun = f.gun) ON CONFLICT (gun) DO UPDATE SET trust = 1, seq = migration_dirty.seq + 1";

/// Whether an update of these roles changes what DCT trusts (not a timestamp or snapshot
/// renewal).
pub fn touches_trust<'a>(roles: impl IntoIterator<Item = &'a str>) -> bool {
    roles
        .into_iter()
        .any(|r| r == "root" || r == "targets" || r.starts_with("targets/"))
}

pub const DELETE_TAGS: &str = "DELETE FROM trust_tags WHERE gun = $1";
pub const DELETE_ROLES: &str = "DELETE FROM trust_roles WHERE gun = $1";
pub const DELETE_SUMMARY: &str = "DELETE FROM migration_guns WHERE gun = $1";
pub const INSERT_TAG: &str = "INSERT INTO trust_tags (gun, tag, digest, role, signers, expires) VALUES ($1, $2, $3, $4, $5, $6)";
pub const INSERT_ROLE: &str = "INSERT INTO trust_roles (gun, role, expires) VALUES ($1, $2, $3)";

/// Recompute one GUN's summary row from its trust, its latest sign job per tag and the
/// reconciler's findings (`$1` the GUN, `$2` now in nanoseconds); `last_read` is kept, or, for
/// a summary made after the GUN's first reads (whose mark found no row), taken from `dct_usage`.
pub const REFRESH: &str = r#"
INSERT INTO migration_guns (gun, tags, mirrored, verified, queued, dead, drift, expires, updated_at, last_read)
SELECT CAST($1 AS VARCHAR(255)), COUNT(*),
  COALESCE(SUM(CASE WHEN s = 'mirrored' THEN 1 ELSE 0 END), 0),
  COALESCE(SUM(v), 0),
  COALESCE(SUM(CASE WHEN s IN ('pending', 'failed') THEN 1 ELSE 0 END), 0),
  COALESCE(SUM(CASE WHEN s IN ('dead', 'not-configured') THEN 1 ELSE 0 END), 0),
  COALESCE(SUM(d), 0),
  (SELECT MIN(r.expires) FROM trust_roles r WHERE r.gun = $1),
  CAST($2 AS BIGINT),
  (SELECT MAX(u.day) FROM dct_usage u WHERE u.gun = $1)
FROM (SELECT
    (SELECT j.state FROM bridge_jobs j WHERE j.gun = t.gun AND j.tag = t.tag AND j.digest = t.digest AND j.action = 'sign' ORDER BY j.id DESC LIMIT 1) AS s,
    CASE WHEN c.digest = t.digest AND c.verified_at IS NOT NULL AND NOT c.drift THEN 1 ELSE 0 END AS v,
    CASE WHEN c.digest = t.digest AND c.drift THEN 1 ELSE 0 END AS d
  FROM trust_tags t LEFT JOIN bridge_checks c ON c.gun = t.gun AND c.tag = t.tag
  WHERE t.gun = $1) x
WHERE true
ON CONFLICT (gun) DO UPDATE SET tags = excluded.tags, mirrored = excluded.mirrored,
  verified = excluded.verified, queued = excluded.queued, dead = excluded.dead,
  drift = excluded.drift, expires = excluded.expires, updated_at = excluded.updated_at,
  last_read = COALESCE(migration_guns.last_read, excluded.last_read)
"#;

/// Whether `gun` still has stored metadata (a summary is kept only for those).
pub const GUN_EXISTS: &str =
    "SELECT EXISTS(SELECT 1 FROM tuf_files WHERE gun = $1 AND deleted_at IS NULL)";

/// A page from `$1` on (the prefix itself, inclusive; [`PAGE_AFTER`]: after the previous
/// page's last GUN), below `$2` (the prefix's upper bound, NULL: none), `$3` rows, `$4` the
/// ready filter (NULL, 1 or 0). One lower bound, so the primary key is a single range.
pub const PAGE_FROM: &str = "SELECT gun, tags, mirrored, verified, queued, dead, drift, expires, last_read FROM migration_guns WHERE gun >= $1 AND (CAST($2 AS VARCHAR(255)) IS NULL OR gun < CAST($2 AS VARCHAR(255))) AND (CAST($4 AS BIGINT) IS NULL OR (CASE WHEN verified = tags AND drift = 0 THEN 1 ELSE 0 END) = CAST($4 AS BIGINT)) ORDER BY gun LIMIT $3";
pub const PAGE_AFTER: &str = "SELECT gun, tags, mirrored, verified, queued, dead, drift, expires, last_read FROM migration_guns WHERE gun > $1 AND (CAST($2 AS VARCHAR(255)) IS NULL OR gun < CAST($2 AS VARCHAR(255))) AND (CAST($4 AS BIGINT) IS NULL OR (CASE WHEN verified = tags AND drift = 0 THEN 1 ELSE 0 END) = CAST($4 AS BIGINT)) ORDER BY gun LIMIT $3";

impl PageQuery {
    /// The page's SQL and its lower bound: after the cursor when it lies within the prefix's
    /// range, else from the prefix.
    pub fn sql(&self) -> (&'static str, &str) {
        if !self.after.is_empty() && self.after.as_str() >= self.prefix.as_str() {
            (PAGE_AFTER, &self.after)
        } else {
            (PAGE_FROM, &self.prefix)
        }
    }
}

pub const ONE: &str = "SELECT gun, tags, mirrored, verified, queued, dead, drift, expires, last_read FROM migration_guns WHERE gun = $1";

/// The sums of the totals' shards, and (`$1`/`$2`: the first day counted as read in the last
/// 7 / 30 days) the GUNs read since, an index range on `last_read`.
pub const TOTALS: &str = "SELECT CAST(COALESCE(SUM(guns), 0) AS BIGINT), CAST(COALESCE(SUM(tags), 0) AS BIGINT), CAST(COALESCE(SUM(mirrored), 0) AS BIGINT), CAST(COALESCE(SUM(verified), 0) AS BIGINT), CAST(COALESCE(SUM(queued), 0) AS BIGINT), CAST(COALESCE(SUM(dead), 0) AS BIGINT), CAST(COALESCE(SUM(drift), 0) AS BIGINT), CAST(COALESCE(SUM(ready_guns), 0) AS BIGINT), (SELECT COUNT(*) FROM migration_guns WHERE last_read >= $1), (SELECT COUNT(*) FROM migration_guns WHERE last_read >= $2) FROM migration_totals";

/// `$1` now, `$2` the horizon (both nanoseconds): roles expired, and expiring before the
/// horizon; an index range on `expires`.
pub const ROLE_COUNTS: &str = "SELECT CAST(COALESCE(SUM(CASE WHEN expires < $1 THEN 1 ELSE 0 END), 0) AS BIGINT), COUNT(*) FROM trust_roles WHERE expires < $2";

/// `$1` prefix, `$2` its upper bound, `$3` horizon, `$4` limit.
pub const EXPIRING: &str = "SELECT gun, role, expires FROM trust_roles WHERE expires < $3 AND gun >= $1 AND (CAST($2 AS VARCHAR(255)) IS NULL OR gun < CAST($2 AS VARCHAR(255))) ORDER BY expires, gun, role LIMIT $4";

pub const ROLES_OF: &str =
    "SELECT gun, role, expires FROM trust_roles WHERE gun = $1 ORDER BY expires, role";

pub const TAGS_OF: &str =
    "SELECT tag, digest, role, signers, expires FROM trust_tags WHERE gun = $1 ORDER BY tag";

/// `$1` gun, `$2` day, `$3` client, `$4` version, `$5` reads, `$6` last seen.
pub const ADD_USAGE: &str = "INSERT INTO dct_usage (gun, day, client, version, reads, last_seen) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (gun, day, client, version) DO UPDATE SET reads = dct_usage.reads + excluded.reads, last_seen = CASE WHEN dct_usage.last_seen < excluded.last_seen THEN excluded.last_seen ELSE dct_usage.last_seen END";

/// `$1` gun, `$2` day.
pub const MARK_READ: &str = "UPDATE migration_guns SET last_read = $2 WHERE gun = $1 AND (last_read IS NULL OR last_read < $2)";

/// `$1` prefix, `$2` upper bound, `$3` since day, `$4` limit, `$5` exact GUN (or NULL).
pub const USAGE: &str = "SELECT gun, day, client, version, reads, last_seen FROM dct_usage WHERE day >= $3 AND gun >= $1 AND (CAST($2 AS VARCHAR(255)) IS NULL OR gun < CAST($2 AS VARCHAR(255))) AND (CAST($5 AS VARCHAR(255)) IS NULL OR gun = CAST($5 AS VARCHAR(255))) ORDER BY day DESC, gun, client, version LIMIT $4";

/// `$1` gun, `$2` now.
pub const SET_READ_ONLY: &str =
    "INSERT INTO dct_read_only (gun, since) VALUES ($1, $2) ON CONFLICT (gun) DO NOTHING";
pub const CLEAR_READ_ONLY: &str = "DELETE FROM dct_read_only WHERE gun = $1";
pub const READ_ONLY_SINCE: &str = "SELECT since FROM dct_read_only WHERE gun = $1";

/// The least string greater than every string starting with `prefix` (None: no bound), so
/// a prefix is an index range.
pub fn upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Days since the epoch of `t` (UTC).
pub fn day_of(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_a_range() {
        assert_eq!(upper_bound(""), None);
        assert_eq!(upper_bound("a/b").as_deref(), Some("a/c"));
        assert_eq!(upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(upper_bound("\u{D7FF}").as_deref(), Some("\u{E000}"));
        let ub = upper_bound("example.com/").unwrap();
        for inside in ["example.com/", "example.com/app", "example.com/\u{FFFF}"] {
            assert!(inside >= "example.com/" && inside < ub.as_str(), "{inside}");
        }
        assert!("example.com0" >= ub.as_str());
    }

    #[test]
    fn sqlite_spelling() {
        assert_eq!(sqlite_sql("a = $1 AND b = $12"), "a = ?1 AND b = ?12");
        assert!(!sqlite_schema().contains(r#""C""#));
    }
}
