//! The renewal schedule: when each GUN's timestamp and snapshot expire, kept on write, so the
//! sweep finds what is due with two index range scans (O(due), not O(GUNs)) instead of reading
//! every repository. Written by `update_many` from the stored bytes (the core's envelope peek),
//! dropped by `delete`; GUNs stored before the table existed, or written by another server on
//! the same database, are scheduled by the sweep once per process ([`Renewals::unscheduled`]).
//! The SQL is shared: PostgreSQL's `$N` placeholders, which SQLite reads as `?N`.

use trustbridge_tuf::metadata::Peek;

use super::{StorageError, Update, nanos};

/// Both stores' table (times in nanoseconds since the epoch, UTC).
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS renewals (
  gun varchar(255) PRIMARY KEY,
  timestamp_expires bigint NULL,
  snapshot_expires bigint NULL);
CREATE INDEX IF NOT EXISTS idx_renewals_timestamp ON renewals (timestamp_expires);
CREATE INDEX IF NOT EXISTS idx_renewals_snapshot ON renewals (snapshot_expires);
"#;

/// An update's expiries (`$2`, `$3`; NULL keeps what is recorded) for `$1`.
pub const UPSERT: &str = "INSERT INTO renewals (gun, timestamp_expires, snapshot_expires) VALUES ($1, $2, $3) \
ON CONFLICT (gun) DO UPDATE SET \
timestamp_expires = COALESCE(excluded.timestamp_expires, renewals.timestamp_expires), \
snapshot_expires = COALESCE(excluded.snapshot_expires, renewals.snapshot_expires)";

/// A whole schedule read from a repository's current files (both replaced).
pub const SCHEDULE: &str = "INSERT INTO renewals (gun, timestamp_expires, snapshot_expires) VALUES ($1, $2, $3) \
ON CONFLICT (gun) DO UPDATE SET \
timestamp_expires = excluded.timestamp_expires, snapshot_expires = excluded.snapshot_expires";

/// GUNs whose timestamp expires by `$1` or snapshot by `$2`, at most `$3`: two halves, each a
/// range scan of its own index on both databases (a GUN due on both counts is listed twice:
/// the caller drops the second).
pub const DUE: &str = "SELECT gun FROM renewals WHERE timestamp_expires <= $1 \
UNION ALL SELECT gun FROM renewals WHERE snapshot_expires <= $2 LIMIT $3";

/// Live GUNs with a timestamp and no schedule, at most `$1`.
pub const UNSCHEDULED: &str = "SELECT DISTINCT f.gun FROM tuf_files f \
WHERE f.role = 'timestamp' AND f.deleted_at IS NULL \
AND NOT EXISTS (SELECT 1 FROM renewals r WHERE r.gun = f.gun) LIMIT $1";

pub const DELETE: &str = "DELETE FROM renewals WHERE gun = $1";

/// The timestamp's and snapshot's expiries among `updates` (None: not updated, or not
/// readable; the schedule then keeps what it had).
pub fn expiries(updates: &[Update]) -> (Option<i64>, Option<i64>) {
    let of = |role: &str| {
        updates
            .iter()
            .filter(|u| u.role == role)
            .max_by_key(|u| u.version)
            .and_then(|u| Peek::of(&u.data).ok())
            .map(|p| nanos(p.expires.as_offset_datetime()))
    };
    (of("timestamp"), of("snapshot"))
}

/// [`DUE`]'s rows, each GUN once, in the order found.
pub fn once(guns: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    guns.into_iter()
        .filter(|g| seen.insert(g.clone()))
        .collect()
}

/// The schedule every store keeps.
pub trait Renewals {
    /// GUNs whose timestamp expires by `timestamp_by` or snapshot by `snapshot_by`
    /// (nanoseconds), at most `limit`, each once.
    fn due_renewals(
        &self,
        timestamp_by: i64,
        snapshot_by: i64,
        limit: i64,
    ) -> Result<Vec<String>, StorageError>;
    /// Record `gun`'s expiries as read from its current files.
    fn schedule(
        &self,
        gun: &str,
        timestamp: Option<i64>,
        snapshot: Option<i64>,
    ) -> Result<(), StorageError>;
    /// Live GUNs with a timestamp and no schedule, at most `limit`.
    fn unscheduled(&self, limit: i64) -> Result<Vec<String>, StorageError>;
}
