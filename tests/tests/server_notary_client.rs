//! The real notary 0.7.0 client against trustbridge-server + trustbridge-signer: the whole
//! lifecycle a notary user runs, then a second fresh client reads and verifies everything.

use trustbridge_e2e::init;
use trustbridge_e2e::server::{notary, start_stack};

const GUN: &str = "127.0.0.1/e2e/lifecycle";

#[test]
fn notary_client_lifecycle() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let s = start_stack(tmp.path());
    let trust = tmp.path().join("trust");
    let n = |args: &[&str]| notary(&s.url, &s.ca, &trust, args);
    let file = tmp.path().join("artefact.bin");
    std::fs::write(&file, b"payload").unwrap();
    let file = file.to_str().unwrap();

    n(&["init", GUN, "-p"]);
    n(&["add", GUN, "v1", file]);
    n(&["publish", GUN]);
    let list = n(&["list", GUN]);
    assert!(list.contains("v1"), "{list}");
    n(&["add", GUN, "v2", file]);
    n(&["publish", GUN]);
    n(&["remove", GUN, "v1"]);
    n(&["publish", GUN]);
    n(&["key", "rotate", GUN, "snapshot", "-r"]);
    n(&["key", "rotate", GUN, "timestamp", "-r"]);
    n(&["key", "rotate", GUN, "targets"]);
    n(&["add", GUN, "v3", file]);
    n(&["publish", GUN]);
    n(&["key", "rotate", GUN, "root"]);
    let status = n(&["status", GUN]);
    assert!(status.contains("No unpublished changes"), "{status}");

    let fresh = tmp.path().join("fresh");
    let list = notary(&s.url, &s.ca, &fresh, &["list", GUN]);
    assert!(
        list.contains("v2") && list.contains("v3") && !list.contains("v1"),
        "{list}"
    );
    let lookup = notary(&s.url, &s.ca, &fresh, &["lookup", GUN, "v3"]);
    assert!(lookup.contains("v3"), "{lookup}");
}
