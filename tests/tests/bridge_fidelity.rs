//! The bridge's rule, checked with the real `cosign` CLI (Debian's cosign 3.1.1 from sid and
//! 2.5.0 from trixie, installed by scripts/test.sh): a tag is signed on the Cosign side iff a
//! fresh DCT client resolves it to that digest. Each step changes DCT's answer the way users
//! do (sign, move a tag into a delegation, rotate the delegation's signer, delete the
//! repository) and then asks a fresh notary client and cosign, for the `.sig` layout and cosign
//! v3's bundle, whether they agree; the reconciler reads back what was delivered; GUNs sharing
//! one repository keep their own layers.

use std::path::Path;
use std::process::Command;

use trustbridge_e2e::bridge::{
    Registry, Stack, assert_cosign, cosign_verify, post, server_key, sig_layers, sign_tag,
    start_stack, wait_job, wait_status,
};
use trustbridge_e2e::server::{delegation_cert, notary, notary_with_input};
use trustbridge_e2e::{https_get, init, run_ok};

/// The tags a fresh notary client (no trust directory) lists for `gun`.
fn dct_tags(st: &Stack, dir: &Path, gun: &str) -> Vec<String> {
    let fresh = tempfile::tempdir_in(dir).unwrap();
    let out = Command::new("notary")
        .args(["-s", &st.url, "--tlscacert"])
        .arg(&st.ca)
        .arg("-d")
        .arg(fresh.path())
        .args(["list", gun])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn cosign_accepts_exactly_what_dct_trusts() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start(&dir.join("registry"));
    let repo = "team/app";
    let gun = format!("127.0.0.1:{}/{repo}", registry.port);
    // Two images, so the two tags have digests of their own (cosign signs digests).
    let (d1, s1) = registry.push_sample(&format!("{repo}:v1"));
    let (d2, s2) = registry.push_sample(&format!("{repo}:rel"));
    assert_ne!(d1, d2);
    let st = start_stack(dir, registry.port, r#","new_bundle_format":true"#);
    let key = st.cosign_pub(dir);
    let other = dir.join("other.pub");
    std::fs::write(&other, rcgen::KeyPair::generate().unwrap().public_key_pem()).unwrap();
    let (v1, rel) = (format!("{gun}:v1"), format!("{gun}:rel"));
    let trust = dir.join("owner");
    let n = |args: &[&str]| notary(&st.url, &st.ca, &trust, args);

    // 1. v1 signed in targets: DCT trusts it, so does cosign (and not with another key).
    sign_tag(&st, &trust, &gun, "v1", s1, &d1);
    wait_job(&st, &gun, "v1", "sign");
    assert_eq!(dct_tags(&st, dir, &gun), ["v1"]);
    assert_cosign(&key, &v1, true, "DCT trusts v1");
    assert!(!cosign_verify("sid", &other, &v1, &[]).0, "another key");
    assert_cosign(&key, &rel, false, "rel is not signed yet");

    // 2. rel signed by the releases delegation (alice's key), as `docker trust sign` does.
    let (alice_key, alice_cert) = delegation_cert(dir, "alice");
    n(&[
        "key",
        "import",
        alice_key.to_str().unwrap(),
        "--role",
        "targets/releases",
    ]);
    n(&[
        "delegation",
        "add",
        &gun,
        "targets/releases",
        alice_cert.to_str().unwrap(),
        "--all-paths",
    ]);
    n(&["publish", &gun]);
    let size = s2.to_string();
    n(&[
        "addhash",
        &gun,
        "rel",
        &size,
        "--sha256",
        &d2,
        "--roles",
        "targets/releases",
    ]);
    n(&["publish", &gun]);
    wait_job(&st, &gun, "rel", "sign");
    assert_eq!(dct_tags(&st, dir, &gun), ["rel", "v1"]);
    assert_cosign(&key, &rel, true, "DCT trusts rel (targets/releases)");

    // 3. The delegation's signer is rotated (bob in, alice out), as `docker trust signer
    //    remove` does: releases is still signed by alice only, so no DCT client trusts rel.
    // alice's key ID as notary lists it (the one 64-hex word on the releases row).
    let listed = n(&["delegation", "list", &gun]);
    let alice = listed
        .lines()
        .find(|l| l.starts_with("targets/releases"))
        .and_then(|l| {
            l.split_whitespace()
                .find(|w| w.len() == 64 && w.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .unwrap_or_else(|| panic!("no key ID for targets/releases in {listed}"))
        .to_string();
    let (_, bob_cert) = delegation_cert(dir, "bob");
    n(&[
        "delegation",
        "add",
        &gun,
        "targets/releases",
        bob_cert.to_str().unwrap(),
        "--all-paths",
    ]);
    notary_with_input(
        &st.url,
        &st.ca,
        &trust,
        &["delegation", "remove", &gun, "targets/releases", &alice],
        "y\n",
    );
    n(&["publish", &gun]);
    assert_eq!(
        dct_tags(&st, dir, &gun),
        ["v1"],
        "a fresh client skips releases now"
    );
    wait_job(&st, &gun, "rel", "revoke");
    assert_cosign(&key, &rel, false, "no DCT client trusts rel any more");
    assert_cosign(&key, &v1, true, "v1 is untouched");

    // 4. The repository is deleted: DCT trusts nothing, and neither does cosign.
    n(&["delete", &gun, "--remote"]);
    assert!(dct_tags(&st, dir, &gun).is_empty());
    wait_job(&st, &gun, "v1", "revoke");
    assert_cosign(&key, &v1, false, "the repository was deleted");
    drop(st);
}

/// The reconciler reads back what was delivered: our `.sig` deleted behind the bridge's back
/// is pushed again, and a tag moved in the registry (skopeo) is flagged as drift in status,
/// metrics and `bridge verify`, and never "fixed" by signing what the registry now has.
#[test]
fn the_reconciler_repushes_what_is_missing_and_flags_drift() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start(&dir.join("registry"));
    let repo = "team/app";
    let gun = format!("127.0.0.1:{}/{repo}", registry.port);
    let (d1, s1) = registry.push_sample(&format!("{repo}:v1"));
    let (d2, _) = registry.push_sample(&format!("{repo}:other"));
    let st = start_stack(dir, registry.port, r#","reconcile_seconds":1"#);
    let key = st.cosign_pub(dir);
    let trust = dir.join("owner");
    sign_tag(&st, &trust, &gun, "v1", s1, &d1);
    wait_job(&st, &gun, "v1", "sign");
    let first = wait_status(&st, &gun, "v1", |t| t["verified_at"].is_string());
    assert_eq!(first["drift"], false, "{first}");
    assert_eq!(first["registry_digest"], format!("sha256:{d1}"));

    // Someone deletes our signature manifest: the next pass pushes it again. The server is
    // frozen (SIGSTOP) while the deletion is checked, so its one-second reconciler cannot put
    // the signature back before cosign has seen it gone (a race on a loaded machine).
    let pid = st.server.id().to_string();
    run_ok("kill -STOP", Command::new("kill").args(["-STOP", &pid]));
    let sig = format!(
        "http://127.0.0.1:{}/v2/{repo}/manifests/sha256-{d1}.sig",
        registry.port
    );
    let head = Command::new("curl")
        .args([
            "-sSI",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &sig,
        ])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).to_lowercase();
    let manifest = head
        .lines()
        .find_map(|l| l.strip_prefix("docker-content-digest:"))
        .unwrap_or_else(|| panic!("no digest for the .sig manifest: {head}"))
        .trim()
        .to_string();
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "DELETE",
        ])
        .arg(format!(
            "http://127.0.0.1:{}/v2/{repo}/manifests/{manifest}",
            registry.port
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "202");
    assert_eq!(sig_layers(registry.port, repo, &d1), 0);
    assert!(!cosign_verify("sid", &key, &format!("{gun}:v1"), &[]).0);
    run_ok("kill -CONT", Command::new("kill").args(["-CONT", &pid]));
    let start = std::time::Instant::now();
    while sig_layers(registry.port, repo, &d1) == 0 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the deleted signature was not pushed again: {}",
            st.server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert_cosign(&key, &format!("{gun}:v1"), true, "pushed again");

    // The tag is moved in the registry behind trust's back: drift, flagged, not re-signed.
    run_ok(
        "skopeo copy",
        Command::new("skopeo").args([
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://127.0.0.1:{}/{repo}:other", registry.port),
            &format!("docker://127.0.0.1:{}/{repo}:v1", registry.port),
        ]),
    );
    let drift = wait_status(&st, &gun, "v1", |t| t["drift"] == true);
    assert_eq!(drift["registry_digest"], format!("sha256:{d2}"), "{drift}");
    assert_eq!(
        drift["digest"],
        format!("sha256:{d1}"),
        "DCT's digest stays"
    );
    let (_, metrics) = https_get(&format!("{}/metrics", st.url), &st.ca);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("trustbridge_bridge_drifted_tags 1"),
        "{metrics}"
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        sig_layers(registry.port, repo, &d2),
        0,
        "what the registry has now is never signed for DCT's tag"
    );
    assert_cosign(
        &key,
        &format!("{gun}:v1"),
        false,
        "the tag now names an unsigned image",
    );
    // The admin command says the same.
    let out = run_ok(
        "trustbridge-server bridge verify",
        Command::new(trustbridge_e2e::our_bin(
            "trustbridge-server",
            "trustbridge-server",
        ))
        .args(["--config"])
        .arg(&st.config)
        .args(["bridge", "verify", "--gun", &gun]),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 verified") && text.contains("1 drifted"),
        "{text}"
    );
}

/// Two GUNs whose images live in one repository (here by rewrite; on Docker Hub `alpine`,
/// `library/alpine` and `docker.io/library/alpine`), signing the same digest with the same
/// targets key: each gets a layer of its own (the payload names the GUN), and one GUN's
/// revoke leaves the other's signature in place.
#[test]
fn two_guns_on_one_repository_revoke_only_their_own() {
    use trustbridge_tuf::metadata::FileMeta;
    use trustbridge_tuf::{GoTime, KeyType, PrivateKey, Root, Signed, Targets, x509};
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start(&dir.join("registry"));
    let (digest, size) = registry.push_sample("team/app:v1");
    let port = registry.port;
    let st = trustbridge_e2e::bridge::start_bridge(
        dir,
        &format!(
            r#","rewrite":{{"a.example/":"127.0.0.1:{port}/","b.example/":"127.0.0.1:{port}/"}},"registries":{{"127.0.0.1:{port}":{{"plain_http":true}}}}"#
        ),
    );
    let key = st.cosign_pub(dir);
    let targets_key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
    let hashes = FileMeta {
        custom: None,
        hashes: [("sha256".to_string(), hex::decode(&digest).unwrap())].into(),
        length: size as i64,
    };
    let targets = |version: i64, with_v1: bool| {
        let body = Targets {
            type_: "Targets".into(),
            delegations: Default::default(),
            expires: GoTime::now().plus_years(3),
            targets: if with_v1 {
                [("v1".to_string(), hashes.clone())].into()
            } else {
                Default::default()
            },
            version,
        };
        Signed::sign(body, &[&targets_key]).unwrap().raw().to_vec()
    };
    for gun in ["a.example/team/app", "b.example/team/app"] {
        let root_key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
        let cert = x509::generate_root_certificate(gun, &root_key, 10).unwrap();
        let root = Root::initial([
            ("root", cert.clone()),
            ("targets", targets_key.public_key().clone()),
            ("snapshot", server_key(&st, gun, "snapshot")),
            ("timestamp", server_key(&st, gun, "timestamp")),
        ]);
        let root = Signed::sign_with_ids(root, vec![(cert.id(), &root_key)]).unwrap();
        let (code, body) = post(
            &st,
            gun,
            &[("root", root.raw().to_vec()), ("targets", targets(1, true))],
        );
        assert_eq!(code, 200, "{gun}: {body}");
        wait_job(&st, gun, "v1", "sign");
    }
    assert_eq!(
        sig_layers(port, "team/app", &digest),
        2,
        "one layer per GUN"
    );
    // a.example drops v1: its layer goes, b.example's stays and still verifies.
    let (code, body) = post(&st, "a.example/team/app", &[("targets", targets(2, false))]);
    assert_eq!(code, 200, "{body}");
    wait_job(&st, "a.example/team/app", "v1", "revoke");
    assert_eq!(sig_layers(port, "team/app", &digest), 1);
    assert_cosign(
        &key,
        &format!("127.0.0.1:{port}/team/app:v1"),
        true,
        "b.example still trusts v1",
    );
}
