//! The key rows in notary-signer's PostgreSQL database (`storage.backend: "postgres"`, the
//! same `db_url`): `migrations/signer/postgresql` made the table; it is created here when
//! missing, with the index CreateKey's lookup needs (notary's schema has none; Go
//! notary-signer ignores it). Several signers may share the database.
//!
//! One connection, behind a lock: the signer touches its database only to create a key, to
//! load one into its cache, and to re-check a cached key every few seconds, never per
//! signature. A connection that broke is replaced on the next call.

use std::sync::{Mutex, MutexGuard};

use postgres::{Client, Row};
use trustbridge_db::pg_tls::MakeRustls;

use super::rows::{ENCRYPTION_ALG, KEYWRAP_ALG, KeyRow, KeyRows, sql_time};
use crate::error::{Error, Result};

/// notary's `migrations/signer/postgresql` table, then the lookup index.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS private_keys (
  id serial PRIMARY KEY,
  created_at timestamp NULL DEFAULT NULL,
  updated_at timestamp NULL DEFAULT NULL,
  deleted_at timestamp NULL DEFAULT NULL,
  key_id varchar(255) NOT NULL,
  encryption_alg varchar(255) NOT NULL,
  keywrap_alg varchar(255) NOT NULL,
  algorithm varchar(50) NOT NULL,
  passphrase_alias varchar(50) NOT NULL,
  public bytea NOT NULL,
  private bytea NOT NULL,
  gun varchar(255) NOT NULL,
  role varchar(255) NOT NULL,
  last_used timestamp NULL DEFAULT NULL,
  CONSTRAINT key_id UNIQUE (key_id),
  CONSTRAINT key_id_2 UNIQUE (key_id, algorithm)
);
CREATE INDEX IF NOT EXISTS private_keys_gun_role_algorithm
  ON private_keys (gun, role, algorithm, key_id);
"#;

/// Held while the schema is created, so signers starting together do not race.
const SCHEMA_LOCK: i64 = 0x7462_0002;

/// gorm writes these columns in UTC without a zone; they are shown as RFC 3339.
const COLUMNS: &str = "key_id, algorithm, passphrase_alias, public, private, gun, role, \
    to_char(created_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
    to_char(last_used, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";

const NOW: &str = "(now() AT TIME ZONE 'utc')";

pub struct PgRows {
    config: postgres::Config,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    client: Mutex<Option<Client>>,
}

fn err(e: postgres::Error) -> Error {
    Error::storage("PostgreSQL", e)
}

fn from_row(r: &Row) -> KeyRow {
    KeyRow {
        key_id: r.get(0),
        algorithm: r.get(1),
        passphrase_alias: r.get(2),
        public: r.get(3),
        // The compact JWE is ASCII; notary stores it as bytes.
        private: String::from_utf8_lossy(r.get::<_, &[u8]>(4)).into_owned(),
        gun: r.get(5),
        role: r.get(6),
        created_at: r.get(7),
        last_used: r.get(8),
    }
}

impl PgRows {
    /// Connect with notary's `db_url` and create the table and index where missing.
    pub fn open(url: &str) -> Result<PgRows> {
        let parsed =
            trustbridge_db::postgres::parse_url(url).map_err(|e| Error::Invalid(e.to_string()))?;
        let rows = PgRows {
            config: parsed.config.into(),
            tls: parsed.tls,
            client: Mutex::new(None),
        };
        rows.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            tx.batch_execute(SCHEMA)?;
            tx.commit()
        })?;
        Ok(rows)
    }

    fn connect(&self) -> Result<Client> {
        match &self.tls {
            None => self.config.connect(postgres::NoTls),
            Some(tls) => self.config.connect(MakeRustls(tls.clone())),
        }
        .map_err(err)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Client>> {
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` on the connection, opening one if there is none or the last one broke.
    fn with<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>) -> Result<T> {
        let mut slot = self.lock();
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            *slot = Some(self.connect()?);
        }
        let Some(client) = slot.as_mut() else {
            return Err(Error::Invalid("PostgreSQL: no connection".into()));
        };
        let out = f(client);
        if client.is_closed() {
            *slot = None;
        }
        out.map_err(err)
    }
}

fn insert(c: &mut impl postgres::GenericClient, row: &KeyRow) -> Result<(), postgres::Error> {
    c.execute(
        "DELETE FROM private_keys WHERE key_id = $1 AND deleted_at IS NOT NULL",
        &[&row.key_id],
    )?;
    let created = row.created_at.as_deref().and_then(sql_time);
    let used = row.last_used.as_deref().and_then(sql_time);
    c.execute(
        &format!(
            "INSERT INTO private_keys (created_at, updated_at, key_id, encryption_alg, keywrap_alg, \
             algorithm, passphrase_alias, public, private, gun, role, last_used) \
             VALUES (COALESCE($1::text::timestamp, {NOW}), {NOW}, $2, $3, $4, $5, $6, $7, $8, $9, \
             $10, $11::text::timestamp)"
        ),
        &[
            &created,
            &row.key_id,
            &ENCRYPTION_ALG,
            &KEYWRAP_ALG,
            &row.algorithm,
            &row.passphrase_alias,
            &row.public,
            &row.private.as_bytes(),
            &row.gun,
            &row.role,
            &used,
        ],
    )?;
    Ok(())
}

fn get(c: &mut impl postgres::GenericClient, key_id: &str) -> Result<Option<Row>, postgres::Error> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM private_keys WHERE key_id = $1 AND deleted_at IS NULL"),
        &[&key_id],
    )
}

impl KeyRows for PgRows {
    fn get(&self, key_id: &str) -> Result<Option<KeyRow>> {
        Ok(self.with(|c| get(c, key_id))?.as_ref().map(from_row))
    }

    fn list(&self) -> Result<Vec<KeyRow>> {
        let rows = self.with(|c| {
            c.query(
                &format!(
                    "SELECT {COLUMNS} FROM private_keys WHERE deleted_at IS NULL ORDER BY key_id"
                ),
                &[],
            )
        })?;
        Ok(rows.iter().map(from_row).collect())
    }

    fn unused(&self, role: &str, gun: &str, algorithm: &str) -> Result<Option<KeyRow>> {
        let row = self.with(|c| {
            c.query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM private_keys WHERE role = $1 AND gun = $2 \
                     AND algorithm = $3 AND last_used IS NULL AND deleted_at IS NULL \
                     ORDER BY key_id LIMIT 1"
                ),
                &[&role, &gun, &algorithm],
            )
        })?;
        Ok(row.as_ref().map(from_row))
    }

    fn insert(&self, row: &KeyRow) -> Result<()> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            insert(&mut tx, row)?;
            tx.commit()
        })
    }

    fn insert_missing(&self, rows: &[KeyRow]) -> Result<usize> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let mut added = 0;
            for row in rows {
                if get(&mut tx, &row.key_id)?.is_none() {
                    insert(&mut tx, row)?;
                    added += 1;
                }
            }
            tx.commit()?;
            Ok(added)
        })
    }

    fn mark_used(&self, key_id: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                &format!(
                    "UPDATE private_keys SET last_used = {NOW}, updated_at = {NOW} WHERE key_id = $1"
                ),
                &[&key_id],
            )
        })?;
        Ok(())
    }

    fn set_public(&self, key_id: &str, expected: Option<&[u8]>, public: &[u8]) -> Result<bool> {
        let n = self.with(|c| {
            c.execute(
                &format!(
                    "UPDATE private_keys SET public = $1, updated_at = {NOW} \
                     WHERE key_id = $2 AND deleted_at IS NULL \
                     AND ($3::bytea IS NULL OR public = $3)"
                ),
                &[&public, &key_id, &expected],
            )
        })?;
        Ok(n > 0)
    }

    fn soft_delete(&self, key_id: &str) -> Result<bool> {
        let n = self.with(|c| {
            c.execute(
                &format!(
                    "UPDATE private_keys SET deleted_at = {NOW}, updated_at = {NOW} \
                     WHERE key_id = $1 AND deleted_at IS NULL"
                ),
                &[&key_id],
            )
        })?;
        Ok(n > 0)
    }

    fn set_private(&self, rows: &[(String, String, String)]) -> Result<()> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            for (key_id, alias, jwe) in rows {
                tx.execute(
                    &format!(
                        "UPDATE private_keys SET private = $1, passphrase_alias = $2, \
                         updated_at = {NOW} WHERE key_id = $3"
                    ),
                    &[&jwe.as_bytes(), alias, key_id],
                )?;
            }
            tx.commit()
        })
    }
}
