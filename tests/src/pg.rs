//! A database of its own on the machine's PostgreSQL (127.0.0.1:5432, trust auth), for the
//! PostgreSQL store's tests.

use std::process::Command;

use crate::{free_port, require_bin, run_ok};

/// A database of its own on the machine's PostgreSQL, dropped on drop.
pub struct PgDb {
    pub name: String,
}

/// Run `sql` on database `db` (stopping at the first error).
pub fn psql(db: &str, sql: &str) {
    run_ok(
        "psql",
        Command::new(require_bin("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-qc",
            ])
            .arg(sql),
    );
}

impl PgDb {
    pub fn new(tag: &str) -> PgDb {
        let name = format!("tb_{tag}_{}_{}", std::process::id(), free_port());
        psql("postgres", &format!("CREATE DATABASE {name}"));
        PgDb { name }
    }

    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:5432/{}?sslmode=disable",
            self.name
        )
    }

    /// The `storage` object of a server config for this database.
    pub fn storage(&self) -> String {
        format!(r#"{{"backend":"postgres","db_url":"{}"}}"#, self.url())
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}
