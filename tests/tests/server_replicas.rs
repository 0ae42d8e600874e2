//! Several trustbridge-server replicas on one PostgreSQL or MariaDB database, and
//! notary-server's own database (the machine's PostgreSQL and MariaDB, one fresh database per
//! test, dropped afterwards):
//! - a write through one replica is served by the other at once (its cached view is dropped
//!   by the commit's notification on PostgreSQL, by the changefeed poll on MySQL);
//! - trustbridge-server takes over a database that Go notary-server wrote, in notary's own
//!   schema, with the same Go notary-signer, and notary-server reads back what it wrote;
//! - one replica at a time runs the Cosign bridge, and another takes over.

use std::path::Path;
use std::time::{Duration, Instant};

use trustbridge_e2e::mysql::{MyDb, NOTARY_SERVER_SCHEMA};
use trustbridge_e2e::peers::{docker_registry, go_server_with, go_signer};
use trustbridge_e2e::pg::{PgDb, psql};
use trustbridge_e2e::server::{notary, start_server, write_config_file};
use trustbridge_e2e::signer::{cosign_key_generate, start_ours, write_config};
use trustbridge_e2e::{Proc, free_port, https_get, init};

/// The real notary client adds `tag` (10 bytes, `sha` hex) to `gun` and publishes.
fn addhash(url: &str, ca: &Path, trust: &Path, gun: &str, tag: &str, sha: &str) {
    notary(
        url,
        ca,
        trust,
        &["addhash", gun, tag, "10", "--sha256", sha, "-p"],
    );
}

/// trustbridge-server `name` on `port` with `storage`, using the signer on `signer_port`
/// (and `extra` config members): the process and its URL.
fn replica(
    dir: &Path,
    name: &str,
    port: u16,
    signer_port: u16,
    storage: &str,
    extra: &str,
    others: &mut [&mut Proc],
) -> (Proc, String) {
    let config = dir.join(format!("{name}.json"));
    write_config_file(&config, port, signer_port, storage, extra);
    (
        start_server(name, dir, &config, port, others),
        format!("https://127.0.0.1:{port}"),
    )
}

/// The version in `GET /v2/<gun>/_trust/tuf/timestamp.json` of the server at `url`.
fn timestamp_version(url: &str, ca: &Path, gun: &str) -> i64 {
    let (code, body) = https_get(&format!("{url}/v2/{gun}/_trust/tuf/timestamp.json"), ca);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["signed"]["version"].as_i64().unwrap()
}

#[test]
fn two_replicas_share_one_postgresql_database() {
    let db = PgDb::new("replicas");
    two_replicas(&db.storage());
}

#[test]
fn two_replicas_share_one_mariadb_database() {
    let db = MyDb::new("replicas");
    two_replicas(&db.storage());
}

fn two_replicas(storage: &str) {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let ca = certs.join("root-ca.crt");
    let signer_port = free_port();
    let sc = write_config(dir, signer_port, "sqlite3");
    let mut signer = start_ours("trustbridge-signer", &sc, &certs, signer_port);
    let (_a, a) = replica(
        dir,
        "replica-a",
        free_port(),
        signer_port,
        storage,
        "",
        &mut [&mut signer],
    );
    let (_b, b) = replica(
        dir,
        "replica-b",
        free_port(),
        signer_port,
        storage,
        "",
        &mut [&mut signer],
    );
    let gun = "example.com/replicated";
    let trust = dir.join("trust");

    // Written through A, read through B by a fresh client.
    notary(&a, &ca, &trust, &["init", gun, "-p"]);
    addhash(&a, &ca, &trust, gun, "v1", &"11".repeat(32));
    assert_eq!(timestamp_version(&a, &ca, gun), 2);
    let list = notary(&b, &ca, &dir.join("fresh-b"), &["list", gun]);
    assert!(list.contains("v1"), "{list}");

    // Written through B: A serves it at once, though A had the repository in memory.
    addhash(&b, &ca, &trust, gun, "v2", &"22".repeat(32));
    let start = Instant::now();
    while timestamp_version(&a, &ca, gun) != 3 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "replica A kept a stale timestamp"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let list = notary(&a, &ca, &dir.join("fresh-a"), &["list", gun]);
    assert!(list.contains("v1") && list.contains("v2"), "{list}");

    // Server-managed keys work from either replica: rotate through A, publish through B.
    notary(&a, &ca, &trust, &["key", "rotate", gun, "timestamp", "-r"]);
    addhash(&b, &ca, &trust, gun, "v3", &"33".repeat(32));
    let list = notary(&a, &ca, &dir.join("fresh-a2"), &["list", gun]);
    assert!(list.contains("v3"), "{list}");

    // One changefeed for both.
    let (code, body) = https_get(
        &format!("{a}/v2/{gun}/_trust/changefeed?change_id=0&records=100"),
        &ca,
    );
    assert_eq!(code, 200);
    let feed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let (_, body_b) = https_get(
        &format!("{b}/v2/{gun}/_trust/changefeed?change_id=0&records=100"),
        &ca,
    );
    assert_eq!(
        feed,
        serde_json::from_slice::<serde_json::Value>(&body_b).unwrap()
    );
    assert!(feed["records"].as_array().unwrap().len() >= 4, "{feed}");
}

#[test]
fn takes_over_a_notary_server_mariadb_database_and_back() {
    let db = MyDb::new("takeover");
    // notary-server does not create its tables: its MySQL migrations, as deployed.
    db.sql(NOTARY_SERVER_SCHEMA);
    takeover(&db.storage());
}

#[test]
fn takes_over_a_notary_server_postgresql_database_and_back() {
    let db = PgDb::new("takeover");
    // notary-server does not create its tables: its PostgreSQL migrations, as deployed.
    psql(
        &db.name,
        "CREATE TABLE tuf_files (id serial PRIMARY KEY, created_at timestamp NULL, updated_at timestamp NULL,
           deleted_at timestamp NULL, gun varchar(255) NOT NULL, role varchar(255) NOT NULL, version integer NOT NULL,
           data bytea NOT NULL, sha256 char(64) DEFAULT NULL, UNIQUE (gun, role, version));
         CREATE INDEX tuf_files_sha256_idx ON tuf_files(sha256);
         CREATE TABLE change_category (category VARCHAR(20) PRIMARY KEY);
         INSERT INTO change_category VALUES ('update'), ('deletion');
         CREATE TABLE changefeed (id serial PRIMARY KEY, created_at timestamp DEFAULT CURRENT_TIMESTAMP,
           gun varchar(255) NOT NULL, version integer NOT NULL, sha256 CHAR(64) DEFAULT NULL,
           category VARCHAR(20) NOT NULL DEFAULT 'update' REFERENCES change_category);
         CREATE INDEX idx_changefeed_gun ON changefeed (gun);",
    );
    takeover(&db.storage());
}

fn takeover(storage: &str) {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let ca = certs.join("root-ca.crt");
    let signer_port = free_port();
    let _signer = go_signer(dir, signer_port, r#"{"backend":"memory"}"#);
    let gun = "example.com/moved";
    let trust = dir.join("trust");

    // notary-server writes the repository.
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let mut go = go_server_with(dir, port, signer_port, storage, "");
    notary(&url, &ca, &trust, &["init", gun, "-p"]);
    addhash(&url, &ca, &trust, gun, "v1", &"11".repeat(32));
    go.stop();

    // trustbridge-server on the same database and signer serves it and takes writes: the
    // timestamp key stayed in the signer.
    let (mut ours, _) = replica(
        dir,
        "trustbridge-server",
        port,
        signer_port,
        storage,
        "",
        &mut [],
    );
    let list = notary(&url, &ca, &dir.join("fresh1"), &["list", gun]);
    assert!(list.contains("v1"), "{list}");
    addhash(&url, &ca, &trust, gun, "v2", &"22".repeat(32));
    ours.stop();

    // And back: notary-server reads what trustbridge wrote.
    let _go = go_server_with(dir, port, signer_port, storage, "");
    let list = notary(&url, &ca, &dir.join("fresh2"), &["list", gun]);
    assert!(list.contains("v1") && list.contains("v2"), "{list}");

    // Side by side on one database: trustbridge-server (holding the repository in memory)
    // serves what notary-server writes next, within a couple of seconds.
    let (_ours2, turl) = replica(
        dir,
        "trustbridge-server-2",
        free_port(),
        signer_port,
        storage,
        "",
        &mut [],
    );
    let before = timestamp_version(&turl, &ca, gun);
    addhash(&url, &ca, &trust, gun, "v3", &"33".repeat(32));
    let after = timestamp_version(&url, &ca, gun);
    assert!(after > before);
    let start = Instant::now();
    while timestamp_version(&turl, &ca, gun) != after {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "trustbridge-server kept notary-server's older timestamp"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `trustbridge_bridge_jobs_total{action="sign",outcome="mirrored"}` of one replica.
fn mirrored_here(url: &str, ca: &Path) -> u64 {
    let (_, m) = https_get(&format!("{url}/metrics"), ca);
    String::from_utf8_lossy(&m)
        .lines()
        .find(|l| {
            l.starts_with(r#"trustbridge_bridge_jobs_total{action="sign",outcome="mirrored"}"#)
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Wait until every job of `gun` is mirrored; returns how many there are.
fn all_mirrored(url: &str, ca: &Path, gun: &str, want: usize) {
    let start = Instant::now();
    loop {
        let (_, body) = https_get(&format!("{url}/_trustbridge/v1/status?gun={gun}"), ca);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let rows = v["targets"].as_array().cloned().unwrap_or_default();
        if rows.len() == want && rows.iter().all(|t| t["state"] == "mirrored") {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not all mirrored: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn one_replica_at_a_time_runs_the_bridge_on_postgresql() {
    let db = PgDb::new("lease");
    bridge_lease(&db.storage());
}

#[test]
fn one_replica_at_a_time_runs_the_bridge_on_mariadb() {
    let db = MyDb::new("lease");
    bridge_lease(&db.storage());
}

/// One replica at a time runs the bridge, and another takes over when it goes.
fn bridge_lease(storage: &str) {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let ca = certs.join("root-ca.crt");
    let rport = free_port();
    let _registry = docker_registry(dir, rport, "", "");
    let signer_port = free_port();
    let sc = write_config(dir, signer_port, "sqlite3");
    let key_id = cosign_key_generate(&sc);
    let mut signer = start_ours("trustbridge-signer", &sc, &certs, signer_port);
    let bridge =
        format!(r#","trustbridge":{{"bridge":{{"key_id":"{key_id}","allow_loopback":true}}}}"#);
    let (mut ra, a) = replica(
        dir,
        "replica-a",
        free_port(),
        signer_port,
        storage,
        &bridge,
        &mut [&mut signer],
    );
    let (_rb, b) = replica(
        dir,
        "replica-b",
        free_port(),
        signer_port,
        storage,
        &bridge,
        &mut [&mut signer],
    );
    let gun = format!("127.0.0.1:{rport}/team/app");
    let trust = dir.join("trust");
    notary(&a, &ca, &trust, &["init", &gun, "-p"]);
    for i in 1..=6u8 {
        let url = if i % 2 == 0 { &a } else { &b };
        let sha = format!("{i:02x}").repeat(32);
        addhash(url, &ca, &trust, &gun, &format!("v{i}"), &sha);
    }
    all_mirrored(&a, &ca, &gun, 6);
    // Every job was delivered once, all by the replica holding the lease.
    let (ma, mb) = (mirrored_here(&a, &ca), mirrored_here(&b, &ca));
    assert_eq!(ma + mb, 6, "a {ma}, b {mb}");
    assert!(
        ma == 0 || mb == 0,
        "both replicas delivered: a {ma}, b {mb}"
    );
    let lease = |url: &str| {
        let (_, m) = https_get(&format!("{url}/metrics"), &ca);
        String::from_utf8_lossy(&m)
            .lines()
            .any(|l| l == "trustbridge_bridge_lease 1")
    };
    assert_eq!(
        (lease(&a), lease(&b)),
        (ma > 0, mb > 0),
        "the lease gauge names the deliverer"
    );

    // The holder goes away: the other takes the lease and delivers what comes next.
    let (survivor, holder_was_a) = if ma > 0 { (&b, true) } else { (&a, false) };
    if holder_was_a {
        ra.stop();
    } else {
        drop(_rb);
    }
    addhash(survivor, &ca, &trust, &gun, "v7", &"77".repeat(32));
    all_mirrored(survivor, &ca, &gun, 7);
    assert_eq!(mirrored_here(survivor, &ca), 1);
}

/// `publish-load` on `url`: `writers` publishers (each its own GUN, server-held snapshot and
/// timestamp) for `seconds`; what it printed.
fn publish_load(url: &str, ca: &Path, writers: u32, seconds: u32) -> std::process::Child {
    std::process::Command::new(trustbridge_e2e::our_bin("trustbridge-e2e", "publish-load"))
        .arg(url)
        .arg(ca)
        .args([writers.to_string(), seconds.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Two replicas on one MariaDB database take 16 concurrent writers (8 each) with every
/// publish answered: the per-GUN named locks, read-committed transactions and the deadlock
/// retry leave no writer failing on another's locks.
#[test]
fn sixteen_writers_on_two_mariadb_replicas_all_succeed() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = MyDb::new("storm");
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let ca = certs.join("root-ca.crt");
    let signer_port = free_port();
    let sc = write_config(dir, signer_port, "sqlite3");
    let mut signer = start_ours("trustbridge-signer", &sc, &certs, signer_port);
    let (_ra, a) = replica(
        dir,
        "replica-a",
        free_port(),
        signer_port,
        &db.storage(),
        "",
        &mut [&mut signer],
    );
    let (_rb, b) = replica(
        dir,
        "replica-b",
        free_port(),
        signer_port,
        &db.storage(),
        "",
        &mut [&mut signer],
    );
    let loads = [publish_load(&a, &ca, 8, 5), publish_load(&b, &ca, 8, 5)];
    let mut total = 0u64;
    for load in loads {
        let out = load.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && said.contains(" 0 failed"), "{said}");
        total += said
            .split(" publishes, ")
            .next()
            .and_then(|s| s.rsplit('(').next())
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        eprintln!("{said}");
    }
    assert!(total > 32, "the storm hardly ran: {total} publishes");
    // Every acknowledged publish is one changefeed row (a new timestamp) in the shared feed.
    let feed: u64 = db
        .sql("SELECT COUNT(*) FROM changefeed")
        .trim()
        .parse()
        .unwrap();
    assert!(
        feed >= total,
        "changefeed {feed} < {total} acknowledged publishes"
    );
}
