//! Our `trustbridge` client through the whole notary workflow, against trustbridge-server and
//! against Go notary-server 0.7.0, with the real notary 0.7.0 client reading what ours
//! published (and publishing with the key files ours made), ours reading what notary
//! published (with notary's key files), and docker CLI 28's key used by ours.

use std::path::Path;
use std::process::Command;

use trustbridge_e2e::peers::{go_server, go_signer};
use trustbridge_e2e::server::{
    CLIENT_PASS, delegation_cert, notary, start_stack, trustbridge, trustbridge_fails,
};
use trustbridge_e2e::{free_port, https_get, init, require_bin, run_ok};
use trustbridge_tuf::{Root, Signed, Targets};

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b))
}

/// The full workflow of the server issue, with our client, against `url`.
fn workflow(url: &str, ca: &Path, tmp: &Path, gun: &str) {
    let trust = tmp.join("trust-ours");
    let t = |args: &[&str]| trustbridge(url, ca, &trust, args);
    let fresh_notary = |name: &str, args: &[&str]| notary(url, ca, &tmp.join(name), args);
    let fresh_ours = |name: &str, args: &[&str]| trustbridge(url, ca, &tmp.join(name), args);
    let get = |name: &str| https_get(&format!("{url}/v2/{gun}/_trust/tuf/{name}"), ca);
    let payload = b"trustbridge payload";
    let file = tmp.join("artefact.bin");
    std::fs::write(&file, payload).unwrap();
    let file = file.to_str().unwrap();
    let digest = sha256_hex(payload);

    t(&["init", gun, "-p"]);
    t(&["add", gun, "v1", file]);
    assert!(t(&["status", gun]).contains("v1"));
    t(&["publish", gun]);
    assert!(t(&["status", gun]).contains("No unpublished changes"));
    let list = t(&["list", gun]);
    assert!(list.contains("v1") && list.contains(&digest), "{list}");
    // The real notary client verifies and reads what ours published.
    let theirs = fresh_notary("n-fresh1", &["list", gun]);
    assert!(
        theirs.contains("v1") && theirs.contains(&digest),
        "{theirs}"
    );

    t(&["add", gun, "v2", file, "-p"]);
    t(&["remove", gun, "v1", "-p"]);
    let look = t(&["lookup", gun, "v2"]);
    assert!(look.contains(&format!("sha256:{digest}")), "{look}");
    assert!(!t(&["list", gun]).contains("v1"));

    // Key rotations: server-managed snapshot and timestamp, then a local targets key.
    let root_v = |b: &[u8]| Signed::<Root>::from_bytes("root", b).unwrap().signed;
    let before = root_v(&get("root.json").1);
    t(&["key", "rotate", gun, "snapshot", "-r"]);
    t(&["key", "rotate", gun, "timestamp", "-r"]);
    t(&["key", "rotate", gun, "targets"]);
    let after = root_v(&get("root.json").1);
    assert_eq!(after.version, before.version + 3);
    for role in ["snapshot", "timestamp", "targets"] {
        assert_ne!(
            after.roles[role].keyids, before.roles[role].keyids,
            "{role}"
        );
    }
    t(&["add", gun, "v3", file, "-p"]);
    assert!(fresh_notary("n-fresh2", &["list", gun]).contains("v3"));

    // Root key rotation: v+1, a new root certificate, signed by the old and the new key.
    t(&["key", "rotate", gun, "root"]);
    let rotated = root_v(&get("root.json").1);
    assert_eq!(rotated.version, after.version + 1);
    assert_ne!(rotated.roles["root"].keyids, after.roles["root"].keyids);
    // A client that trusted the old root follows the rotation.
    let theirs = notary(url, ca, &tmp.join("n-fresh1"), &["list", gun]);
    assert!(theirs.contains("v3"), "{theirs}");

    // A delegation with a certificate key, and a target in it.
    let (kf, cf) = delegation_cert(tmp, "releases");
    let (kf, cf) = (kf.to_str().unwrap(), cf.to_str().unwrap());
    t(&["key", "import", kf, "--role", "targets/releases"]);
    t(&[
        "delegation",
        "add",
        gun,
        "targets/releases",
        cf,
        "--all-paths",
        "-p",
    ]);
    assert!(t(&["delegation", "list", gun]).contains("targets/releases"));
    t(&["add", gun, "rel1", file, "-r", "targets/releases", "-p"]);
    let list = t(&["list", gun]);
    assert!(
        list.contains("rel1") && list.contains("targets/releases"),
        "{list}"
    );
    let deleg_v = |b: &[u8]| {
        Signed::<Targets>::from_bytes("targets/releases", b)
            .unwrap()
            .signed
            .version
    };
    let v_before = deleg_v(&get("targets/releases.json").1);
    t(&["witness", gun, "targets/releases", "-p"]);
    assert_eq!(deleg_v(&get("targets/releases.json").1), v_before + 1);

    // Staged changes can be listed and dropped.
    t(&["add", gun, "staged", file]);
    assert!(t(&["status", gun]).contains("staged"));
    t(&["reset", gun, "--all"]);
    assert!(t(&["status", gun]).contains("No unpublished changes"));

    // Fresh readers of both kinds agree.
    for list in [
        fresh_notary("n-fresh3", &["list", gun]),
        fresh_ours("o-fresh", &["list", gun]),
    ] {
        assert!(
            list.contains("v2") && list.contains("v3") && list.contains("rel1"),
            "{list}"
        );
        assert!(!list.contains("v1 ") && !list.contains("staged"), "{list}");
    }

    // Key files ours made, used by notary (same trust directory): notary publishes.
    notary(url, ca, &trust, &["add", gun, "by-notary", file]);
    notary(url, ca, &trust, &["publish", gun]);
    assert!(t(&["list", gun]).contains("by-notary"));

    t(&["delete", gun, "--remote"]);
    assert_eq!(get("root.json").0, 404);
    let err = trustbridge_fails(url, ca, &tmp.join("o-fresh2"), &["list", gun]);
    assert!(err.contains("does not exist"), "{err}");
}

/// notary publishes a repository with its own keys; ours reads it, then publishes to it with
/// notary's key files; notary reads that back.
fn notary_made(url: &str, ca: &Path, tmp: &Path, gun: &str) {
    let trust = tmp.join("trust-notary");
    let file = tmp.join("n.bin");
    std::fs::write(&file, b"from notary").unwrap();
    let file = file.to_str().unwrap();
    notary(url, ca, &trust, &["init", gun, "-p"]);
    notary(url, ca, &trust, &["add", gun, "n1", file]);
    notary(url, ca, &trust, &["publish", gun]);
    let ours = trustbridge(url, ca, &tmp.join("o-reader"), &["list", gun]);
    assert!(
        ours.contains("n1") && ours.contains(&sha256_hex(b"from notary")),
        "{ours}"
    );
    trustbridge(url, ca, &trust, &["add", gun, "o1", file, "-p"]);
    let theirs = notary(url, ca, &tmp.join("n-reader"), &["list", gun]);
    assert!(theirs.contains("n1") && theirs.contains("o1"), "{theirs}");
}

#[test]
fn our_client_with_trustbridge_server() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let s = start_stack(tmp.path());
    workflow(&s.url, &s.ca, tmp.path(), "127.0.0.1/client/workflow");
    notary_made(&s.url, &s.ca, tmp.path(), "127.0.0.1/client/notary-made");
}

#[test]
fn our_client_with_go_notary_server() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&tmp.path().join("certs"))
        .unwrap();
    let signer_port = free_port();
    let _signer = go_signer(tmp.path(), signer_port, r#"{"backend":"memory"}"#);
    let port = free_port();
    let _server = go_server(tmp.path(), port, signer_port, "");
    let url = format!("https://127.0.0.1:{port}");
    let ca = tmp.path().join("certs/root-ca.crt");
    workflow(&url, &ca, tmp.path(), "127.0.0.1/client/go-workflow");
    notary_made(&url, &ca, tmp.path(), "127.0.0.1/client/go-notary-made");
}

/// `docker trust key generate` makes a signer key; ours delegates to it and signs with it.
#[test]
fn docker_generated_key_signs_through_our_client() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let s = start_stack(tmp.path());
    let cfg = tmp.path().join("docker");
    std::fs::create_dir_all(&cfg).unwrap();
    let out = run_ok(
        "docker trust key generate",
        Command::new(require_bin("docker"))
            .args(["trust", "key", "generate", "alice", "--dir"])
            .arg(&cfg)
            .env("DOCKER_CONFIG", &cfg)
            .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", CLIENT_PASS),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Successfully generated"));
    let trust = cfg.join("trust");
    let gun = "127.0.0.1/client/docker-key";
    let pubkey = cfg.join("alice.pub");
    let file = tmp.path().join("d.bin");
    std::fs::write(&file, b"docker signed").unwrap();
    let t = |args: &[&str]| trustbridge(&s.url, &s.ca, &trust, args);
    t(&["init", gun, "-p"]);
    let keys = t(&["key", "list"]);
    assert!(keys.contains("alice"), "{keys}");
    t(&[
        "delegation",
        "add",
        gun,
        "targets/releases",
        pubkey.to_str().unwrap(),
        "--all-paths",
        "-p",
    ]);
    t(&[
        "add",
        gun,
        "d1",
        file.to_str().unwrap(),
        "-r",
        "targets/releases",
        "-p",
    ]);
    let theirs = notary(&s.url, &s.ca, &tmp.path().join("n"), &["list", gun]);
    assert!(
        theirs.contains("d1") && theirs.contains("targets/releases"),
        "{theirs}"
    );

    // The other way: a key ours generates is loaded by docker, which signs with it. docker
    // reaches the server by a name it verifies (see server_docker_cli).
    let server = format!("https://notary-server:{}", s.port);
    let tls = cfg.join("tls").join(format!("notary-server:{}", s.port));
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(&s.ca, tls.join("ca.crt")).unwrap();
    let docker = |args: &[&str]| {
        let out = run_ok(
            &format!("docker {}", args.join(" ")),
            Command::new(require_bin("docker"))
                .args(args)
                .env("DOCKER_CONFIG", &cfg)
                .env("DOCKER_CONTENT_TRUST_SERVER", &server)
                .env("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", CLIENT_PASS)
                .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", CLIENT_PASS),
        );
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let bob = cfg.join("bob");
    t(&[
        "key",
        "generate",
        "--role",
        "bob",
        "-o",
        bob.to_str().unwrap(),
    ]);
    let out = docker(&[
        "trust",
        "key",
        "load",
        bob.with_extension("key").to_str().unwrap(),
        "--name",
        "bob",
    ]);
    assert!(out.contains("Successfully imported key"), "{out}");
    let out = docker(&[
        "trust",
        "signer",
        "add",
        "--key",
        bob.with_extension("pub").to_str().unwrap(),
        "bob",
        gun,
    ]);
    assert!(out.contains("Successfully added signer: bob"), "{out}");
    let releases = |url: &str| {
        let (_, b) = https_get(
            &format!("{url}/v2/{gun}/_trust/tuf/targets/releases.json"),
            &s.ca,
        );
        Signed::<Targets>::from_bytes("targets/releases", &b).unwrap()
    };
    // A tag in the top-level targets role (without a daemon docker signs only tags already
    // in trust data); docker adds it to releases.
    t(&["add", gun, "d2", file.to_str().unwrap(), "-p"]);
    let before = releases(&s.url).signed.version;
    let out = docker(&["trust", "sign", &format!("{gun}:d2")]);
    assert!(out.contains("Successfully signed"), "{out}");
    // docker re-signed the releases role with the key ours made.
    let pub_pem = pem::parse(std::fs::read(bob.with_extension("pub")).unwrap()).unwrap();
    let bob_id = trustbridge_tuf::PublicKey::new(
        trustbridge_tuf::KeyType::Ecdsa,
        pub_pem.contents().to_vec(),
    )
    .id();
    let after = releases(&s.url);
    assert_eq!(after.signed.version, before + 1);
    assert!(
        after.signatures.iter().any(|sig| sig.keyid == bob_id),
        "{:?}",
        after.signatures
    );
    // notary files our export form under the same ID.
    let n2 = tmp.path().join("n2");
    let bob_key = bob.with_extension("key");
    notary(
        &s.url,
        &s.ca,
        &n2,
        &["key", "import", bob_key.to_str().unwrap()],
    );
    let keys = notary(&s.url, &s.ca, &n2, &["key", "list"]);
    assert!(keys.contains(&bob_id), "{keys}");
    let list = t(&["--json", "list", gun, "-r", "targets/releases"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "d2" && t["role"] == "targets/releases"),
        "{v}"
    );
}

/// Each failure is one line naming what failed and what to do.
#[test]
fn errors_name_the_failure_and_the_fix() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let s = start_stack(tmp.path());
    let trust = tmp.path().join("t");
    let gun = "127.0.0.1/client/errors";
    let one_line = |err: &str| assert_eq!(err.trim().lines().count(), 1, "{err}");

    // Nothing listening: unreachable, not a TLS problem.
    let port = free_port();
    let err = trustbridge_fails(
        &format!("https://127.0.0.1:{port}"),
        &s.ca,
        &trust,
        &["list", gun],
    );
    assert!(
        err.contains("cannot reach") && err.contains("-s/--server"),
        "{err}"
    );
    one_line(&err);

    // The server's CA not trusted: a TLS failure with the flag that fixes it.
    let out = Command::new(trustbridge_e2e::our_bin(
        "trustbridge-client",
        "trustbridge",
    ))
    .arg("-d")
    .arg(&trust)
    .args(["-s", &s.url, "list", gun])
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("TLS to") && err.contains("--tlscacert"),
        "{err}"
    );
    one_line(&err);

    // No such repository.
    let err = trustbridge_fails(&s.url, &s.ca, &trust, &["list", gun]);
    assert!(
        err.contains("does not exist") && err.contains("trustbridge init"),
        "{err}"
    );

    // A wrong passphrase names the role, the key and the variable.
    trustbridge(&s.url, &s.ca, &trust, &["init", gun, "-p"]);
    let out = trustbridge_e2e::server::trustbridge_cmd(
        &s.url,
        &s.ca,
        &trust,
        &["add", gun, "x", "/etc/hostname", "-p"],
    )
    .env("NOTARY_TARGETS_PASSPHRASE", "not the passphrase")
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("wrong passphrase for the targets key")
            && err.contains("NOTARY_TARGETS_PASSPHRASE"),
        "{err}"
    );
    one_line(&err);
    // Nothing was published; the change is still staged for a retry.
    assert!(trustbridge(&s.url, &s.ca, &trust, &["status", gun]).contains("x"));
    assert!(trustbridge(&s.url, &s.ca, &trust, &["list", gun]).contains("No targets"));
}
