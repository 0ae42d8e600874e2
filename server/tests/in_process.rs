//! The in-process tier: validation, repository, storage and config logic checked in seconds
//! with `cargo test -p trustbridge-server`, with no root, no peers and no ../shared. A
//! repository's metadata is made here with the core's own signing code and stored through the
//! import path (nothing in it needs the signer); the e2e tier (tests/) covers the processes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use trustbridge_server::config::{Config, Storage};
use trustbridge_server::error::{Error, WireCode};
use trustbridge_server::metrics::Metrics;
use trustbridge_server::repo::{CacheSettings, Repo};
use trustbridge_server::routes::{Cache, Route, route};
use trustbridge_server::signer_link::SignerLink;
use trustbridge_server::storage::{self, Backend, MetaStore, Update, sqlite::SqliteStore};
use trustbridge_tuf::metadata::{Delegations, FileMeta, expiry};
use trustbridge_tuf::{
    GoTime, KeyType, PrivateKey, Root, Signed, Snapshot, Targets, Timestamp, x509,
};

fn config(dir: &Path, extra: serde_json::Value) -> Result<Config, String> {
    let mut base = json!({
        "server": {"http_addr": "127.0.0.1:4443"},
        "trust_service": {"type": "remote", "hostname": "notary-signer", "port": "7899",
            "tls_ca_file": "certs/root-ca.crt"},
        "storage": {"backend": "sqlite3", "db_url": "data/server.db"},
    });
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    Config::from_json(&base, dir).map_err(|e| e.to_string())
}

#[test]
fn config_reads_notary_keys_into_each_modules_settings_with_their_defaults() {
    let dir = Path::new("/etc/notary");
    let c = config(dir, json!({})).unwrap();
    assert_eq!(c.storage, Storage::Sqlite(dir.join("data/server.db")));
    assert_eq!(c.trust.ca_file, dir.join("certs/root-ca.crt"));
    assert_eq!(c.trust.port, 7899);
    assert_eq!(c.trust.key_algorithm, "ecdsa");
    assert_eq!((c.caching.current, c.caching.consistent), (300, 2_592_000));
    assert!(c.bridge.is_none() && c.auth.is_none() && c.token_issuer.is_none());

    let c = config(
        dir,
        json!({"trustbridge": {"bridge": {"key_id": "abc", "reconcile_seconds": 0}},
               "caching": {"max_age": {"current_metadata": 0}}}),
    )
    .unwrap();
    let b = c.bridge.unwrap();
    assert_eq!(b.key_id, "abc");
    assert_eq!(b.max_attempts, 50, "the bridge's own default");
    assert_eq!(b.reconcile_every, None, "0 turns the reconciler off");
    assert_eq!(c.caching.current, 0);

    // Further signers beside notary's hostname/port, as a list or one comma-separated string.
    let trust = |endpoints: serde_json::Value| {
        config(
            dir,
            json!({"trust_service": {"hostname": "signer-a", "port": 7899, "tls_ca_file": "ca.crt",
                   "endpoints": endpoints}}),
        )
    };
    let c = trust(json!(["signer-b:7899", "[::1]:7900"])).unwrap();
    assert_eq!(
        c.trust.endpoints(),
        [
            ("signer-a".to_string(), 7899),
            ("signer-b".to_string(), 7899),
            ("::1".to_string(), 7900)
        ]
    );
    let c = trust(json!("signer-b:1, signer-a:7899")).unwrap();
    assert_eq!(c.trust.endpoints().len(), 2, "the primary is listed once");
    assert!(
        trust(json!(["signer-b"]))
            .unwrap_err()
            .contains("trust_service.endpoints")
    );

    // Each bad value is named by its key.
    for (extra, key) in [
        (
            json!({"trust_service": {"hostname": "h", "port": "1", "tls_ca_file": "c", "key_algorithm": "dsa"}}),
            "trust_service.key_algorithm",
        ),
        (
            json!({"caching": {"max_age": {"consistent_metadata": 40_000_000}}}),
            "caching.max_age.consistent_metadata",
        ),
        (
            json!({"storage": {"backend": "rethinkdb"}}),
            "storage.backend",
        ),
        (json!({"storage": {"backend": "mysql"}}), "storage.db_url"),
        (
            json!({"storage": {"backend": "mysql", "db_url": "u@tcp(db:3306)/n?tls=skip-verify"}}),
            "storage.db_url",
        ),
        (
            json!({"trustbridge": {"bridge": {"key_id": "k", "allow_loopback": 3}}}),
            "trustbridge.bridge.allow_loopback",
        ),
        (json!({"trustbridge": {"bridge": []}}), "trustbridge.bridge"),
        (
            json!({"server": {"http_addr": ":1", "tls_cert_file": "a"}}),
            "server.tls_cert_file",
        ),
    ] {
        let e = config(dir, extra.clone()).unwrap_err();
        assert!(e.contains(key), "{extra}: {e}");
    }
}

#[test]
fn every_route_says_what_access_it_needs_and_how_it_caches() {
    let get = |p: &str| route(&http::Method::GET, p);
    let current = get("/v2/docker.io/library/app/_trust/tuf/targets.json");
    assert_eq!(current.cache(), Cache::Current);
    let access = current.access();
    assert_eq!(access.len(), 1);
    assert_eq!(
        (access[0].typ, access[0].name.as_str(), access[0].action),
        ("repository", "docker.io/library/app", "pull")
    );
    assert_eq!(
        get("/v2/docker.io/library/app/_trust/tuf/3.root.json").cache(),
        Cache::Consistent
    );
    let update = route(&http::Method::POST, "/v2/docker.io/library/app/_trust/tuf/");
    assert!(matches!(update, Route::Update { .. }));
    assert_eq!(update.cache(), Cache::None);
    let actions: Vec<_> = update.access().iter().map(|a| a.action).collect();
    assert_eq!(actions, ["push", "pull"]);
    assert!(get("/_notary_server/health").access().is_empty());
    assert_eq!(get("/v2/_trust/changefeed").access()[0].typ, "registry");
}

#[test]
fn a_stale_write_is_a_typed_conflict_answered_as_notarys_version_and_writes_nothing() {
    let store = SqliteStore::in_memory().unwrap();
    let file = |role: &str, version, data: &str| Update {
        role: role.into(),
        version,
        data: Arc::from(data.as_bytes()),
    };
    store
        .update_many("g", &[file("targets", 2, "t2")], &[])
        .unwrap();
    let e = store
        .update_many(
            "g",
            &[file("root", 1, "r1"), file("targets", 2, "again")],
            &[],
        )
        .unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(
        store.latest("g", "root").unwrap().is_none(),
        "all or nothing"
    );
    let e = Error::from(e);
    assert!(e.is_old_version());
    assert_eq!(e.for_update().code, WireCode::Version);
    // The offline commands refuse a store that would hold nothing for them.
    assert!(storage::open(&Backend::Memory, true).is_err());
    assert!(storage::open(&Backend::Memory, false).is_ok());
}

/// A complete repository of `gun` signed by keys made here: root (with its certificate),
/// targets with `n` entries, snapshot and timestamp, every one at version 1.
fn repository(gun: &str, n: usize) -> Vec<Update> {
    let key = || PrivateKey::generate(KeyType::Ecdsa).unwrap();
    let (root_key, targets_key, snapshot_key, timestamp_key) = (key(), key(), key(), key());
    let cert = x509::generate_root_certificate(gun, &root_key, expiry::ROOT_YEARS).unwrap();
    let root = Signed::sign_with_ids(
        Root::initial([
            ("root", cert.clone()),
            ("targets", targets_key.public_key().clone()),
            ("snapshot", snapshot_key.public_key().clone()),
            ("timestamp", timestamp_key.public_key().clone()),
        ]),
        vec![(cert.id(), &root_key)],
    )
    .unwrap();
    let targets = Signed::sign(
        Targets {
            type_: "Targets".into(),
            delegations: Delegations::default(),
            expires: GoTime::now().plus_years(expiry::TARGETS_YEARS),
            targets: (0..n)
                .map(|i| {
                    (
                        format!("tag{i}"),
                        FileMeta::from_bytes(format!("{gun} {i}").as_bytes()),
                    )
                })
                .collect(),
            version: 1,
        },
        &[&targets_key],
    )
    .unwrap();
    let meta = |pairs: &[(&str, &[u8])]| -> BTreeMap<String, FileMeta> {
        pairs
            .iter()
            .map(|(r, b)| (r.to_string(), FileMeta::from_bytes(b)))
            .collect()
    };
    let snapshot = Signed::sign(
        Snapshot {
            type_: "Snapshot".into(),
            expires: GoTime::now().plus_years(expiry::SNAPSHOT_YEARS),
            meta: meta(&[("root", root.raw()), ("targets", targets.raw())]),
            version: 1,
        },
        &[&snapshot_key],
    )
    .unwrap();
    let timestamp = Signed::sign(
        Timestamp {
            type_: "Timestamp".into(),
            expires: GoTime::now_plus(expiry::TIMESTAMP),
            meta: meta(&[("snapshot", snapshot.raw())]),
            version: 1,
        },
        &[&timestamp_key],
    )
    .unwrap();
    [
        ("root", root.raw()),
        ("targets", targets.raw()),
        ("snapshot", snapshot.raw()),
        ("timestamp", timestamp.raw()),
    ]
    .into_iter()
    .map(|(role, data)| Update {
        role: role.into(),
        version: 1,
        data: Arc::from(data),
    })
    .collect()
}

/// A repository service on an in-memory store; the signer link is never dialled here.
fn repo(dir: &Path, max_mib: u64) -> Repo {
    trustbridge_certs::generate(1)
        .unwrap()
        .write(&dir.join("certs"))
        .unwrap();
    let c = config(dir, json!({})).unwrap();
    let signer = SignerLink::new(&c.trust, Metrics::new()).unwrap();
    let store = storage::open(&Backend::Memory, false).unwrap();
    Repo::new(store, signer, c.renewal, CacheSettings { max_mib })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_its_budget_and_an_evicted_repository_is_served_byte_for_byte() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo(tmp.path(), 1);
    // About 40 KiB of targets each: 60 repositories are about twice the 1 MiB budget.
    let mut stored = Vec::new();
    for i in 0..60 {
        let gun = format!("example.com/team/app{i}");
        let files = repository(&gun, 400);
        assert_eq!(repo.import(&gun, files.clone()).await.unwrap(), 4);
        stored.push((gun, files));
    }
    for (gun, files) in &stored {
        for f in files {
            let got = repo.current(gun, &f.role).await.unwrap();
            assert_eq!(&got.data[..], &f.data[..], "{gun} {}", f.role);
        }
        let (held, budget, _, _) = repo.cache_usage();
        assert!(
            held <= budget,
            "{held} bytes cached over a {budget}-byte budget"
        );
    }
    let (_, _, views, _) = repo.cache_usage();
    assert!(views < stored.len(), "{views} views: nothing was evicted");
    // The first repositories were evicted long ago: read again from the store, unchanged.
    let (gun, files) = &stored[0];
    for f in files {
        let got = repo.current(gun, &f.role).await.unwrap();
        assert_eq!(&got.data[..], &f.data[..]);
        let by_version = repo.by_version(gun, &f.role, 1).await.unwrap();
        assert_eq!(&by_version.data[..], &f.data[..]);
    }
    // Imported twice: refused as notary refuses an old version, nothing changed.
    let again = repo.import(gun, files.clone()).await.unwrap_err();
    assert!(again.is_old_version(), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_whose_history_does_not_verify_stores_nothing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo(tmp.path(), 16);
    let gun = "example.com/team/forged";
    let mut files = repository(gun, 3);
    // targets signed by a key the root never named.
    let other = repository(gun, 3);
    files[1] = other[1].clone();
    let e = repo.import(gun, files).await.unwrap_err();
    let what = e.to_string();
    assert_eq!(e.for_update().code, WireCode::InvalidUpdate, "{what}");
    assert!(matches!(
        repo.current(gun, "root").await,
        Err(Error::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_finds_due_repositories_by_index_and_schedules_the_unscheduled_once() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    trustbridge_certs::generate(1)
        .unwrap()
        .write(&dir.join("certs"))
        .unwrap();
    let db = dir.join("server.db");
    let sqlite = Arc::new(SqliteStore::open(&db).unwrap());
    let store: Arc<dyn MetaStore> = sqlite.clone();
    let c = config(dir, json!({})).unwrap();
    let signer = SignerLink::new(&c.trust, Metrics::new()).unwrap();
    let repo = Repo::new(store.clone(), signer, c.renewal, CacheSettings::default());
    let gun = "example.com/team/renewed";
    repo.import(gun, repository(gun, 1)).await.unwrap();

    // The timestamp expires in 14 days: due only for a cut-off past that.
    let day = 86_400_000_000_000i64;
    let now = storage::now_nanos();
    assert!(
        store
            .due_renewals(now + 13 * day, 0, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.due_renewals(now + 15 * day, 0, 10).unwrap(), [gun]);
    assert_eq!(
        store.due_renewals(0, now + 3 * 366 * day, 10).unwrap(),
        [gun],
        "the snapshot's expiry is kept too"
    );
    let plan = sqlite.due_renewals_plan().unwrap().join("\n");
    assert!(
        plan.contains("idx_renewals_timestamp") && plan.contains("idx_renewals_snapshot"),
        "{plan}"
    );

    // A store from before the schedule (or written by another server): scheduled by the first
    // sweep, from its files.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM renewals", [])
        .unwrap();
    assert_eq!(store.unscheduled(10).unwrap(), [gun]);
    assert!(
        store
            .due_renewals(now + 15 * day, 0, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(repo.sweep().await, (0, 0), "nothing is due yet");
    assert!(store.unscheduled(10).unwrap().is_empty());
    assert_eq!(store.due_renewals(now + 15 * day, 0, 10).unwrap(), [gun]);

    // A deleted repository has nothing left to renew.
    repo.delete(gun).await.unwrap();
    assert!(
        store
            .due_renewals(i64::MAX, i64::MAX, 10)
            .unwrap()
            .is_empty()
    );
}
