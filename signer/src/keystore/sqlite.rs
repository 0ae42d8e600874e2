//! The key rows in SQLite (the embedded default): notary-signer's `private_keys` columns, so
//! rows copy between a notary-signer database and this file without re-encryption;
//! timestamps are UTC RFC 3339 text.

use rusqlite::{Connection, OptionalExtension, Row, params};

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::rows::{ENCRYPTION_ALG, KEYWRAP_ALG, KeyRow, KeyRows, now};
use crate::error::{Error, Result};

pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS private_keys (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at TEXT NULL DEFAULT NULL,
  updated_at TEXT NULL DEFAULT NULL,
  deleted_at TEXT NULL DEFAULT NULL,
  key_id VARCHAR(255) NOT NULL,
  encryption_alg VARCHAR(255) NOT NULL,
  keywrap_alg VARCHAR(255) NOT NULL,
  algorithm VARCHAR(50) NOT NULL,
  passphrase_alias VARCHAR(50) NOT NULL,
  public BLOB NOT NULL,
  private BLOB NOT NULL,
  gun VARCHAR(255) NOT NULL,
  role VARCHAR(255) NOT NULL,
  last_used TEXT NULL DEFAULT NULL,
  CONSTRAINT key_id UNIQUE (key_id),
  CONSTRAINT key_id_2 UNIQUE (key_id, algorithm)
);
-- CreateKey looks up an unused key by (gun, role, algorithm) for every new repository;
-- notary's schema has no index for it, so the lookup scanned every key (17 ms at 100k
-- keys). Created on every open, so key databases made before it (or by notary-signer) get
-- it on start.
CREATE INDEX IF NOT EXISTS private_keys_gun_role_algorithm
  ON private_keys (gun, role, algorithm, key_id);
"#;

const COLUMNS: &str =
    "key_id, algorithm, passphrase_alias, public, private, gun, role, created_at, last_used";

fn from_row(r: &Row<'_>) -> rusqlite::Result<KeyRow> {
    // `private` may have been written as TEXT or BLOB depending on who copied the row.
    let private = match r.get_ref(4)? {
        rusqlite::types::ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
        v => v.as_str()?.to_string(),
    };
    let public = match r.get_ref(3)? {
        rusqlite::types::ValueRef::Text(t) => t.to_vec(),
        v => v.as_blob()?.to_vec(),
    };
    Ok(KeyRow {
        key_id: r.get(0)?,
        algorithm: r.get(1)?,
        passphrase_alias: r.get(2)?,
        public,
        private,
        gun: r.get(5)?,
        role: r.get(6)?,
        created_at: r.get(7)?,
        last_used: r.get(8)?,
    })
}

/// The key rows in one SQLite file (or in memory).
pub struct SqliteRows {
    conn: Mutex<Connection>,
}

impl SqliteRows {
    pub fn in_memory() -> Result<SqliteRows> {
        Self::init(Connection::open_in_memory()?)
    }

    pub fn open(path: &Path) -> Result<SqliteRows> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let conn = Connection::open(path)?;
        // WAL lets the admin CLI read while the service runs; the timeout covers its writes.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Self::init(conn)
    }

    fn init(conn: Connection) -> Result<SqliteRows> {
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteRows {
            conn: Mutex::new(conn),
        })
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn get(conn: &Connection, key_id: &str) -> Result<Option<KeyRow>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM private_keys WHERE key_id = ?1 AND deleted_at IS NULL"),
            [key_id],
            from_row,
        )
        .optional()?)
}

fn unused_query() -> String {
    format!(
        "SELECT {COLUMNS} FROM private_keys WHERE role = ?1 AND gun = ?2 AND algorithm = ?3 \
         AND last_used IS NULL AND deleted_at IS NULL ORDER BY key_id LIMIT 1"
    )
}

fn insert(conn: &Connection, row: &KeyRow) -> Result<()> {
    let now = now();
    conn.execute(
        "DELETE FROM private_keys WHERE key_id = ?1 AND deleted_at IS NOT NULL",
        [&row.key_id],
    )?;
    conn.execute(
        "INSERT INTO private_keys (created_at, updated_at, key_id, encryption_alg, keywrap_alg, \
         algorithm, passphrase_alias, public, private, gun, role, last_used) \
         VALUES (?1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            row.created_at.as_deref().unwrap_or(&now),
            row.key_id,
            ENCRYPTION_ALG,
            KEYWRAP_ALG,
            row.algorithm,
            row.passphrase_alias,
            row.public,
            row.private.as_bytes(),
            row.gun,
            row.role,
            row.last_used,
        ],
    )?;
    Ok(())
}

impl KeyRows for SqliteRows {
    fn get(&self, key_id: &str) -> Result<Option<KeyRow>> {
        get(&self.db(), key_id)
    }

    fn list(&self) -> Result<Vec<KeyRow>> {
        let db = self.db();
        let mut stmt = db.prepare(&format!(
            "SELECT {COLUMNS} FROM private_keys WHERE deleted_at IS NULL ORDER BY key_id"
        ))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn unused(&self, role: &str, gun: &str, algorithm: &str) -> Result<Option<KeyRow>> {
        Ok(self
            .db()
            .query_row(&unused_query(), params![role, gun, algorithm], from_row)
            .optional()?)
    }

    fn insert(&self, row: &KeyRow) -> Result<()> {
        insert(&self.db(), row)
    }

    fn insert_missing(&self, rows: &[KeyRow]) -> Result<usize> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let mut added = 0;
        for row in rows {
            if get(&tx, &row.key_id)?.is_none() {
                insert(&tx, row)?;
                added += 1;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    fn mark_used(&self, key_id: &str) -> Result<()> {
        let now = now();
        self.db().execute(
            "UPDATE private_keys SET last_used = ?1, updated_at = ?1 WHERE key_id = ?2",
            params![now, key_id],
        )?;
        Ok(())
    }

    fn set_public(&self, key_id: &str, expected: Option<&[u8]>, public: &[u8]) -> Result<bool> {
        let n = self.db().execute(
            "UPDATE private_keys SET public = ?1, updated_at = ?2 WHERE key_id = ?3 AND deleted_at IS NULL \
             AND (?4 IS NULL OR public = ?4)",
            params![public, now(), key_id, expected],
        )?;
        Ok(n > 0)
    }

    fn soft_delete(&self, key_id: &str) -> Result<bool> {
        let now = now();
        let n = self.db().execute(
            "UPDATE private_keys SET deleted_at = ?1, updated_at = ?1 WHERE key_id = ?2 AND deleted_at IS NULL",
            params![now, key_id],
        )?;
        Ok(n > 0)
    }

    fn set_private(&self, rows: &[(String, String, String)]) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        for (key_id, alias, jwe) in rows {
            tx.execute(
                "UPDATE private_keys SET private = ?1, passphrase_alias = ?2, updated_at = ?3 WHERE key_id = ?4",
                params![jwe.as_bytes(), alias, now(), key_id],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unused_key_lookup_uses_an_index() {
        let conn = Connection::open_in_memory().unwrap();
        // A database made before the index existed gets it on open.
        conn.execute_batch(&SCHEMA[..SCHEMA.find("-- CreateKey").unwrap()])
            .unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", unused_query()))
            .unwrap()
            .query_map(params!["timestamp", "example.com/app", "ecdsa"], |r| {
                r.get(3)
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let plan = plan.join("; ");
        assert!(
            plan.contains("USING INDEX private_keys_gun_role_algorithm"),
            "{plan}"
        );
        assert!(
            !plan.contains("TEMP B-TREE"),
            "sorted without the index: {plan}"
        );
    }
}
