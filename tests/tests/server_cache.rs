//! The repository cache within its budget (issue: hardening; `trustbridge.cache.max_mib`): with
//! more repositories than fit, the bytes it holds never exceed the budget (`/metrics`), a
//! repository evicted from memory is served from the store byte for byte as it was published,
//! and asking for repositories that do not exist caches nothing.

use trustbridge_e2e::bridge::{post, server_key, start_bridge_with};
use trustbridge_e2e::server::{Stack, start_stack_with};
use trustbridge_e2e::{Endpoint, https_get, init, wait_gun};
use trustbridge_tuf::metadata::FileMeta;
use trustbridge_tuf::{GoTime, KeyType, PrivateKey, Root, Signed, Targets, x509};

const GUNS: usize = 60;

/// (`trustbridge_cache_bytes`, `_cache_budget_bytes`, `_cache_views`) now.
fn cache_metrics(st: &impl Endpoint) -> (u64, u64, u64) {
    let (_, body) = https_get(&format!("{}/metrics", st.url()), st.ca());
    let text = String::from_utf8_lossy(&body).into_owned();
    let read = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    (
        read("trustbridge_cache_bytes"),
        read("trustbridge_cache_budget_bytes"),
        read("trustbridge_cache_views"),
    )
}

/// A repository whose targets role lists `n` targets (about 120 bytes each).
fn publish(st: &impl Endpoint, gun: &str, n: usize) -> Vec<u8> {
    publish_keeping_key(st, gun, n).1
}

/// Version `version` of a targets role listing `n` targets, signed by `key`.
fn targets(key: &PrivateKey, n: usize, version: i64) -> Vec<u8> {
    let meta = |i: usize| FileMeta {
        custom: None,
        hashes: [("sha256".to_string(), vec![i as u8; 32])].into(),
        length: i as i64,
    };
    let targets = Targets {
        type_: "Targets".into(),
        delegations: Default::default(),
        expires: GoTime::now().plus_years(3),
        targets: (0..n).map(|i| (format!("tag-{i:05}"), meta(i))).collect(),
        version,
    };
    Signed::sign(targets, &[key]).unwrap().raw().to_vec()
}

/// [`publish`], giving back the targets key too (for later versions).
fn publish_keeping_key(st: &impl Endpoint, gun: &str, n: usize) -> (PrivateKey, Vec<u8>) {
    let targets_key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
    let root_key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
    let cert = x509::generate_root_certificate(gun, &root_key, 10).unwrap();
    let root = Root::initial([
        ("root", cert.clone()),
        ("targets", targets_key.public_key().clone()),
        ("snapshot", server_key(st, gun, "snapshot")),
        ("timestamp", server_key(st, gun, "timestamp")),
    ]);
    let root = Signed::sign_with_ids(root, vec![(cert.id(), &root_key)]).unwrap();
    let targets = targets(&targets_key, n, 1);
    let (code, body) = post(
        st,
        gun,
        &[("root", root.raw().to_vec()), ("targets", targets.clone())],
    );
    assert_eq!(code, 200, "{gun}: {body}");
    (targets_key, targets)
}

#[test]
fn the_cache_stays_within_its_budget_and_evicted_guns_are_served_as_published() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let st = start_bridge_with(tmp.path(), "", r#","cache":{"max_mib":1}"#);
    let mut published = Vec::new();
    for i in 0..GUNS {
        let gun = format!("example.com/cache/app{i}");
        // ~48 KiB of targets each: 60 repositories are about three times the budget.
        published.push((gun.clone(), publish(&st, &gun, 400)));
        if i % 10 == 9 {
            let (held, budget, _) = cache_metrics(&st);
            assert_eq!(budget, 1 << 20);
            assert!(
                held <= budget,
                "{held} bytes cached over a {budget}-byte budget"
            );
        }
    }
    // Read every repository twice, in order: the early ones were evicted long ago.
    for _ in 0..2 {
        for (gun, targets) in &published {
            let (code, body) = https_get(
                &format!("{}/v2/{gun}/_trust/tuf/targets.json", st.url),
                &st.ca,
            );
            assert_eq!(code, 200, "{gun}");
            assert_eq!(
                &body, targets,
                "{gun}: served bytes differ from the published ones"
            );
            let (code, _) = https_get(
                &format!("{}/v2/{gun}/_trust/tuf/timestamp.json", st.url),
                &st.ca,
            );
            assert_eq!(code, 200, "{gun}");
        }
        let (held, budget, views) = cache_metrics(&st);
        assert!(
            held <= budget,
            "{held} bytes cached over a {budget}-byte budget"
        );
        assert!(
            views < GUNS as u64,
            "{views} of {GUNS} repositories held: nothing was evicted"
        );
    }
    // GETs of names that do not exist leave nothing in memory.
    let (_, _, before) = cache_metrics(&st);
    for i in 0..200 {
        let (code, _) = https_get(
            &format!(
                "{}/v2/example.com/nothing/n{i}/_trust/tuf/timestamp.json",
                st.url
            ),
            &st.ca,
        );
        assert_eq!(code, 404);
    }
    let (_, _, after) = cache_metrics(&st);
    assert!(
        after <= before,
        "{before} views before 200 unknown GUNs were asked for, {after} after"
    );
}

/// A client that only polls timestamp.json (a `docker pull` whose trust data did not change)
/// costs the cache the timestamp alone, not the whole repository; the next publish and reads
/// of every role still see the whole repository.
#[test]
fn a_repository_polled_for_its_timestamp_is_held_small_and_still_takes_publishes() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let mut st = start_stack_with(tmp.path(), r#","trustbridge":{"cache":{"max_mib":1}}"#);
    let gun = "example.com/cache/polled";
    let get = |st: &Stack, file: &str| {
        let (code, body) = https_get(&format!("{}/v2/{gun}/_trust/tuf/{file}", st.url), &st.ca);
        assert_eq!(code, 200, "GET {file}");
        body
    };
    // ~48 KiB of targets.
    let (key, _) = publish_keeping_key(&st, gun, 400);
    let root = get(&st, "root.json");
    // The control room has summarised the publish (else the restarted server would read the
    // whole repository for it).
    wait_gun(&st, gun, "summarised", |v| v["summarizing"] == false);
    // A restarted server holds nothing; two polls of the timestamp.
    st.server.stop();
    st.start_server_again();
    let ts = get(&st, "timestamp.json");
    assert_eq!(get(&st, "timestamp.json"), ts);
    let (held, _, views) = cache_metrics(&st);
    assert_eq!(views, 1, "the polled repository is held");
    assert!(
        held < 4096,
        "{held} bytes held for a repository polled for its timestamp alone"
    );
    // The next publish is checked against the whole stored repository (its root and keys).
    let v2 = targets(&key, 401, 2);
    let (code, body) = post(&st, gun, &[("targets", v2.clone())]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(get(&st, "targets.json"), v2);
    assert_eq!(get(&st, "root.json"), root);
    let ts2: serde_json::Value = serde_json::from_slice(&get(&st, "timestamp.json")).unwrap();
    assert_eq!(ts2["signed"]["version"], 2);
    let snapshot = get(&st, "snapshot.json");
    assert_eq!(
        ts2["signed"]["meta"]["snapshot"],
        serde_json::to_value(FileMeta::from_bytes(&snapshot)).unwrap(),
        "the timestamp names the snapshot served"
    );
    let snapshot: serde_json::Value = serde_json::from_slice(&snapshot).unwrap();
    assert_eq!(
        snapshot["signed"]["meta"]["targets"]["length"],
        v2.len(),
        "the snapshot names the new targets"
    );
}

/// A publish made while another process holds the SQLite write lock (an offline command on
/// the same file) waits for the lock and lands, instead of failing with "database is
/// locked"; what is served then is the new version, not the view cached before.
#[test]
fn a_publish_waits_for_another_processs_write_lock() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let st = start_stack_with(tmp.path(), "");
    let gun = "example.com/cache/locked";
    let version = |st: &Stack| {
        let (code, body) = https_get(
            &format!("{}/v2/{gun}/_trust/tuf/timestamp.json", st.url),
            &st.ca,
        );
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["signed"]["version"].as_i64().unwrap()
    };
    let (key, _) = publish_keeping_key(&st, gun, 3);
    assert_eq!(version(&st), 1, "served from the cache from now on");
    // Another process takes the store's write lock for a second.
    let db = rusqlite::Connection::open(tmp.path().join("server.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(1));
        db.execute_batch("ROLLBACK").unwrap();
    });
    let started = std::time::Instant::now();
    let (code, body) = post(&st, gun, &[("targets", targets(&key, 4, 2))]);
    let waited = started.elapsed();
    release.join().unwrap();
    assert_eq!(code, 200, "a publish while the lock was held: {body}");
    assert!(
        waited.as_millis() >= 900,
        "answered after {waited:?}, before the lock was released"
    );
    assert_eq!(version(&st), 2, "the new timestamp is served");
}
