//! The SQLite store's tables in notary-server's schema (`tuf_files`, `changefeed`) plus the
//! bridge's, and the statements that read a GUN's files, with the proof that each reads an
//! index.

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS tuf_files (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  deleted_at INTEGER NULL,
  gun VARCHAR(255) NOT NULL,
  role VARCHAR(255) NOT NULL,
  version INTEGER NOT NULL,
  data BLOB NOT NULL,
  sha256 CHAR(64) NOT NULL
);
-- One live row per (gun, role, version); deleted rows stay as tombstones beside new ones.
CREATE UNIQUE INDEX IF NOT EXISTS idx_tuf_files_live ON tuf_files (gun, role, version) WHERE deleted_at IS NULL;
-- GET {role}.{sha256}.json within a GUN and role. Keyed by GUN first so that a publish's new
-- entries sit beside each other (one leaf page, not one random page per file: every page a
-- commit touches is a page written to the WAL and copied back at the checkpoint). Stores made
-- before had a global sha256 index and a copy of idx_tuf_files_live without its condition
-- (every query names deleted_at IS NULL): both are dropped.
CREATE INDEX IF NOT EXISTS idx_tuf_files_checksum ON tuf_files (gun, role, sha256, version) WHERE deleted_at IS NULL;
DROP INDEX IF EXISTS idx_tuf_files_sha256;
DROP INDEX IF EXISTS idx_tuf_files_gun_role;
CREATE TABLE IF NOT EXISTS changefeed (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at INTEGER NOT NULL,
  gun VARCHAR(255) NOT NULL,
  version INTEGER NOT NULL,
  sha256 CHAR(64) NULL,
  category VARCHAR(20) NOT NULL DEFAULT 'update'
);
CREATE INDEX IF NOT EXISTS idx_changefeed_gun ON changefeed (gun);
CREATE TABLE IF NOT EXISTS bridge_jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  gun VARCHAR(255) NOT NULL,
  tag VARCHAR(255) NOT NULL,
  digest CHAR(64) NOT NULL,
  role VARCHAR(255) NOT NULL,
  action VARCHAR(10) NOT NULL DEFAULT 'sign',
  state VARCHAR(20) NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NULL,
  next_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_bridge_jobs_due ON bridge_jobs (state, next_at);
CREATE INDEX IF NOT EXISTS idx_bridge_jobs_gun ON bridge_jobs (gun);
CREATE TABLE IF NOT EXISTS bridge_checks (
  gun VARCHAR(255) NOT NULL,
  tag VARCHAR(255) NOT NULL,
  digest CHAR(64) NOT NULL,
  verified_at INTEGER NULL,
  registry_digest CHAR(64) NULL,
  drift INTEGER NOT NULL DEFAULT 0,
  error TEXT NULL,
  checked_at INTEGER NOT NULL,
  expires INTEGER NULL,
  PRIMARY KEY (gun, tag)
);
CREATE INDEX IF NOT EXISTS idx_bridge_checks_drift ON bridge_checks (drift);
CREATE INDEX IF NOT EXISTS idx_bridge_checks_expires ON bridge_checks (expires);
"#;

/// A new file: `?1` now, `?2` gun, `?3` role, `?4` version, `?5` data, `?6` its SHA-256.
pub(super) const INSERT_FILE: &str = "INSERT INTO tuf_files (created_at, updated_at, gun, role, version, data, sha256) VALUES (?1, ?1, ?2, ?3, ?4, ?5, ?6)";
/// The newest live file of (gun, role).
pub(super) const LATEST: &str = "SELECT role, version, data, sha256, created_at FROM tuf_files WHERE gun = ?1 AND role = ?2 AND deleted_at IS NULL ORDER BY version DESC LIMIT 1";
/// The newest live file of (gun, role) with this SHA-256 (lowercase hex).
pub(super) const BY_CHECKSUM: &str = "SELECT role, version, data, sha256, created_at FROM tuf_files WHERE gun = ?1 AND role = ?2 AND sha256 = ?3 AND deleted_at IS NULL ORDER BY version DESC LIMIT 1";
/// The live file of (gun, role, version).
pub(super) const BY_VERSION: &str = "SELECT role, version, data, sha256, created_at FROM tuf_files WHERE gun = ?1 AND role = ?2 AND version = ?3 AND deleted_at IS NULL";
/// Whether (gun, role) has a live file of this version or newer (an update's conflict).
pub(super) const NEWER_EXISTS: &str = "SELECT EXISTS(SELECT 1 FROM tuf_files WHERE gun = ?1 AND role = ?2 AND version >= ?3 AND deleted_at IS NULL)";

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    fn plan(db: &Connection, sql: &str, params: impl rusqlite::Params) -> String {
        let mut st = db.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = st.query_map(params, |r| r.get::<_, String>(3)).unwrap();
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .join("; ")
    }

    /// Every read of a GUN's files is one index search, never a scan of `tuf_files`, on a
    /// new store and on one made with the indexes stores had before (which are dropped).
    #[test]
    fn file_reads_search_an_index() {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE tuf_files (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, deleted_at INTEGER NULL, gun VARCHAR(255) NOT NULL, role VARCHAR(255) NOT NULL, version INTEGER NOT NULL, data BLOB NOT NULL, sha256 CHAR(64) NOT NULL);
             CREATE INDEX idx_tuf_files_sha256 ON tuf_files (sha256);
             CREATE INDEX idx_tuf_files_gun_role ON tuf_files (gun, role, version);",
        )
        .unwrap();
        db.execute_batch(super::SCHEMA).unwrap();
        let indexes: Vec<String> = db
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tuf_files' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(indexes, ["idx_tuf_files_checksum", "idx_tuf_files_live"]);
        for (sql, p) in [
            (
                super::LATEST,
                plan(&db, super::LATEST, rusqlite::params!["g", "t"]),
            ),
            (
                super::BY_VERSION,
                plan(&db, super::BY_VERSION, rusqlite::params!["g", "t", 1]),
            ),
            (
                super::NEWER_EXISTS,
                plan(&db, super::NEWER_EXISTS, rusqlite::params!["g", "t", 1]),
            ),
        ] {
            assert!(p.contains("INDEX idx_tuf_files_live"), "{sql}: {p}");
            assert!(!p.contains("SCAN tuf_files"), "{sql}: {p}");
        }
        let p = plan(
            &db,
            super::BY_CHECKSUM,
            rusqlite::params!["g", "targets", "ab"],
        );
        assert!(p.contains("USING INDEX idx_tuf_files_checksum"), "{p}");
    }
}
