//! The repository cache within its budget (issue: hardening; `trustbridge.cache.max_mib`): with
//! more repositories than fit, the bytes it holds never exceed the budget (`/metrics`), a
//! repository evicted from memory is served from the store byte for byte as it was published,
//! and asking for repositories that do not exist caches nothing.

use trustbridge_e2e::bridge::{Stack, post, server_key, start_bridge_with};
use trustbridge_e2e::{https_get, init};
use trustbridge_tuf::metadata::FileMeta;
use trustbridge_tuf::{GoTime, KeyType, PrivateKey, Root, Signed, Targets, x509};

const GUNS: usize = 60;

/// (`trustbridge_cache_bytes`, `_cache_budget_bytes`, `_cache_views`) now.
fn cache_metrics(st: &Stack) -> (u64, u64, u64) {
    let (_, body) = https_get(&format!("{}/metrics", st.url), &st.ca);
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
fn publish(st: &Stack, gun: &str, n: usize) -> Vec<u8> {
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
        version: 1,
    };
    let targets = Signed::sign(targets, &[&targets_key])
        .unwrap()
        .raw()
        .to_vec();
    let (code, body) = post(
        st,
        gun,
        &[("root", root.raw().to_vec()), ("targets", targets.clone())],
    );
    assert_eq!(code, 200, "{gun}: {body}");
    targets
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
