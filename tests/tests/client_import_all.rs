//! `trustbridge import --all`: every repository of a Go notary-server 0.7.0 (21, one with a
//! delegation, one with a rotated root, one deleted and re-created under a new root since the
//! importer last saw it) is found through the source's changefeed and copied byte for byte;
//! the one that fails verification is reported and the rest still land; a second run skips
//! what is there.

use trustbridge_e2e::peers::{go_server, go_signer};
use trustbridge_e2e::server::{notary, notary_with_input, start_stack, trustbridge_cmd};
use trustbridge_e2e::{free_port, https_get, init};

#[test]
fn import_all_copies_a_whole_go_deployment_and_resumes() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tb = start_stack(dir);
    let signer_port = free_port();
    let _signer = go_signer(dir, signer_port, r#"{"backend":"memory"}"#);
    let port = free_port();
    let _server = go_server(dir, port, signer_port, "");
    let go = format!("https://127.0.0.1:{port}");
    let ca = &tb.ca;
    let owner = dir.join("owner");
    let importer = dir.join("importer");
    let file = dir.join("a.bin");
    std::fs::write(&file, b"fleet artefact").unwrap();
    let file = file.to_str().unwrap();
    let n_go = |args: &[&str]| notary(&go, ca, &owner, args);

    let guns: Vec<String> = (0..20)
        .map(|i| format!("127.0.0.1/fleet/app{i:02}"))
        .collect();
    for g in &guns {
        n_go(&["init", g, "-p"]);
    }
    n_go(&["add", &guns[0], "v1", file]);
    n_go(&["publish", &guns[0]]);
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
        &guns[0],
        "targets/releases",
        cf.to_str().unwrap(),
        "--all-paths",
    ]);
    n_go(&["add", &guns[0], "rel1", file, "--roles", "targets/releases"]);
    n_go(&["publish", &guns[0]]);
    notary_with_input(
        &go,
        ca,
        &owner,
        &["key", "rotate", &guns[1], "root"],
        "yes\n",
    );
    n_go(&["add", &guns[1], "v2", file]);
    n_go(&["publish", &guns[1]]);
    // Seen by the importer once, then deleted and re-created under another root: the new
    // history does not chain to the root the importer trusts.
    let recreated = "127.0.0.1/fleet/recreated";
    n_go(&["init", recreated, "-p"]);
    notary(&go, ca, &importer, &["list", recreated]);
    n_go(&["delete", recreated, "--remote"]);
    notary(
        &go,
        ca,
        &dir.join("other-owner"),
        &["init", recreated, "-p"],
    );

    let run = || {
        let out = trustbridge_cmd(
            &tb.url,
            ca,
            &importer,
            &[
                "import",
                "--from",
                &go,
                "--from-tlscacert",
                ca.to_str().unwrap(),
                "--all",
            ],
        )
        .output()
        .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run();
    assert!(!ok, "a failed repository must fail the run: {out}");
    assert!(
        out.contains("20 imported, 0 skipped (already there), 1 failed"),
        "{out}\n{err}"
    );
    let line = out
        .lines()
        .find(|l| l.starts_with(recreated))
        .unwrap_or_default();
    assert!(
        line.contains("failed") && line.contains("rotation not signed by the previous root"),
        "{out}"
    );
    assert!(
        err.contains("1 of 21 repositories failed to import"),
        "{err}"
    );

    // Every version of every imported repository is byte-identical on both servers.
    for g in &guns {
        let mut roles = vec!["root", "targets", "snapshot", "timestamp"];
        if g == &guns[0] {
            roles.push("targets/releases");
        }
        for role in roles {
            let current = https_get(&format!("{go}/v2/{g}/_trust/tuf/{role}.json"), ca).1;
            let current: serde_json::Value = serde_json::from_slice(&current).unwrap();
            let newest = current["signed"]["version"].as_i64().unwrap();
            for v in 1..=newest {
                let at =
                    |url: &str| https_get(&format!("{url}/v2/{g}/_trust/tuf/{v}.{role}.json"), ca);
                assert_eq!(at(&tb.url), at(&go), "{g} {role} v{v}");
            }
        }
    }
    let (code, _) = https_get(
        &format!("{}/v2/{recreated}/_trust/tuf/root.json", tb.url),
        ca,
    );
    assert_eq!(code, 404, "the failed repository must not be stored");

    // Resumable: a second run skips all twenty and reports the same failure.
    let (ok, out, _) = run();
    assert!(
        !ok && out.contains("0 imported, 20 skipped (already there), 1 failed"),
        "{out}"
    );
}
