//! trustbridge-signer takes over a notary-signer database as it is, on MariaDB and on
//! PostgreSQL: Go notary-signer 0.7.0 creates keys in notary's own schema; it is stopped and
//! two trustbridge-signer processes start on the same database with the same `storage`
//! section (only the process changed): both sign with Go's keys (same key IDs, same JWE rows,
//! same passphrase alias), CreateKey hands out the unused key Go made, and a key one of ours
//! makes signs through the other. Then back to Go notary-signer: it signs with the key ours
//! made. Every signature is verified with the public key the creating side reported.

use std::path::Path;

use trustbridge_e2e::mysql::{MyDb, NOTARY_SIGNER_SCHEMA};
use trustbridge_e2e::peers::go_signer;
use trustbridge_e2e::pg::PgDb;
use trustbridge_e2e::signer::{create, sign_and_verify, start_ours, write_config};
use trustbridge_e2e::{free_port, init};

/// Copy the dev certificates into `dir/certs` (each process has its own directory).
fn with_certs(dir: &Path, certs: &Path) {
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    for f in std::fs::read_dir(certs).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.join("certs").join(f.file_name())).unwrap();
    }
}

/// The whole takeover on one database; `storage` is the signer config's `storage` object
/// (the one notary-signer had); `index_exists` reads whether our lookup index was added.
fn takeover(storage: &str, index_exists: &dyn Fn() -> bool, live_rows: &dyn Fn() -> usize) {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();

    // 1. Go notary-signer on notary's schema.
    let go_dir = tmp.path().join("go");
    with_certs(&go_dir, &certs);
    let go_port = free_port();
    let mut go = go_signer(&go_dir, go_port, storage);
    let gun = "registry.example/takeover";
    let used = [
        create(go_port, &certs, "ecdsa", gun, "timestamp"),
        create(go_port, &certs, "ed25519", gun, "snapshot"),
    ];
    for (id, public) in &used {
        sign_and_verify(go_port, &certs, id, public, "notary-signer");
    }
    // Created, never used: CreateKey anywhere on this database hands it out again.
    let (spare_id, _) = create(
        go_port,
        &certs,
        "ecdsa",
        "registry.example/next",
        "timestamp",
    );
    assert_eq!(live_rows(), 3, "Go stored three keys");
    go.stop();
    assert!(!index_exists(), "notary's schema has no lookup index");

    // 2. Two trustbridge-signers on the same database, the same storage section.
    let mut ours = Vec::new();
    for name in ["ours-a", "ours-b"] {
        let dir = tmp.path().join(name);
        with_certs(&dir, &certs);
        let port = free_port();
        let config = write_config(&dir, port, storage);
        ours.push((
            port,
            start_ours(&format!("trustbridge-signer {name}"), &config, &certs, port),
        ));
    }
    let (a, b) = (ours[0].0, ours[1].0);
    assert!(index_exists(), "the lookup index is added on start");
    for (id, public) in &used {
        sign_and_verify(a, &certs, id, public, "trustbridge-signer a");
        sign_and_verify(b, &certs, id, public, "trustbridge-signer b");
    }
    let (again, _) = create(b, &certs, "ecdsa", "registry.example/next", "timestamp");
    assert_eq!(
        again, spare_id,
        "CreateKey hands out the unused key notary-signer made"
    );
    let (new_id, new_public) = create(a, &certs, "ed25519", gun, "targets/releases");
    sign_and_verify(b, &certs, &new_id, &new_public, "trustbridge-signer b");
    assert_eq!(live_rows(), 4);
    for (_, p) in &mut ours {
        p.assert_running();
        p.stop();
    }

    // 3. Back to Go notary-signer on the same database: it signs with the key ours made.
    let mut go = go_signer(&go_dir, go_port, storage);
    sign_and_verify(go_port, &certs, &new_id, &new_public, "notary-signer again");
    for (id, public) in &used {
        sign_and_verify(go_port, &certs, id, public, "notary-signer again");
    }
    go.stop();
}

#[test]
fn trustbridge_signer_takes_over_a_notary_signer_mariadb_database() {
    let db = MyDb::new("signer");
    db.sql(NOTARY_SIGNER_SCHEMA);
    let storage = format!(
        r#"{{"backend":"mysql","db_url":"{}","default_alias":"alias1"}}"#,
        db.dsn()
    );
    takeover(
        &storage,
        &|| {
            db.sql(
                "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() \
                 AND index_name = 'private_keys_gun_role_algorithm'",
            )
            .trim()
                != "0"
        },
        &|| {
            db.sql("SELECT COUNT(*) FROM private_keys WHERE deleted_at IS NULL")
                .trim()
                .parse()
                .unwrap()
        },
    );
}

#[test]
fn trustbridge_signer_takes_over_a_notary_signer_postgresql_database() {
    let db = PgDb::new("signer");
    trustbridge_e2e::pg::psql(&db.name, trustbridge_e2e::pg::NOTARY_SIGNER_SCHEMA);
    let storage = format!(
        r#"{{"backend":"postgres","db_url":"{}","default_alias":"alias1"}}"#,
        db.url()
    );
    let query = |sql: &str| trustbridge_e2e::pg::query(&db.name, sql);
    takeover(
        &storage,
        &|| {
            query(
                "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'private_keys_gun_role_algorithm'",
            )
            .trim()
                != "0"
        },
        &|| {
            query("SELECT COUNT(*) FROM private_keys WHERE deleted_at IS NULL")
                .trim()
                .parse()
                .unwrap()
        },
    );
}
