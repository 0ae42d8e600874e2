//! The PostgreSQL store (the machine's PostgreSQL on 127.0.0.1:5432, one fresh database per
//! test, dropped afterwards):
//! - it keeps the same semantics as the SQLite store, call for call;
//! - two trustbridge-server replicas share one database, and a write through one is served
//!   by the other at once (its cached view is dropped by the commit's notification);
//! - trustbridge-server takes over a database that Go notary-server wrote, in notary's own
//!   schema, with the same Go notary-signer, and notary-server reads back what it wrote.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trustbridge_e2e::peers::{docker_registry, go_server_with, go_signer};
use trustbridge_e2e::server::{notary, start_server, write_config_file};
use trustbridge_e2e::signer::{cosign_key_generate, start_ours, write_config};
use trustbridge_e2e::{free_port, https_get, init, require_bin, run_ok};
use trustbridge_server::error::Error;
use trustbridge_server::storage::postgres::PgStore;
use trustbridge_server::storage::sqlite::SqliteStore;
use trustbridge_server::storage::{MetaStore, NewJob, Update};

/// A database of its own on the machine's PostgreSQL, dropped on drop.
struct PgDb {
    name: String,
}

fn psql(db: &str, sql: &str) {
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
    fn new(tag: &str) -> PgDb {
        let name = format!("tb_{tag}_{}_{}", std::process::id(), free_port());
        psql("postgres", &format!("CREATE DATABASE {name}"));
        PgDb { name }
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:5432/{}?sslmode=disable",
            self.name
        )
    }

    fn storage(&self) -> String {
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

fn file(role: &str, version: i64, body: &str) -> Update {
    Update {
        role: role.into(),
        version,
        data: Arc::from(format!(r#"{{"{role}":{version},"b":"{body}"}}"#).into_bytes()),
    }
}

fn job(tag: &str) -> NewJob {
    NewJob {
        action: "sign",
        tag: tag.into(),
        digest_hex: "ab".repeat(32),
        role: "targets".into(),
        signers: "k1".into(),
    }
}

/// One scenario through the trait; every answer, written down without times and row IDs
/// that differ by store, so the two stores can be compared line by line.
fn scenario(s: &dyn MetaStore) -> Vec<String> {
    let mut out = Vec::new();
    let g = "example.com/app";
    let mut log = |what: &str, v: String| out.push(format!("{what}: {v}"));
    let r = s.update_many(
        g,
        &[
            file("root", 1, "r"),
            file("targets", 1, "t"),
            file("snapshot", 1, "s"),
            file("timestamp", 1, "x"),
        ],
        &[job("v1")],
    );
    log("first update", format!("{:?}", r.map(|_| ())));
    // A conflicting version anywhere in the batch stores nothing of it.
    let r = s.update_many(
        g,
        &[file("targets", 2, "t2"), file("snapshot", 1, "s-again")],
        &[job("v2")],
    );
    log(
        "stale snapshot",
        format!("{}", matches!(r, Err(Error::OldVersion))),
    );
    log(
        "targets v2 after refusal",
        format!(
            "{:?}",
            s.by_version(g, "targets", 2).unwrap().map(|f| f.version)
        ),
    );
    let r = s.update_many(g, &[file("targets", 3, "a"), file("targets", 3, "b")], &[]);
    log(
        "duplicate in batch",
        format!("{}", matches!(r, Err(Error::OldVersion))),
    );
    for v in 2..=4 {
        s.update_many(g, &[file("timestamp", v, &format!("x{v}"))], &[])
            .unwrap();
    }
    s.update_many(
        "other/app",
        &[file("root", 1, "o"), file("timestamp", 1, "o")],
        &[],
    )
    .unwrap();
    let latest = s.latest(g, "timestamp").unwrap().unwrap();
    log(
        "latest timestamp",
        format!(
            "{} {}",
            latest.version,
            String::from_utf8_lossy(&latest.data)
        ),
    );
    log(
        "by checksum (upper case)",
        format!(
            "{:?}",
            s.by_checksum(g, "timestamp", &latest.sha256.to_uppercase())
                .unwrap()
                .map(|f| f.version)
        ),
    );
    log(
        "by version",
        format!(
            "{:?}",
            s.by_version(g, "targets", 1).unwrap().map(|f| f.sha256)
        ),
    );
    let feed = |gun: Option<&str>, id: i64, n: i64| {
        s.changes(gun, id, n)
            .unwrap()
            .iter()
            .map(|c| format!("{}/{}/{}/{}", c.gun, c.version, c.category, c.sha256.len()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    log("feed all", feed(None, 0, 100));
    log("feed gun", feed(Some(g), 0, 100));
    log("feed from the end", feed(None, -1, -2));
    let ids: Vec<i64> = s
        .changes(None, 0, 100)
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    log("feed after the 2nd", feed(None, ids[1], 2));
    log("feed before the 4th", feed(None, ids[3], -2));
    log("guns", format!("{:?}", s.guns().unwrap()));
    // Delete, then the same GUN again from version 1 (tombstones must not block it).
    log("delete", format!("{:?}", s.delete(g).unwrap()));
    log("delete again", format!("{:?}", s.delete(g).unwrap()));
    log(
        "latest after delete",
        format!("{:?}", s.latest(g, "root").unwrap().map(|f| f.version)),
    );
    log(
        "recreate",
        format!(
            "{:?}",
            s.update_many(
                g,
                &[file("root", 1, "new"), file("timestamp", 1, "new")],
                &[]
            )
            .map(|_| ())
        ),
    );
    log("feed tail", feed(Some(g), -1, -3));
    // The outbox.
    s.enqueue(g, &[job("v3"), job("v4")]).unwrap();
    log(
        "has job v3",
        format!("{}", s.has_job(g, &job("v3")).unwrap()),
    );
    log(
        "has job v9",
        format!("{}", s.has_job(g, &job("v9")).unwrap()),
    );
    let due = s.due_jobs(10).unwrap();
    log(
        "due",
        due.iter()
            .map(|j| format!("{}:{}", j.tag, j.state))
            .collect::<Vec<_>>()
            .join(","),
    );
    s.finish_job(due[0].id, Ok(()), Duration::from_secs(1), false)
        .unwrap();
    s.finish_job(
        due[1].id,
        Err("registry down".into()),
        Duration::from_secs(3600),
        false,
    )
    .unwrap();
    s.finish_job(
        due[2].id,
        Err("refused".into()),
        Duration::from_secs(1),
        true,
    )
    .unwrap();
    log("due after", format!("{}", s.due_jobs(10).unwrap().len()));
    let mut states = s.job_states().unwrap();
    states.sort();
    log("states", format!("{states:?}"));
    log("requeue", format!("{}", s.requeue("example.com/").unwrap()));
    log("drop", format!("{}", s.drop_job(due[1].id).unwrap()));
    log("drop again", format!("{}", s.drop_job(due[1].id).unwrap()));
    log(
        "jobs",
        s.jobs_for(g)
            .unwrap()
            .iter()
            .map(|j| {
                format!(
                    "{}:{}:{}:{:?}:{}",
                    j.tag, j.state, j.attempts, j.last_error, j.signers
                )
            })
            .collect::<Vec<_>>()
            .join(","),
    );
    log(
        "health",
        format!("{:?}", s.check_health().map_err(|e| e.to_string())),
    );
    out
}

#[test]
fn postgres_store_answers_as_the_sqlite_store_does() {
    init();
    let db = PgDb::new("conf");
    let pg = PgStore::open(&db.url()).expect("PostgreSQL store");
    let sqlite = SqliteStore::in_memory().unwrap();
    let a = scenario(&sqlite);
    let b = scenario(&pg);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "SQLite and PostgreSQL disagree");
    }
    assert_eq!(a.len(), b.len());
    assert!(a.iter().any(|l| l == "stale snapshot: true"), "{a:?}");
    assert!(
        a.iter().any(|l| l == "targets v2 after refusal: None"),
        "{a:?}"
    );
    assert!(a.iter().any(|l| l == "recreate: Ok(())"), "{a:?}");
    drop(pg);
    // The tombstones are kept, beside notary's own tables.
    let out = run_ok(
        "psql",
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &db.name, "-tAc"])
            .arg("SELECT COUNT(*) FROM tuf_files_deleted WHERE deleted_at IS NOT NULL"),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "7");
}

/// The version in `GET /v2/<gun>/_trust/tuf/timestamp.json` of the server at `url`.
fn timestamp_version(url: &str, ca: &Path, gun: &str) -> i64 {
    let (code, body) = https_get(&format!("{url}/v2/{gun}/_trust/tuf/timestamp.json"), ca);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["signed"]["version"].as_i64().unwrap()
}

#[test]
fn two_replicas_share_one_database() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = PgDb::new("replicas");
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let ca = certs.join("root-ca.crt");
    let signer_port = free_port();
    let sc = write_config(dir, signer_port, "sqlite3");
    let mut signer = start_ours("trustbridge-signer", &sc, &certs, signer_port);
    let (pa, pb) = (free_port(), free_port());
    write_config_file(&dir.join("a.json"), pa, signer_port, &db.storage(), "");
    write_config_file(&dir.join("b.json"), pb, signer_port, &db.storage(), "");
    let _a = start_server(
        "replica-a",
        dir,
        &dir.join("a.json"),
        pa,
        &mut [&mut signer],
    );
    let _b = start_server(
        "replica-b",
        dir,
        &dir.join("b.json"),
        pb,
        &mut [&mut signer],
    );
    let (a, b) = (
        format!("https://127.0.0.1:{pa}"),
        format!("https://127.0.0.1:{pb}"),
    );
    let gun = "example.com/replicated";
    let trust = dir.join("trust");

    // Written through A, read through B by a fresh client.
    notary(&a, &ca, &trust, &["init", gun, "-p"]);
    notary(
        &a,
        &ca,
        &trust,
        &[
            "addhash",
            gun,
            "v1",
            "10",
            "--sha256",
            &"11".repeat(32),
            "-p",
        ],
    );
    assert_eq!(timestamp_version(&a, &ca, gun), 2);
    let list = notary(&b, &ca, &dir.join("fresh-b"), &["list", gun]);
    assert!(list.contains("v1"), "{list}");

    // Written through B: A serves it at once, though A had the repository in memory.
    notary(
        &b,
        &ca,
        &trust,
        &[
            "addhash",
            gun,
            "v2",
            "10",
            "--sha256",
            &"22".repeat(32),
            "-p",
        ],
    );
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
    notary(
        &b,
        &ca,
        &trust,
        &[
            "addhash",
            gun,
            "v3",
            "10",
            "--sha256",
            &"33".repeat(32),
            "-p",
        ],
    );
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
fn takes_over_a_notary_server_database_and_back() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
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
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let ca = certs.join("root-ca.crt");
    let signer_port = free_port();
    let _signer = go_signer(dir, signer_port, r#"{"backend":"memory"}"#);
    let storage = db.storage();
    let gun = "example.com/moved";
    let trust = dir.join("trust");

    // notary-server writes the repository.
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let mut go = go_server_with(dir, port, signer_port, &storage, "");
    notary(&url, &ca, &trust, &["init", gun, "-p"]);
    notary(
        &url,
        &ca,
        &trust,
        &[
            "addhash",
            gun,
            "v1",
            "10",
            "--sha256",
            &"11".repeat(32),
            "-p",
        ],
    );
    go.stop();

    // trustbridge-server on the same database and signer serves it and takes writes: the
    // timestamp key stayed in the signer.
    write_config_file(&dir.join("tb.json"), port, signer_port, &storage, "");
    let mut ours = start_server(
        "trustbridge-server",
        dir,
        &dir.join("tb.json"),
        port,
        &mut [],
    );
    let list = notary(&url, &ca, &dir.join("fresh1"), &["list", gun]);
    assert!(list.contains("v1"), "{list}");
    notary(
        &url,
        &ca,
        &trust,
        &[
            "addhash",
            gun,
            "v2",
            "10",
            "--sha256",
            &"22".repeat(32),
            "-p",
        ],
    );
    ours.stop();

    // And back: notary-server reads what trustbridge wrote.
    let _go = go_server_with(dir, port, signer_port, &storage, "");
    let list = notary(&url, &ca, &dir.join("fresh2"), &["list", gun]);
    assert!(list.contains("v1") && list.contains("v2"), "{list}");

    // Side by side on one database: trustbridge-server (holding the repository in memory)
    // serves what notary-server writes next, within a couple of seconds.
    let tport = free_port();
    let turl = format!("https://127.0.0.1:{tport}");
    write_config_file(&dir.join("tb2.json"), tport, signer_port, &storage, "");
    let _ours2 = start_server(
        "trustbridge-server-2",
        dir,
        &dir.join("tb2.json"),
        tport,
        &mut [],
    );
    let before = timestamp_version(&turl, &ca, gun);
    notary(
        &url,
        &ca,
        &trust,
        &[
            "addhash",
            gun,
            "v3",
            "10",
            "--sha256",
            &"33".repeat(32),
            "-p",
        ],
    );
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
fn one_replica_at_a_time_runs_the_bridge_and_another_takes_over() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = PgDb::new("lease");
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
    let bridge = format!(r#","trustbridge":{{"bridge":{{"key_id":"{key_id}"}}}}"#);
    let (pa, pb) = (free_port(), free_port());
    write_config_file(&dir.join("a.json"), pa, signer_port, &db.storage(), &bridge);
    write_config_file(&dir.join("b.json"), pb, signer_port, &db.storage(), &bridge);
    let mut ra = start_server(
        "replica-a",
        dir,
        &dir.join("a.json"),
        pa,
        &mut [&mut signer],
    );
    let _rb = start_server(
        "replica-b",
        dir,
        &dir.join("b.json"),
        pb,
        &mut [&mut signer],
    );
    let (a, b) = (
        format!("https://127.0.0.1:{pa}"),
        format!("https://127.0.0.1:{pb}"),
    );
    let gun = format!("127.0.0.1:{rport}/team/app");
    let trust = dir.join("trust");
    notary(&a, &ca, &trust, &["init", &gun, "-p"]);
    for i in 1..=6u8 {
        let url = if i % 2 == 0 { &a } else { &b };
        let sha = format!("{i:02x}").repeat(32);
        notary(
            url,
            &ca,
            &trust,
            &[
                "addhash",
                &gun,
                &format!("v{i}"),
                "10",
                "--sha256",
                &sha,
                "-p",
            ],
        );
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
    notary(
        survivor,
        &ca,
        &trust,
        &[
            "addhash",
            &gun,
            "v7",
            "10",
            "--sha256",
            &"77".repeat(32),
            "-p",
        ],
    );
    all_mirrored(survivor, &ca, &gun, 7);
    assert_eq!(mirrored_here(survivor, &ca), 1);
}

/// How many of `db`'s sessions are on TLS, and how many in all (pg_stat_ssl).
fn tls_sessions(db: &str) -> (u32, u32) {
    let out = run_ok(
        "psql",
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc"])
            .arg(format!(
                "SELECT COUNT(*) FILTER (WHERE s.ssl), COUNT(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = '{db}'"
            )),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (a, b) = text.trim().split_once('|').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

#[test]
fn tls_to_postgres_is_verified_against_sslrootcert() {
    init();
    // The machine's PostgreSQL serves TLS with Debian's self-signed certificate for localhost.
    let snakeoil = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    assert!(
        Path::new(snakeoil).is_file(),
        "{snakeoil} is missing: PostgreSQL's TLS certificate (Debian's ssl-cert package)"
    );
    let db = PgDb::new("tls");
    let url = |root: &str| {
        format!(
            "postgres://postgres@localhost:5432/{}?sslmode=verify-full&sslrootcert={root}",
            db.name
        )
    };
    let store = PgStore::open(&url(snakeoil)).expect("TLS to PostgreSQL");
    store
        .update_many("example.com/tls", &[file("root", 1, "r")], &[])
        .unwrap();
    let (tls, all) = tls_sessions(&db.name);
    assert!(tls >= 1 && tls == all, "{tls} of {all} sessions on TLS");
    drop(store);

    // Another CA: the database's certificate is refused, nothing is written.
    let tmp = tempfile::tempdir().unwrap();
    trustbridge_certs::generate(30)
        .unwrap()
        .write(tmp.path())
        .unwrap();
    let other = tmp.path().join("root-ca.crt");
    let e = PgStore::open(&url(other.to_str().unwrap()))
        .err()
        .expect("an unknown CA must be refused")
        .to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    // Without a root, the config names the fix.
    let e = PgStore::open(&format!(
        "postgres://postgres@localhost:5432/{}?sslmode=require",
        db.name
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("add sslrootcert="), "{e}");
}
