//! The key rows in notary-signer's MySQL/MariaDB database (`storage.backend: "mysql"`, the
//! same go-sql-driver DSN, e.g. `signer@tcp(mysql:3306)/notarysigner?parseTime=True`):
//! `migrations/signer/mysql` made the table; it is created here when missing, with the index
//! CreateKey's lookup needs (notary's schema has none; Go notary-signer ignores it). Several
//! signers may share the database.

use mysql::prelude::Queryable;
use mysql::{IsolationLevel, Pool, PooledConn, TxOpts};

use super::rows::{ENCRYPTION_ALG, KEYWRAP_ALG, KeyRow, KeyRows, sql_time};
use crate::error::{Error, Result};

/// notary's `migrations/signer/mysql` table: 0001, then 0002's `gun`, `role`, `last_used`.
const TABLE: &str = "CREATE TABLE IF NOT EXISTS `private_keys` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `created_at` timestamp NULL DEFAULT NULL,
  `updated_at` timestamp NULL DEFAULT NULL,
  `deleted_at` timestamp NULL DEFAULT NULL,
  `key_id` varchar(255) NOT NULL,
  `encryption_alg` varchar(255) NOT NULL,
  `keywrap_alg` varchar(255) NOT NULL,
  `algorithm` varchar(50) NOT NULL,
  `passphrase_alias` varchar(50) NOT NULL,
  `public` blob NOT NULL,
  `private` blob NOT NULL,
  `gun` varchar(255) NOT NULL,
  `role` varchar(255) NOT NULL,
  `last_used` timestamp NULL DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `key_id` (`key_id`),
  UNIQUE KEY `key_id_2` (`key_id`,`algorithm`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8";

const INDEX: &str = "private_keys_gun_role_algorithm";

/// MySQL's "Duplicate key name": another signer made the index first.
const ER_DUP_KEYNAME: u16 = 1061;

/// gorm writes these columns in UTC; they are shown as RFC 3339.
const COLUMNS: &str = "key_id, algorithm, passphrase_alias, public, private, gun, role, \
    DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%sZ'), DATE_FORMAT(last_used, '%Y-%m-%dT%H:%i:%sZ')";

type Tuple = (
    String,
    String,
    String,
    Vec<u8>,
    Vec<u8>,
    String,
    String,
    Option<String>,
    Option<String>,
);

fn from_tuple(t: Tuple) -> KeyRow {
    KeyRow {
        key_id: t.0,
        algorithm: t.1,
        passphrase_alias: t.2,
        public: t.3,
        private: String::from_utf8_lossy(&t.4).into_owned(),
        gun: t.5,
        role: t.6,
        created_at: t.7,
        last_used: t.8,
    }
}

fn err(e: mysql::Error) -> Error {
    Error::storage("MySQL", e)
}

pub struct MysqlRows {
    pool: Pool,
}

impl MysqlRows {
    /// Connect with notary's DSN and create the table and index where missing.
    pub fn open(dsn: &str) -> Result<MysqlRows> {
        let opts =
            trustbridge_db::mysql::parse_dsn(dsn).map_err(|e| Error::Invalid(e.to_string()))?;
        let pool = Pool::new(opts).map_err(err)?;
        let rows = MysqlRows { pool };
        let mut c = rows.conn()?;
        c.query_drop(TABLE).map_err(err)?;
        let has: Option<u64> = c
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() \
                 AND table_name = 'private_keys' AND index_name = ?",
                (INDEX,),
            )
            .map_err(err)?;
        if has.unwrap_or(0) == 0 {
            match c.query_drop(format!(
                "CREATE INDEX {INDEX} ON private_keys (gun, role, algorithm, key_id)"
            )) {
                Err(mysql::Error::MySqlError(e)) if e.code == ER_DUP_KEYNAME => {}
                other => other.map_err(err)?,
            }
        }
        Ok(rows)
    }

    fn conn(&self) -> Result<PooledConn> {
        self.pool.get_conn().map_err(err)
    }
}

/// Transactions read committed rows and lock only the rows they write (no gap locks), so
/// signers writing different keys never wait on each other.
fn tx_opts() -> TxOpts {
    TxOpts::default().set_isolation_level(Some(IsolationLevel::ReadCommitted))
}

fn insert(c: &mut impl Queryable, row: &KeyRow) -> Result<(), mysql::Error> {
    // A restore replaces a soft-deleted row; a new key (the common case) has none, and a
    // DELETE that finds nothing would still lock the index gap, which two signers creating
    // keys at once then deadlock on.
    let deleted: Option<i64> = c.exec_first(
        "SELECT 1 FROM private_keys WHERE key_id = ? AND deleted_at IS NOT NULL",
        (&row.key_id,),
    )?;
    if deleted.is_some() {
        c.exec_drop(
            "DELETE FROM private_keys WHERE key_id = ? AND deleted_at IS NOT NULL",
            (&row.key_id,),
        )?;
    }
    let created = row.created_at.as_deref().and_then(sql_time);
    let used = row.last_used.as_deref().and_then(sql_time);
    c.exec_drop(
        "INSERT INTO private_keys (created_at, updated_at, key_id, encryption_alg, keywrap_alg, \
         algorithm, passphrase_alias, public, private, gun, role, last_used) \
         VALUES (COALESCE(?, UTC_TIMESTAMP()), UTC_TIMESTAMP(), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            created,
            &row.key_id,
            ENCRYPTION_ALG,
            KEYWRAP_ALG,
            &row.algorithm,
            &row.passphrase_alias,
            &row.public,
            row.private.as_bytes(),
            &row.gun,
            &row.role,
            used,
        ),
    )
}

fn get(c: &mut impl Queryable, key_id: &str) -> Result<Option<KeyRow>, mysql::Error> {
    let t: Option<Tuple> = c.exec_first(
        format!("SELECT {COLUMNS} FROM private_keys WHERE key_id = ? AND deleted_at IS NULL"),
        (key_id,),
    )?;
    Ok(t.map(from_tuple))
}

impl KeyRows for MysqlRows {
    fn get(&self, key_id: &str) -> Result<Option<KeyRow>> {
        get(&mut self.conn()?, key_id).map_err(err)
    }

    fn list(&self) -> Result<Vec<KeyRow>> {
        let rows: Vec<Tuple> = self
            .conn()?
            .query(format!(
                "SELECT {COLUMNS} FROM private_keys WHERE deleted_at IS NULL ORDER BY key_id"
            ))
            .map_err(err)?;
        Ok(rows.into_iter().map(from_tuple).collect())
    }

    fn unused(&self, role: &str, gun: &str, algorithm: &str) -> Result<Option<KeyRow>> {
        let t: Option<Tuple> = self
            .conn()?
            .exec_first(
                format!(
                    "SELECT {COLUMNS} FROM private_keys WHERE role = ? AND gun = ? \
                     AND algorithm = ? AND last_used IS NULL AND deleted_at IS NULL \
                     ORDER BY key_id LIMIT 1"
                ),
                (role, gun, algorithm),
            )
            .map_err(err)?;
        Ok(t.map(from_tuple))
    }

    fn insert(&self, row: &KeyRow) -> Result<()> {
        let mut c = self.conn()?;
        let mut tx = c.start_transaction(tx_opts()).map_err(err)?;
        insert(&mut tx, row).map_err(err)?;
        tx.commit().map_err(err)
    }

    fn insert_missing(&self, rows: &[KeyRow]) -> Result<usize> {
        let mut c = self.conn()?;
        let mut tx = c.start_transaction(tx_opts()).map_err(err)?;
        let mut added = 0;
        for row in rows {
            if get(&mut tx, &row.key_id).map_err(err)?.is_none() {
                insert(&mut tx, row).map_err(err)?;
                added += 1;
            }
        }
        tx.commit().map_err(err)?;
        Ok(added)
    }

    fn mark_used(&self, key_id: &str) -> Result<()> {
        self.conn()?
            .exec_drop(
                "UPDATE private_keys SET last_used = UTC_TIMESTAMP(), updated_at = UTC_TIMESTAMP() \
                 WHERE key_id = ?",
                (key_id,),
            )
            .map_err(err)
    }

    fn set_public(&self, key_id: &str, expected: Option<&[u8]>, public: &[u8]) -> Result<bool> {
        let mut c = self.conn()?;
        c.exec_drop(
            "UPDATE private_keys SET public = ?, updated_at = UTC_TIMESTAMP() \
             WHERE key_id = ? AND deleted_at IS NULL AND (? IS NULL OR public = ?)",
            (public, key_id, expected, expected),
        )
        .map_err(err)?;
        Ok(c.affected_rows() > 0)
    }

    fn soft_delete(&self, key_id: &str) -> Result<bool> {
        let mut c = self.conn()?;
        c.exec_drop(
            "UPDATE private_keys SET deleted_at = UTC_TIMESTAMP(), updated_at = UTC_TIMESTAMP() \
             WHERE key_id = ? AND deleted_at IS NULL",
            (key_id,),
        )
        .map_err(err)?;
        Ok(c.affected_rows() > 0)
    }

    fn set_private(&self, rows: &[(String, String, String)]) -> Result<()> {
        let mut c = self.conn()?;
        let mut tx = c.start_transaction(tx_opts()).map_err(err)?;
        for (key_id, alias, jwe) in rows {
            tx.exec_drop(
                "UPDATE private_keys SET private = ?, passphrase_alias = ?, \
                 updated_at = UTC_TIMESTAMP() WHERE key_id = ?",
                (jwe.as_bytes(), alias, key_id),
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }
}
