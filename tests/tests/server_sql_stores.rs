//! The PostgreSQL and MySQL/MariaDB stores themselves (the machine's PostgreSQL and MariaDB,
//! one fresh database per test, dropped afterwards): the same answers as the SQLite store,
//! call for call; TLS to PostgreSQL checked against `sslrootcert`. Replicas and notary-server
//! interop: server_replicas.rs.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use trustbridge_e2e::mysql::{MyDb, PrivateMaria};
use trustbridge_e2e::pg::PgDb;
use trustbridge_e2e::{init, run_ok};
use trustbridge_server::storage::mysql::MyStore;
use trustbridge_server::storage::postgres::PgStore;
use trustbridge_server::storage::sqlite::SqliteStore;
use trustbridge_server::storage::{Action, Finish, MetaStore, NewJob, Update};

fn file(role: &str, version: i64, body: &str) -> Update {
    Update {
        role: role.into(),
        version,
        data: Arc::from(format!(r#"{{"{role}":{version},"b":"{body}"}}"#).into_bytes()),
    }
}

fn job(tag: &str) -> NewJob {
    NewJob {
        action: Action::Sign,
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
        format!("{}", r.as_ref().is_err_and(|e| e.is_conflict())),
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
        format!("{}", r.as_ref().is_err_and(|e| e.is_conflict())),
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
    log("delete", format!("{:?}", s.delete(g, &[]).unwrap()));
    log("delete again", format!("{:?}", s.delete(g, &[]).unwrap()));
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
    s.finish_job(due[0].id, Finish::Mirrored).unwrap();
    s.finish_job(
        due[1].id,
        Finish::Retry("registry down".into(), Duration::from_secs(3600)),
    )
    .unwrap();
    s.finish_job(due[2].id, Finish::Dead("refused".into()))
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
    control_room(s, &mut log);
    log(
        "health",
        format!("{:?}", s.check_health().map_err(|e| e.to_string())),
    );
    out
}

/// The control room's tables through the trait: trust, summaries and pages, totals, expiry,
/// usage, the read-only switch.
fn control_room(s: &dyn MetaStore, log: &mut dyn FnMut(&str, String)) {
    use time::OffsetDateTime;
    use trustbridge_server::storage::migration::PageQuery;
    use trustbridge_server::storage::{TrustState, Trusted};
    let t0 = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    let day = |d: i64| t0 + time::Duration::days(d);
    for (i, gun) in ["cr.example/a", "cr.example/b", "cr.example/c", "other/x"]
        .iter()
        .enumerate()
    {
        s.update_many(gun, &[file("root", 1, gun)], &[]).unwrap();
        let mut trust: TrustState = (0..=i)
            .map(|k| Trusted {
                tag: format!("v{k}"),
                digest_hex: "cd".repeat(32),
                role: "targets".into(),
                signers: "k1,k2".into(),
                expires: Some(day(10 * i as i64)),
            })
            .collect();
        trust.roles = vec![
            ("root".into(), day(100)),
            ("targets".into(), day(10 * i as i64)),
        ];
        s.set_trust(gun, &trust).unwrap();
    }
    s.enqueue(
        "cr.example/b",
        &[NewJob {
            tag: "v0".into(),
            digest_hex: "cd".repeat(32),
            ..job("v0")
        }],
    )
    .unwrap();
    // What the summarizer does for marks of jobs and checks (trust is set above).
    let settle = || {
        for d in s.dirty(100).unwrap() {
            s.refresh_summary(&d.gun).unwrap();
            s.settle(&d).unwrap();
        }
        format!("{:?}", s.dirty(100).unwrap())
    };
    log("dirty after settling", settle());
    // example.com/app and other/app (no trust rows) are marked; the four above are not.
    log("unadopted", format!("{}", s.mark_unadopted().unwrap()));
    log("dirty to adopt", format!("{:?}", s.dirty(100).unwrap()));
    settle();
    let summary = |g: &str| format!("{:?}", s.summary(g).unwrap());
    log("summary a", summary("cr.example/a"));
    log("summary b", summary("cr.example/b"));
    log("summary none", summary("nowhere/x"));
    let page = |prefix: &str, after: &str, limit: i64, ready: Option<bool>| {
        s.summaries(&PageQuery {
            prefix: prefix.into(),
            after: after.into(),
            limit,
            ready,
        })
        .unwrap()
        .iter()
        .map(|g| g.gun.clone())
        .collect::<Vec<_>>()
        .join(",")
    };
    log("page all", page("", "", 100, None));
    log("page prefix", page("cr.example/", "", 2, None));
    log("page after", page("cr.example/", "cr.example/b", 2, None));
    log("page not ready", page("", "", 100, Some(false)));
    log("page ready", page("", "", 100, Some(true)));
    log(
        "trust b",
        format!("{:?}", s.trust_of("cr.example/b").unwrap()),
    );
    log(
        "totals",
        format!("{:?}", s.totals(day(5), day(15), 0, 0).unwrap()),
    );
    log(
        "expiring",
        format!("{:?}", s.expiring("cr.example/", day(15), 10).unwrap()),
    );
    log(
        "roles of b",
        format!("{:?}", s.roles_of("cr.example/b").unwrap()),
    );
    use trustbridge_server::storage::migration::Usage;
    let u = |gun: &str, client: &str, reads: i64, at: i64| Usage {
        gun: gun.into(),
        day: 20_000 + at,
        client: client.into(),
        version: "28.2.2".into(),
        reads,
        last_seen: day(at),
    };
    s.add_usage(&[
        u("cr.example/a", "docker", 3, 0),
        u("cr.example/a", "go", 1, 1),
    ])
    .unwrap();
    s.add_usage(&[
        u("cr.example/a", "docker", 2, 0),
        u("cr.example/c", "docker", 1, 2),
    ])
    .unwrap();
    log(
        "usage prefix",
        format!("{:?}", s.usage("cr.example/", false, 0, 10).unwrap()),
    );
    log(
        "usage exact",
        format!("{:?}", s.usage("cr.example/a", true, 20_001, 10).unwrap()),
    );
    log(
        "read since",
        format!("{:?}", s.totals(day(5), day(15), 20_001, 20_000).unwrap()),
    );
    log(
        "read-only on",
        format!("{:?}", s.set_read_only("cr.example/a", true).unwrap()),
    );
    log(
        "read-only again",
        format!("{:?}", s.set_read_only("cr.example/a", true).unwrap()),
    );
    log(
        "read-only",
        format!("{:?}", s.read_only_since("cr.example/a").unwrap().is_some()),
    );
    log(
        "read-only off",
        format!("{:?}", s.set_read_only("cr.example/a", false).unwrap()),
    );
    log(
        "deleted",
        format!("{:?}", s.delete("cr.example/c", &[]).unwrap()),
    );
    log("summary after delete", summary("cr.example/c"));
    log("page after delete", page("cr.example/", "", 10, None));
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
    assert!(a.iter().any(|l| l == "unadopted: 2"), "{a:?}");
    for l in a
        .iter()
        .filter(|l| l.starts_with("page") || l.starts_with("read"))
    {
        eprintln!("{l}");
    }
    drop(pg);
    // The tombstones are kept, beside notary's own tables.
    let out = run_ok(
        "psql",
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &db.name, "-tAc"])
            .arg("SELECT COUNT(*) FROM tuf_files_deleted WHERE deleted_at IS NOT NULL"),
    );
    // Seven of example.com/app's files and the one of the control room's deleted GUN.
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "8");
}

#[test]
fn mysql_store_answers_as_the_sqlite_store_does() {
    init();
    let db = MyDb::new("conf");
    let my = MyStore::open(&db.dsn()).expect("MySQL store");
    let sqlite = SqliteStore::in_memory().unwrap();
    let a = scenario(&sqlite);
    let b = scenario(&my);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "SQLite and MySQL disagree");
    }
    assert_eq!(a.len(), b.len());
    drop(my);
    // The tombstones are kept, beside notary's own tables, which are notary's MySQL schema.
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM tuf_files_deleted WHERE deleted_at IS NOT NULL")
            .trim(),
        "8"
    );
    let columns = db.sql(
        "SELECT GROUP_CONCAT(column_name ORDER BY ordinal_position) FROM information_schema.columns \
         WHERE table_schema = DATABASE() AND table_name = 'tuf_files'",
    );
    assert_eq!(
        columns.trim(),
        "id,created_at,updated_at,deleted_at,gun,role,version,data,sha256"
    );
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

/// TLS to MySQL/MariaDB: with `tls=true&tls-ca=`, the server's chain and address are checked
/// against that CA; a user the database lets in only over TLS connects; another CA, or no TLS,
/// does not.
#[test]
fn tls_to_mariadb_is_verified_against_tls_ca() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let (certs, other) = (tmp.path().join("certs"), tmp.path().join("other"));
    for d in [&certs, &other] {
        trustbridge_certs::generate(30).unwrap().write(d).unwrap();
    }
    let db = PrivateMaria::start_tls(&certs.join("server.crt"), &certs.join("server.key"));
    db.sql("CREATE DATABASE notary; CREATE USER 'tb'@'127.0.0.1' REQUIRE SSL; GRANT ALL ON notary.* TO 'tb'@'127.0.0.1'");
    let dsn = |q: &str| format!("tb@tcp(127.0.0.1:{})/notary?parseTime=True{q}", db.port);
    let ca = |d: &Path| format!("&tls=true&tls-ca={}", d.join("root-ca.crt").display());
    let store = MyStore::open(&dsn(&ca(&certs))).expect("TLS to MariaDB");
    store
        .update_many("example.com/tls", &[file("root", 1, "r")], &[])
        .unwrap();
    assert_eq!(
        store
            .latest("example.com/tls", "root")
            .unwrap()
            .unwrap()
            .version,
        1
    );
    drop(store);
    let e = MyStore::open(&dsn(&ca(&other)))
        .err()
        .expect("another CA is refused");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    let e = MyStore::open(&dsn(""))
        .err()
        .expect("no TLS is refused by the database");
    assert!(e.to_string().contains("Access denied"), "{e}");
}
