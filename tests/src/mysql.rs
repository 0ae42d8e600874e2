//! A database of its own on the machine's MariaDB (127.0.0.1:3306, root, empty password), for
//! the MySQL backends' tests, driven through the `mariadb` client as an operator would.

use std::process::Command;

use crate::{free_port, require_bin, run_ok};

/// Run `sql` on database `db` and return the rows, tab-separated, without headers.
pub fn mariadb(db: &str, sql: &str) -> String {
    let out = run_ok(
        "mariadb",
        Command::new(require_bin("mariadb"))
            .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-N", "-B"])
            .args(["-D", db, "-e", sql]),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A database of its own, dropped on drop.
pub struct MyDb {
    pub name: String,
}

impl MyDb {
    pub fn new(tag: &str) -> MyDb {
        let name = format!("tb_{tag}_{}_{}", std::process::id(), free_port());
        mariadb("mysql", &format!("CREATE DATABASE {name}"));
        MyDb { name }
    }

    /// notary's DSN for it (go-sql-driver form, as notary's configs write it).
    pub fn dsn(&self) -> String {
        format!("root@tcp(127.0.0.1:3306)/{}?parseTime=True", self.name)
    }

    pub fn sql(&self, sql: &str) -> String {
        mariadb(&self.name, sql)
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        let _ = Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e"])
            .arg(format!("DROP DATABASE IF EXISTS {}", self.name))
            .output();
    }
}

/// notary's `migrations/signer/mysql` (0001, 0002), as its migrate step leaves a database.
pub const NOTARY_SIGNER_SCHEMA: &str = "CREATE TABLE `private_keys` (
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
  PRIMARY KEY (`id`),
  UNIQUE KEY `key_id` (`key_id`),
  UNIQUE KEY `key_id_2` (`key_id`,`algorithm`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
ALTER TABLE `private_keys` ADD COLUMN `gun` VARCHAR(255) NOT NULL, ADD COLUMN `role` VARCHAR(255) NOT NULL, ADD COLUMN `last_used` TIMESTAMP NULL DEFAULT NULL;";

/// notary's `migrations/server/mysql` (0001–0005), as its migrate step leaves a database
/// (`timestamp_keys`, made by 0001 and dropped by 0004, left out).
pub const NOTARY_SERVER_SCHEMA: &str = "CREATE TABLE `tuf_files` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `created_at` timestamp NULL DEFAULT NULL,
  `updated_at` timestamp NULL DEFAULT NULL,
  `deleted_at` timestamp NULL DEFAULT NULL,
  `gun` varchar(255) NOT NULL,
  `role` varchar(255) NOT NULL,
  `version` int(11) NOT NULL,
  `data` longblob NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `gun` (`gun`,`role`,`version`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
ALTER TABLE `tuf_files` ADD COLUMN `sha256` CHAR(64) DEFAULT NULL, ADD INDEX `sha256` (`sha256`);
CREATE TABLE `change_category` (
  `category` VARCHAR(20) NOT NULL,
  PRIMARY KEY (`category`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
INSERT INTO `change_category` VALUES ('update'), ('deletion');
CREATE TABLE `changefeed` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `created_at` timestamp DEFAULT CURRENT_TIMESTAMP,
  `gun` varchar(255) NOT NULL,
  `version` int(11) NOT NULL,
  `sha256` CHAR(64) DEFAULT NULL,
  `category` VARCHAR(20) NOT NULL DEFAULT 'update',
  PRIMARY KEY (`id`),
  FOREIGN KEY (`category`) REFERENCES `change_category` (`category`),
  INDEX `idx_changefeed_gun` (`gun`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;";

impl MyDb {
    /// The `storage` object of a server config for this database.
    pub fn storage(&self) -> String {
        format!(r#"{{"backend":"mysql","db_url":"{}"}}"#, self.dsn())
    }
}

/// A MariaDB server of a test's own (mariadb-install-db into a temporary directory, run as
/// root on a free loopback port) serving TLS with `cert`/`key`, stopped on drop: the
/// machine's MariaDB has TLS off.
pub struct PrivateMaria {
    _tmp: tempfile::TempDir,
    child: std::process::Child,
    pub port: u16,
}

impl PrivateMaria {
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> PrivateMaria {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        run_ok(
            "mariadb-install-db",
            Command::new(require_bin("mariadb-install-db"))
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .args([
                    "--user=root",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ]),
        );
        let port = free_port();
        let child = Command::new(require_bin("mariadbd"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", tmp.path().join("sock").display()))
            .arg(format!("--port={port}"))
            .args(["--user=root", "--bind-address=127.0.0.1", "--skip-log-bin"])
            .arg(format!("--ssl-cert={}", cert.display()))
            .arg(format!("--ssl-key={}", key.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let m = PrivateMaria {
            _tmp: tmp,
            child,
            port,
        };
        let start = std::time::Instant::now();
        while m.try_sql("SELECT 1").is_none() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "the private MariaDB never answered"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        m
    }

    fn try_sql(&self, sql: &str) -> Option<String> {
        let out = Command::new("mariadb")
            .args([
                "-h",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
                "-u",
                "root",
                "-N",
                "-B",
            ])
            .args(["-e", sql])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Run `sql` as root (over TCP, no TLS needed for root).
    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|| panic!("private MariaDB refused: {sql}"))
    }
}

impl Drop for PrivateMaria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
