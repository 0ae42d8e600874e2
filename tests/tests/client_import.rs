//! `trustbridge import`: a repository with history, a delegation and a root rotation on Go
//! notary-server 0.7.0 is copied into trustbridge-server; after the timestamp rotation the
//! import prints, the real notary client reads it from trustbridge-server with the same
//! targets, every historical version is byte-identical, and the owner keeps publishing.

use trustbridge_e2e::peers::{go_server, go_signer};
use trustbridge_e2e::server::Stack;
use trustbridge_e2e::server::{
    notary, notary_with_input, start_stack, trustbridge, trustbridge_cmd,
};
use trustbridge_e2e::{Proc, free_port, https_get, init};

const GUN: &str = "127.0.0.1/import/app";

/// The target lines of `notary list` (name, digest, size, role), sorted.
fn targets_of(list: &str) -> Vec<String> {
    let mut v: Vec<String> = list
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("NAME") && !l.starts_with("----"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    v.sort();
    v
}

/// `import --from GO --from-tlscacert CA --gun GUN`.
fn import_args<'a>(go: &'a str, ca: &'a str, gun: &'a str) -> [&'a str; 7] {
    ["import", "--from", go, "--from-tlscacert", ca, "--gun", gun]
}

/// trustbridge-server (with its signer) and Go notary-server 0.7.0 with Go notary-signer,
/// sharing one dev PKI: (temp dir, our stack, the Go processes, the Go server's URL).
fn both_servers() -> (tempfile::TempDir, Stack, [Proc; 2], String) {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let tb = start_stack(tmp.path());
    let signer_port = free_port();
    let signer = go_signer(tmp.path(), signer_port, r#"{"backend":"memory"}"#);
    let port = free_port();
    let server = go_server(tmp.path(), port, signer_port, "");
    (
        tmp,
        tb,
        [signer, server],
        format!("https://127.0.0.1:{port}"),
    )
}

#[test]
fn import_from_go_notary_server() {
    let (tmp, tb, _go_procs, go) = both_servers();
    let dir = tmp.path();
    let ca = &tb.ca;
    let owner = dir.join("owner");
    let file = dir.join("a.bin");
    std::fs::write(&file, b"imported artefact").unwrap();
    let file = file.to_str().unwrap();
    let n_go = |args: &[&str]| notary(&go, ca, &owner, args);

    // History on the Go server: several targets versions, a delegation, a root rotation.
    n_go(&["init", GUN, "-p"]);
    n_go(&["add", GUN, "v1", file]);
    n_go(&["publish", GUN]);
    n_go(&["add", GUN, "v2", file]);
    n_go(&["publish", GUN]);
    n_go(&["remove", GUN, "v1"]);
    n_go(&["publish", GUN]);
    let (kf, cf) = trustbridge_e2e::server::delegation_cert(dir, "releases");
    n_go(&[
        "key",
        "import",
        kf.to_str().unwrap(),
        "--role",
        "targets/releases",
    ]);
    n_go(&[
        "delegation",
        "add",
        GUN,
        "targets/releases",
        cf.to_str().unwrap(),
        "--all-paths",
    ]);
    n_go(&["add", GUN, "rel1", file, "--roles", "targets/releases"]);
    n_go(&["publish", GUN]);
    notary_with_input(&go, ca, &owner, &["key", "rotate", GUN, "root"], "yes\n");
    n_go(&["add", GUN, "v3", file]);
    n_go(&["publish", GUN]);
    let on_go = targets_of(&notary(&go, ca, &dir.join("reader-go"), &["list", GUN]));
    assert_eq!(on_go.len(), 3, "{on_go:?}");

    // Import, as the owner (their trust directory anchors the source's root).
    let out = trustbridge(
        &tb.url,
        ca,
        &owner,
        &import_args(&go, ca.to_str().unwrap(), GUN),
    );
    assert!(
        out.contains(&format!("{GUN}: copied")) && out.contains("verified"),
        "{out}"
    );
    let step = format!("key rotate {GUN} timestamp -r");
    assert!(
        out.contains(&step),
        "the import must name the timestamp rotation: {out}"
    );

    // Every version is byte-identical on both servers.
    let versions = |url: &str, role: &str, v: i64| {
        https_get(&format!("{url}/v2/{GUN}/_trust/tuf/{v}.{role}.json"), ca)
    };
    for role in [
        "root",
        "targets",
        "targets/releases",
        "snapshot",
        "timestamp",
    ] {
        let current = https_get(&format!("{go}/v2/{GUN}/_trust/tuf/{role}.json"), ca).1;
        let current: serde_json::Value = serde_json::from_slice(&current).unwrap();
        let newest = current["signed"]["version"].as_i64().unwrap();
        assert!(newest >= 1, "{role}");
        for v in 1..=newest {
            // Gaps (404) must be the same on both sides too.
            assert_eq!(
                versions(&tb.url, role, v),
                versions(&go, role, v),
                "{role} v{v}"
            );
        }
        assert_eq!(versions(&tb.url, role, newest).0, 200, "{role} v{newest}");
    }

    // The owner runs what the import said (with the notary CLI, as the import offers).
    notary(
        &tb.url,
        ca,
        &owner,
        &["key", "rotate", GUN, "timestamp", "-r"],
    );
    let on_tb = targets_of(&notary(&tb.url, ca, &dir.join("reader-tb"), &["list", GUN]));
    assert_eq!(on_tb, on_go);
    // And keeps publishing to the new server.
    notary(&tb.url, ca, &owner, &["add", GUN, "v4", file]);
    notary(&tb.url, ca, &owner, &["publish", GUN]);
    let fresh = notary(&tb.url, ca, &dir.join("reader-tb2"), &["list", GUN]);
    assert!(fresh.contains("v4") && fresh.contains("rel1"), "{fresh}");

    // A second import of the same GUN is refused, and nothing changes.
    let root_before = https_get(&format!("{}/v2/{GUN}/_trust/tuf/root.json", tb.url), ca);
    let out = trustbridge_cmd(
        &tb.url,
        ca,
        &dir.join("admin2"),
        &import_args(&go, ca.to_str().unwrap(), GUN),
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("VERSION"), "{err}");
    assert_eq!(
        https_get(&format!("{}/v2/{GUN}/_trust/tuf/root.json", tb.url), ca),
        root_before
    );
}

/// A docker-style repository (the snapshot key on the old server) is imported, and the one
/// command the import prints — rotating timestamp and snapshot together into this server's
/// signer — makes it fully served and writable here.
#[test]
fn import_of_a_repository_with_a_server_held_snapshot() {
    let (tmp, tb, _go_procs, go) = both_servers();
    let dir = tmp.path();
    let ca = &tb.ca;
    let owner = dir.join("owner");
    let gun = "127.0.0.1/import/docker-style";
    let file = dir.join("a.bin");
    std::fs::write(&file, b"docker style").unwrap();
    let file = file.to_str().unwrap();
    trustbridge(
        &go,
        ca,
        &owner,
        &["init", gun, "--server-managed-snapshot", "-p"],
    );
    trustbridge(&go, ca, &owner, &["add", gun, "v1", file, "-p"]);
    trustbridge(&go, ca, &owner, &["add", gun, "v2", file, "-p"]);
    let on_go = targets_of(&notary(&go, ca, &dir.join("reader-go"), &["list", gun]));

    let out = trustbridge(
        &tb.url,
        ca,
        &owner,
        &import_args(&go, ca.to_str().unwrap(), gun),
    );
    let step = format!("key rotate {gun} timestamp snapshot -r");
    assert!(out.contains(&step), "{out}");
    trustbridge(
        &tb.url,
        ca,
        &owner,
        &["key", "rotate", gun, "timestamp", "snapshot", "-r"],
    );
    let on_tb = targets_of(&notary(&tb.url, ca, &dir.join("reader-tb"), &["list", gun]));
    assert_eq!(on_tb, on_go);
    trustbridge(&tb.url, ca, &owner, &["add", gun, "v3", file, "-p"]);
    let fresh = notary(&tb.url, ca, &dir.join("reader-tb2"), &["list", gun]);
    assert!(fresh.contains("v3") && fresh.contains("v2"), "{fresh}");
}
