//! The real notary 0.7.0 client against trustbridge-server + trustbridge-signer: the whole
//! lifecycle a notary user runs (publish, remove, server-managed key rotations, targets and
//! root key rotation, a delegation with a target, witness, status, delete --remote), with a
//! second fresh client reading and verifying along the way.

use trustbridge_e2e::server::{notary, notary_with_input, start_stack};
use trustbridge_e2e::{https_get, init};
use trustbridge_tuf::{Root, Signed, Targets};

const GUN: &str = "127.0.0.1/e2e/lifecycle";

#[test]
fn notary_client_lifecycle() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let s = start_stack(tmp.path());
    let trust = tmp.path().join("trust");
    let n = |args: &[&str]| notary(&s.url, &s.ca, &trust, args);
    let fresh = |name: &str, args: &[&str]| notary(&s.url, &s.ca, &tmp.path().join(name), args);
    let get = |name: &str| https_get(&format!("{}/v2/{GUN}/_trust/tuf/{name}", s.url), &s.ca);
    let file = tmp.path().join("artefact.bin");
    std::fs::write(&file, b"payload").unwrap();
    let file = file.to_str().unwrap();

    n(&["init", GUN, "-p"]);
    n(&["add", GUN, "v1", file]);
    n(&["publish", GUN]);
    assert!(n(&["list", GUN]).contains("v1"));
    n(&["add", GUN, "v2", file]);
    n(&["publish", GUN]);
    n(&["remove", GUN, "v1"]);
    n(&["publish", GUN]);
    n(&["key", "rotate", GUN, "snapshot", "-r"]);
    n(&["key", "rotate", GUN, "timestamp", "-r"]);
    n(&["key", "rotate", GUN, "targets"]);
    n(&["add", GUN, "v3", file]);
    n(&["publish", GUN]);
    let list = fresh("fresh1", &["list", GUN]);
    assert!(
        list.contains("v2") && list.contains("v3") && !list.contains("v1"),
        "{list}"
    );

    // Root key rotation: root v2 (key rotations above) → v3 signed by old and new root keys.
    let before = Signed::<Root>::from_bytes("root", &get("root.json").1).unwrap();
    notary_with_input(
        &s.url,
        &s.ca,
        &trust,
        &["key", "rotate", GUN, "root"],
        "yes\n",
    );
    let after = Signed::<Root>::from_bytes("root", &get("root.json").1).unwrap();
    assert_eq!(after.signed.version, before.signed.version + 1);
    assert_ne!(
        after.signed.roles["root"].keyids,
        before.signed.roles["root"].keyids
    );

    // A delegation (x509 certificate, all paths) with a target in it.
    let (kf, cf) = trustbridge_e2e::server::delegation_cert(tmp.path(), "e2e-releases");
    n(&[
        "key",
        "import",
        kf.to_str().unwrap(),
        "--role",
        "targets/releases",
    ]);
    n(&[
        "delegation",
        "add",
        GUN,
        "targets/releases",
        cf.to_str().unwrap(),
        "--all-paths",
    ]);
    n(&["add", GUN, "rel1", file, "--roles", "targets/releases"]);
    n(&["publish", GUN]);
    let (code, body) = get("targets/releases.json");
    assert_eq!(code, 200);
    let rel = Signed::<Targets>::from_bytes("targets/releases", &body).unwrap();
    assert!(rel.signed.targets.contains_key("rel1"));
    let v = rel.signed.version;
    n(&["witness", GUN, "targets/releases", "-p"]);
    let rel =
        Signed::<Targets>::from_bytes("targets/releases", &get("targets/releases.json").1).unwrap();
    assert_eq!(
        rel.signed.version,
        v + 1,
        "witness re-signed the delegation"
    );
    let status = n(&["status", GUN]);
    assert!(status.contains("No unpublished changes"), "{status}");

    let list = fresh("fresh2", &["list", GUN, "--roles", "targets/releases"]);
    assert!(list.contains("rel1"), "{list}");
    let lookup = fresh("fresh2", &["lookup", GUN, "v3"]);
    assert!(lookup.contains("v3"), "{lookup}");

    // delete --remote: metadata gone, a deletion in the changefeed.
    n(&["delete", GUN, "--remote"]);
    assert_eq!(get("root.json").0, 404);
    let (code, feed) = https_get(
        &format!("{}/v2/{GUN}/_trust/changefeed?records=0", s.url),
        &s.ca,
    );
    assert_eq!(code, 200);
    let feed: serde_json::Value = serde_json::from_slice(&feed).unwrap();
    let records = feed["records"].as_array().unwrap();
    assert_eq!(records.last().unwrap()["Category"], "deletion");
    assert!(records.len() >= 8, "{feed}");

    // The deleted files are kept as tombstones, and the GUN can start over.
    let db = rusqlite::Connection::open(s.dir.join("server.db")).unwrap();
    let (live, dead): (i64, i64) = db
        .query_row(
            "SELECT SUM(deleted_at IS NULL), SUM(deleted_at IS NOT NULL) FROM tuf_files WHERE gun = ?1",
            [GUN],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(live, 0);
    assert!(dead >= 10, "tombstones kept: {dead}");
    let again = tmp.path().join("again");
    notary(&s.url, &s.ca, &again, &["init", GUN, "-p"]);
    notary(&s.url, &s.ca, &again, &["add", GUN, "fresh", file]);
    notary(&s.url, &s.ca, &again, &["publish", GUN]);
    let list = fresh("fresh3", &["list", GUN]);
    assert!(list.contains("fresh") && !list.contains("v3"), "{list}");
}

/// With the snapshot held by the server, a publish that changes nothing (re-adding a tag with
/// the same hash) makes the notary client send a multipart body with no parts. Go
/// notary-server takes it (a new snapshot and timestamp); so must we: the publish succeeds on
/// both and the next timestamp names the next snapshot.
#[test]
fn a_publish_that_changes_nothing_is_taken_as_notary_takes_it() {
    use trustbridge_e2e::free_port;
    use trustbridge_e2e::peers::{go_server, go_signer};
    use trustbridge_tuf::Snapshot;
    init();
    let tmp = tempfile::tempdir().unwrap();
    let ours = start_stack(tmp.path());
    let go_dir = tmp.path().join("go");
    std::fs::create_dir_all(&go_dir).unwrap();
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&go_dir.join("certs"))
        .unwrap();
    let signer_port = free_port();
    let _signer = go_signer(&go_dir, signer_port, r#"{"backend":"memory"}"#);
    let go_port = free_port();
    let _server = go_server(&go_dir, go_port, signer_port, "");
    let go_url = format!("https://127.0.0.1:{go_port}");
    let go_ca = go_dir.join("certs/root-ca.crt");
    for (name, url, ca) in [
        ("notary-server", go_url.as_str(), go_ca.as_path()),
        ("trustbridge-server", ours.url.as_str(), ours.ca.as_path()),
    ] {
        let trust = tmp.path().join(format!("trust-{name}"));
        println!("against {name}");
        let n = |args: &[&str]| notary(url, ca, &trust, args);
        let hash = "a".repeat(64);
        n(&["init", GUN, "-p"]);
        n(&["key", "rotate", GUN, "snapshot", "-r"]);
        n(&["addhash", GUN, "v1", "3", "--sha256", &hash]);
        n(&["publish", GUN]);
        let snapshot = |url: &str| {
            let (_, body) = https_get(&format!("{url}/v2/{GUN}/_trust/tuf/snapshot.json"), ca);
            Signed::<Snapshot>::from_bytes("snapshot", &body)
                .unwrap()
                .signed
                .version
        };
        let before = snapshot(url);
        n(&["addhash", GUN, "v1", "3", "--sha256", &hash]);
        n(&["publish", GUN]);
        assert_eq!(snapshot(url), before + 1, "{name}: a new snapshot");
        assert!(n(&["list", GUN]).contains("v1"), "{name}");
    }
}
