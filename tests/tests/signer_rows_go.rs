//! Keys move between Go notary-signer 0.7.0 (PostgreSQL store, notary's own schema) and
//! trustbridge-signer (SQLite) as rows, without re-encryption: a key Go created signs through
//! ours, and a key ours created signs through Go. Each signature is verified with the public
//! key the other implementation reported.

use std::path::Path;
use std::process::Command;

use trustbridge_e2e::signer::{create, sign_and_verify, start_ours, write_config};
use trustbridge_e2e::{Proc, free_port, init, require_bin, run_ok};

fn psql(db: &str, sql: &str) -> String {
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

/// A throwaway PostgreSQL database, dropped afterwards.
struct Db(String);

impl Db {
    fn new() -> Db {
        let name = format!(
            "tb_signer_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        psql("postgres", &format!("CREATE DATABASE {name}"));
        psql(&name, trustbridge_e2e::pg::NOTARY_SIGNER_SCHEMA);
        Db(name)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-q",
                "-c",
            ])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0))
            .output();
    }
}

fn start_go_signer(dir: &Path, db: &Db, port: u16) -> Proc {
    trustbridge_e2e::peers::go_signer(
        dir,
        port,
        &format!(
            r#"{{"backend":"postgres","db_url":"postgres://postgres@127.0.0.1:5432/{}?sslmode=disable","default_alias":"alias1"}}"#,
            db.0
        ),
    )
}

#[test]
fn rows_move_between_go_notary_signer_and_trustbridge_signer() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let db = Db::new();
    let go_port = free_port();
    let go = start_go_signer(dir, &db, go_port);

    // Keys created by Go, stored by Go in PostgreSQL.
    let go_keys = [
        create(go_port, &certs, "ecdsa", "example.com/rows", "timestamp"),
        create(go_port, &certs, "ed25519", "example.com/rows", "snapshot"),
    ];
    for (id, public) in &go_keys {
        sign_and_verify(go_port, &certs, id, public, "notary-signer");
    }

    // Copy Go's rows into our SQLite store as they are (the JWE is not touched).
    let ours_dir = dir.join("ours");
    std::fs::create_dir_all(&ours_dir).unwrap();
    std::fs::create_dir_all(ours_dir.join("certs")).unwrap();
    for f in std::fs::read_dir(&certs).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), ours_dir.join("certs").join(f.file_name())).unwrap();
    }
    let sqlite = rusqlite::Connection::open(ours_dir.join("keys.db")).unwrap();
    sqlite
        .execute_batch(trustbridge_signer::keystore::sqlite::SCHEMA)
        .unwrap();
    let rows = psql(
        &db.0,
        "SELECT key_id, encryption_alg, keywrap_alg, algorithm, passphrase_alias, encode(public, 'hex'), \
         encode(private, 'escape'), gun, role FROM private_keys WHERE deleted_at IS NULL ORDER BY key_id",
    );
    let mut copied = 0;
    for line in rows.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f[1], "A256GCM");
        assert_eq!(f[2], "PBES2-HS256+A128KW");
        sqlite
            .execute(
                "INSERT INTO private_keys (key_id, encryption_alg, keywrap_alg, algorithm, passphrase_alias, public, private, gun, role) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                rusqlite::params![f[0], f[1], f[2], f[3], f[4], hex::decode(f[5]).unwrap(), f[6].as_bytes(), f[7], f[8]],
            )
            .unwrap();
        copied += 1;
    }
    assert_eq!(copied, 2, "Go stored both keys:\n{rows}");
    drop(sqlite);
    let our_port = free_port();
    let config = write_config(&ours_dir, our_port, "sqlite3");
    let ours = start_ours(
        "trustbridge-signer",
        &config,
        &ours_dir.join("certs"),
        our_port,
    );
    for (id, public) in &go_keys {
        sign_and_verify(our_port, &certs, id, public, "trustbridge-signer");
    }

    // The reverse: keys created by ours, rows copied into Go's PostgreSQL store.
    let our_keys = [
        create(our_port, &certs, "ecdsa", "example.com/rows", "timestamp"),
        create(
            our_port,
            &certs,
            "ed25519",
            "example.com/rows",
            "targets/releases",
        ),
    ];
    drop(ours);
    let sqlite = rusqlite::Connection::open(ours_dir.join("keys.db")).unwrap();
    for (id, _) in &our_keys {
        let (alg, alias, public, private, gun, role): (String, String, Vec<u8>, Vec<u8>, String, String) = sqlite
            .query_row(
                "SELECT algorithm, passphrase_alias, public, private, gun, role FROM private_keys WHERE key_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .unwrap();
        psql(
            &db.0,
            &format!(
                "INSERT INTO private_keys (created_at, updated_at, key_id, encryption_alg, keywrap_alg, algorithm, \
                 passphrase_alias, public, private, gun, role) VALUES (now(), now(), '{id}', 'A256GCM', \
                 'PBES2-HS256+A128KW', '{alg}', '{alias}', decode('{}', 'hex'), decode('{}', 'hex'), '{gun}', '{role}')",
                hex::encode(public),
                hex::encode(private)
            ),
        );
    }
    for (id, public) in &our_keys {
        sign_and_verify(go_port, &certs, id, public, "notary-signer");
    }
    drop(go);
}
