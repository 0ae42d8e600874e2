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

/// Run `sql` on database `db` and return its rows unaligned (`|` between fields).
pub fn query(db: &str, sql: &str) -> String {
    let out = run_ok(
        "psql",
        Command::new(require_bin("psql"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db])
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-F",
                "|",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ]),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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

/// A PostgreSQL cluster of a test's own (initdb in a temporary directory, run as the
/// `postgres` user on a free port), so it can be crashed without touching the machine's.
pub struct PrivatePg {
    _tmp: tempfile::TempDir,
    data: std::path::PathBuf,
    port: u16,
}

fn pg_bin(name: &str) -> std::path::PathBuf {
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries (/usr/lib/postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("{name} not found under /usr/lib/postgresql"))
}

fn as_postgres(args: &[&std::ffi::OsStr]) {
    let out = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivatePg {
    pub fn start_new() -> PrivatePg {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).unwrap();
        crate::run_ok(
            "chown",
            std::process::Command::new("chown")
                .arg("postgres:postgres")
                .arg(&data),
        );
        let initdb = pg_bin("initdb");
        as_postgres(&[
            initdb.as_os_str(),
            "-D".as_ref(),
            data.as_os_str(),
            "--auth=trust".as_ref(),
            "-U".as_ref(),
            "postgres".as_ref(),
        ]);
        let pg = PrivatePg {
            _tmp: tmp,
            data,
            port: crate::free_port(),
        };
        pg.start();
        crate::run_ok(
            "createdb",
            std::process::Command::new("psql").args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-qc",
                "CREATE DATABASE notary",
            ]),
        );
        pg
    }

    pub fn start(&self) {
        let ctl = pg_bin("pg_ctl");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.data.display()
        );
        as_postgres(&[
            ctl.as_os_str(),
            "-D".as_ref(),
            self.data.as_os_str(),
            "-o".as_ref(),
            opts.as_ref(),
            "-w".as_ref(),
            "-l".as_ref(),
            self.data.join("log").as_os_str(),
            "start".as_ref(),
        ]);
    }

    /// A crash: every backend is killed without a checkpoint.
    pub fn crash(&self) {
        let ctl = pg_bin("pg_ctl");
        as_postgres(&[
            ctl.as_os_str(),
            "-D".as_ref(),
            self.data.as_os_str(),
            "-m".as_ref(),
            "immediate".as_ref(),
            "stop".as_ref(),
        ]);
    }

    /// The `storage` object of a server config for its database `notary`.
    pub fn storage(&self) -> String {
        format!(
            r#"{{"backend":"postgres","db_url":"postgres://postgres@127.0.0.1:{}/notary?sslmode=disable"}}"#,
            self.port
        )
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let ctl = pg_bin("pg_ctl");
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(ctl)
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// notary's `migrations/signer/postgresql/0001_initial.up.sql` table (reference §5.3).
pub const NOTARY_SIGNER_SCHEMA: &str = r#"CREATE TABLE "private_keys" (
  "id" serial PRIMARY KEY,
  "created_at" timestamp NULL DEFAULT NULL,
  "updated_at" timestamp NULL DEFAULT NULL,
  "deleted_at" timestamp NULL DEFAULT NULL,
  "key_id" varchar(255) NOT NULL,
  "encryption_alg" varchar(255) NOT NULL,
  "keywrap_alg" varchar(255) NOT NULL,
  "algorithm" varchar(50) NOT NULL,
  "passphrase_alias" varchar(50) NOT NULL,
  "public" bytea NOT NULL,
  "private" bytea NOT NULL,
  "gun" varchar(255) NOT NULL,
  "role" varchar(255) NOT NULL,
  "last_used" timestamp NULL DEFAULT NULL,
  CONSTRAINT "key_id" UNIQUE ("key_id"),
  CONSTRAINT "key_id_2" UNIQUE ("key_id","algorithm")
);"#;
