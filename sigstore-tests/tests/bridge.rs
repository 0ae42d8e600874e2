//! The Cosign bridge end to end: a real registry (Debian's docker-registry, loopback, plain
//! HTTP) holds an image pushed with skopeo; the real notary client signs its tag through
//! trustbridge-server (`notary addhash`); the bridge mirrors it as a Cosign signature; and
//! sigstore-rs — an implementation nobody here wrote — finds and verifies it with the key from
//! `/_trustbridge/v1/cosign.pub`, and refuses another key.

use std::process::Command;
use std::time::{Duration, Instant};

use sigstore::cosign::{ClientBuilder, CosignCapabilities};
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};
use trustbridge_e2e::server::{notary, start_server, trustbridge, trustbridge_fails};
use trustbridge_e2e::{https_get, init, our_bin, require_bin, run_ok};
use trustbridge_sigstore_tests::{
    Registry, peers_script, sig_layers, sign_tag, start_stack, verify, wait_job,
};

#[test]
fn dct_signed_tag_is_mirrored_and_verified_by_sigstore_rs() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start(&dir.join("registry"));
    let gun = format!("127.0.0.1:{}/sample/hello", registry.port);
    let (digest, size) = registry.push_sample("sample/hello:v1");
    let st = start_stack(dir, registry.port, "");
    let (url, ca) = (st.url.clone(), st.ca.clone());

    let trust = dir.join("trust");
    sign_tag(&st, &trust, &gun, "v1", size, &digest);

    // The mirror job completes.
    let start = Instant::now();
    let status = loop {
        let (code, body) = https_get(&format!("{url}/_trustbridge/v1/status?gun={gun}"), &ca);
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if v["targets"][0]["state"] == "mirrored" {
            break v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not mirrored: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["targets"][0]["tag"], "v1");
    let (_, metrics) = https_get(&format!("{url}/metrics"), &ca);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(r#"trustbridge_bridge_jobs_total{action="sign",outcome="mirrored"} 1"#),
        "{metrics}"
    );
    assert_eq!(status["targets"][0]["digest"], format!("sha256:{digest}"));

    let (code, pem) = https_get(&format!("{url}/_trustbridge/v1/cosign.pub"), &ca);
    assert_eq!(code, 200);
    let rt = trustbridge_e2e::signer::rt();
    let image = format!("{gun}:v1");
    rt.block_on(verify(registry.port, &image, &pem))
        .expect("sigstore-rs verifies the mirrored signature");
    let other = sigstore::crypto::signing_key::SigStoreKeyPair::ECDSA(
        sigstore::crypto::signing_key::ecdsa::ECDSAKeys::new(
            sigstore::crypto::signing_key::ecdsa::EllipticCurve::P256,
        )
        .unwrap(),
    );
    let wrong = other.public_key_to_pem().unwrap();
    assert!(
        rt.block_on(verify(registry.port, &image, wrong.as_bytes()))
            .is_err(),
        "another key must not verify"
    );

    // Our client shows the same: DCT and Cosign agree on the digest, and the migration table.
    let ours = trustbridge(&url, &ca, &trust, &["verify-both", &image]);
    assert!(
        ours.contains(&format!("OK: DCT and Cosign agree on sha256:{digest}")),
        "{ours}"
    );
    let wrong_file = dir.join("wrong.pub");
    std::fs::write(&wrong_file, wrong.as_bytes()).unwrap();
    let err = trustbridge_fails(
        &url,
        &ca,
        &trust,
        &["verify-both", &image, "--key", wrong_file.to_str().unwrap()],
    );
    assert!(err.contains("no Cosign signature by this key"), "{err}");
    // The status table follows the summarizer (about a second behind the delivery).
    let start = std::time::Instant::now();
    let table = loop {
        let table = trustbridge(
            &url,
            &ca,
            &trust,
            &["migration", "status", "--prefix", "127.0.0.1:"],
        );
        if table.contains("1 mirrored, in 1 repositories")
            || start.elapsed() > std::time::Duration::from_secs(30)
        {
            break table;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(
        table.contains(&gun) && table.contains("1 mirrored, in 1 repositories"),
        "{table}"
    );
    let json = trustbridge(
        &url,
        &ca,
        &trust,
        &["--json", "migration", "status", "--gun", &gun],
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let state = &v["tags"][0]["cosign"]["state"];
    assert!(state == "mirrored" || state == "verified", "{v}");
}

#[test]
fn registry_outage_and_server_restart_lose_nothing_and_push_nothing_twice() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start(&dir.join("registry"));
    let repo = "team/outage";
    let gun = format!("127.0.0.1:{}/{repo}", registry.port);
    let mut st = start_stack(
        dir,
        registry.port,
        r#","max_backoff_seconds":1,"max_attempts":0"#,
    );
    let trust = dir.join("trust");
    notary(&st.url, &st.ca, &trust, &["init", &gun, "-p"]);

    // The registry goes away; 100 publishes (one new target each) happen meanwhile, and the
    // server restarts half-way.
    let stop = || {
        run_ok(
            "registry.sh stop",
            Command::new("bash")
                .arg(peers_script())
                .arg("stop")
                .arg(&registry.dir)
                .env("REGISTRY_PORT", registry.port.to_string()),
        );
    };
    stop();
    let digests: Vec<String> = (0..100)
        .map(|i| hex_sha256(format!("outage target {i}").as_bytes()))
        .collect();
    for (i, d) in digests.iter().enumerate() {
        if i == 50 {
            st.server.stop();
            st.server = start_server(
                "trustbridge-server-2",
                dir,
                &st.config,
                st.port,
                &mut [&mut st.signer],
            );
        }
        notary(
            &st.url,
            &st.ca,
            &trust,
            &["addhash", &gun, &format!("t{i}"), "1234", "--sha256", d],
        );
        notary(&st.url, &st.ca, &trust, &["publish", &gun]);
    }
    let (_, body) = https_get(
        &format!("{}/_trustbridge/v1/status?gun={gun}", st.url),
        &st.ca,
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] != "mirrored"),
        "nothing can be mirrored while the registry is down"
    );

    // The registry returns (same storage): every job is delivered, once.
    run_ok(
        "registry.sh start",
        Command::new("bash")
            .arg(peers_script())
            .arg("start")
            .arg(&registry.dir)
            .env("REGISTRY_PORT", registry.port.to_string()),
    );
    let start = Instant::now();
    loop {
        let (_, body) = https_get(
            &format!("{}/_trustbridge/v1/status?gun={gun}", st.url),
            &st.ca,
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let targets = v["targets"].as_array().unwrap();
        if targets.len() == 100 && targets.iter().all(|t| t["state"] == "mirrored") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "not all mirrored: {v}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for (i, d) in digests.iter().enumerate() {
        assert_eq!(
            sig_layers(registry.port, repo, d),
            1,
            "target t{i}: exactly one layer"
        );
    }
}

fn hex_sha256(data: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for b in ring::digest::digest(&ring::digest::SHA256, data).as_ref() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[test]
fn removed_target_loses_our_layer_and_keeps_another_signers() {
    use sigstore::cosign::constraint::{Constraint, PrivateKeySigner};
    use sigstore::cosign::signature_layers::SignatureLayer;
    use sigstore::crypto::SigningScheme;
    use sigstore::crypto::signing_key::SigStoreKeyPair;
    use sigstore::crypto::signing_key::ecdsa::{ECDSAKeys, EllipticCurve};
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start(&dir.join("registry"));
    let repo = "sample/revoke";
    let gun = format!("127.0.0.1:{}/{repo}", registry.port);
    let (digest, size) = registry.push_sample(&format!("{repo}:v1"));
    let st = start_stack(dir, registry.port, "");
    let trust = dir.join("trust");
    sign_tag(&st, &trust, &gun, "v1", size, &digest);
    wait_job(&st, &gun, "v1", "sign");
    let (_, our_pem) = https_get(&format!("{}/_trustbridge/v1/cosign.pub", st.url), &st.ca);

    // Another signer (sigstore-rs, its own key) adds its layer beside ours, as cosign would.
    let other = SigStoreKeyPair::ECDSA(ECDSAKeys::new(EllipticCurve::P256).unwrap());
    let other_pem = other.public_key_to_pem().unwrap();
    let image = format!("{gun}:v1");
    let rt = trustbridge_e2e::signer::rt();
    rt.block_on(async {
        let mut client = ClientBuilder::default()
            .with_oci_client_config(ClientConfig {
                protocol: ClientProtocol::Http,
                ..Default::default()
            })
            .build()
            .unwrap();
        let image_ref: OciReference = image.parse().unwrap();
        let (sig_ref, manifest_digest) = client
            .triangulate(&image_ref, &Auth::Anonymous)
            .await
            .unwrap();
        let mut layers = client
            .trusted_signature_layers(&Auth::Anonymous, &image_ref)
            .await
            .unwrap();
        let mut layer = SignatureLayer::new_unsigned(&image_ref, &manifest_digest).unwrap();
        let signer = other
            .to_sigstore_signer(&SigningScheme::ECDSA_P256_SHA256_ASN1)
            .unwrap();
        PrivateKeySigner::new_with_signer(signer)
            .add_constraint(&mut layer)
            .unwrap();
        layers.push(layer);
        client
            .push_signature(None, &Auth::Anonymous, &sig_ref, layers)
            .await
            .unwrap();
    });
    assert_eq!(sig_layers(registry.port, repo, &digest), 2);
    rt.block_on(verify(registry.port, &image, &our_pem))
        .expect("ours verifies");
    rt.block_on(verify(registry.port, &image, other_pem.as_bytes()))
        .expect("theirs verifies");

    // notary remove + publish: our layer goes, theirs stays.
    notary(&st.url, &st.ca, &trust, &["remove", &gun, "v1"]);
    notary(&st.url, &st.ca, &trust, &["publish", &gun]);
    wait_job(&st, &gun, "v1", "revoke");
    assert_eq!(sig_layers(registry.port, repo, &digest), 1);
    assert!(
        rt.block_on(verify(registry.port, &image, &our_pem))
            .is_err(),
        "our signature is gone"
    );
    rt.block_on(verify(registry.port, &image, other_pem.as_bytes()))
        .expect("the other signer's layer survives");
}

#[test]
fn the_sig_tag_goes_when_our_layer_was_the_last() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start(&dir.join("registry"));
    let repo = "sample/alone";
    let gun = format!("127.0.0.1:{}/{repo}", registry.port);
    let (digest, size) = registry.push_sample(&format!("{repo}:v1"));
    let st = start_stack(dir, registry.port, "");
    let trust = dir.join("trust");
    sign_tag(&st, &trust, &gun, "v1", size, &digest);
    wait_job(&st, &gun, "v1", "sign");
    assert_eq!(sig_layers(registry.port, repo, &digest), 1);
    notary(&st.url, &st.ca, &trust, &["remove", &gun, "v1"]);
    notary(&st.url, &st.ca, &trust, &["publish", &gun]);
    wait_job(&st, &gun, "v1", "revoke");
    assert_eq!(
        sig_layers(registry.port, repo, &digest),
        0,
        "the .sig manifest is deleted"
    );
}

#[test]
fn backfill_mirrors_1000_stored_targets_once() {
    use trustbridge_tuf::metadata::FileMeta;
    use trustbridge_tuf::{GoTime, Root, Signed, Snapshot, Targets, keyfile};
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start(&dir.join("registry"));
    let repo = "team/backfill";
    let gun = format!("127.0.0.1:{}/{repo}", registry.port);
    // A server without the bridge stores a repository with 1000 targets.
    let st = start_stack(dir, registry.port, "");
    let plain = dir.join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&st.config).unwrap()).unwrap();
    let mut without = cfg.clone();
    without.as_object_mut().unwrap().remove("trustbridge");
    std::fs::write(&st.config, serde_json::to_vec(&without).unwrap()).unwrap();
    let mut st = st;
    st.server.stop();
    st.server = start_server(
        "trustbridge-server-plain",
        dir,
        &st.config,
        st.port,
        &mut [&mut st.signer],
    );
    let trust = dir.join("trust");
    notary(&st.url, &st.ca, &trust, &["init", &gun, "-p"]);
    let get = |name: &str| https_get(&format!("{}/v2/{gun}/_trust/tuf/{name}", st.url), &st.ca).1;
    let root = Signed::<Root>::from_bytes("root", &get("root.json")).unwrap();
    let key = |role: &str| {
        let id = root.signed.keys[&root.signed.roles[role].keyids[0]]
            .canonical_id()
            .unwrap();
        let text = std::fs::read(trust.join("private").join(format!("{id}.key"))).unwrap();
        keyfile::decode(&text, trustbridge_e2e::server::CLIENT_PASS)
            .unwrap()
            .key
    };
    let mut t = Signed::<Targets>::from_bytes("targets", &get("targets.json"))
        .unwrap()
        .signed;
    t.version += 1;
    t.expires = GoTime::now().plus_years(1);
    for i in 0..1000 {
        t.targets.insert(
            format!("tag-{i}"),
            FileMeta::from_bytes(format!("image {i}").as_bytes()),
        );
    }
    let targets = Signed::sign(t, &[&key("targets")]).unwrap();
    let mut sn = Signed::<Snapshot>::from_bytes("snapshot", &get("snapshot.json"))
        .unwrap()
        .signed;
    sn.version += 1;
    sn.expires = GoTime::now().plus_years(1);
    sn.meta
        .insert("targets".into(), FileMeta::from_bytes(targets.raw()));
    let snapshot = Signed::sign(sn, &[&key("snapshot")]).unwrap();
    std::fs::write(dir.join("t.json"), targets.raw()).unwrap();
    std::fs::write(dir.join("s.json"), snapshot.raw()).unwrap();
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&st.ca)
        .arg("-F")
        .arg(format!(
            "files=@{};filename=targets",
            dir.join("t.json").display()
        ))
        .arg("-F")
        .arg(format!(
            "files=@{};filename=snapshot",
            dir.join("s.json").display()
        ))
        .arg(format!("{}/v2/{gun}/_trust/tuf/", st.url))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");

    // Backfill with the bridge configured (the server keeps running).
    let bf = dir.join("backfill.json");
    std::fs::write(&bf, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let backfill = || {
        let out = run_ok(
            "bridge backfill",
            Command::new(our_bin("trustbridge-server", "trustbridge-server"))
                .arg("--config")
                .arg(&bf)
                .args(["bridge", "backfill", "--gun", &gun]),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = backfill();
    assert!(
        first.contains("1000 new job(s), 1000 mirrored, 0 failed"),
        "{first}"
    );
    let second = backfill();
    assert!(
        second.contains("0 new job(s), 0 mirrored, 0 failed"),
        "{second}"
    );
    for i in [0, 499, 999] {
        let meta = &targets.signed.targets[&format!("tag-{i}")];
        let d = hex_of(meta.sha256().unwrap());
        assert_eq!(sig_layers(registry.port, repo, &d), 1, "tag-{i}");
    }
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn docker_trust_sign_is_mirrored() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start(&dir.join("registry"));
    let repo = "sample/docker";
    let gun = format!("127.0.0.1:{}/{repo}", registry.port);
    let (digest, size) = registry.push_sample(&format!("{repo}:v1"));
    let st = start_stack(dir, registry.port, "");
    // docker reaches the trust server by a name it must verify (see server_docker_cli).
    let server = format!("https://notary-server:{}", st.port);
    let cfg = dir.join("docker");
    let tls = cfg.join("tls").join(format!("notary-server:{}", st.port));
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(&st.ca, tls.join("ca.crt")).unwrap();
    let docker = |args: &[&str]| {
        let out = run_ok(
            &format!("docker {}", args.join(" ")),
            Command::new(require_bin("docker"))
                .args(args)
                .current_dir(&cfg)
                .env("DOCKER_CONFIG", &cfg)
                .env("DOCKER_CONTENT_TRUST_SERVER", &server)
                .env(
                    "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE",
                    trustbridge_e2e::server::CLIENT_PASS,
                )
                .env(
                    "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
                    trustbridge_e2e::server::CLIENT_PASS,
                ),
        );
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    docker(&[
        "trust",
        "key",
        "generate",
        "alice",
        "--dir",
        cfg.to_str().unwrap(),
    ]);
    docker(&[
        "trust",
        "signer",
        "add",
        "--key",
        cfg.join("alice.pub").to_str().unwrap(),
        "alice",
        &gun,
    ]);
    // The tag enters trust data in the top-level targets role (docker trust sign needs it
    // there without a daemon), then docker signs it into the releases role as alice.
    let mut n = trustbridge_e2e::server::notary_cmd(
        &server,
        &st.ca,
        &cfg.join("trust"),
        &[
            "addhash",
            &gun,
            "v1",
            &size.to_string(),
            "--sha256",
            &digest,
        ],
    );
    run_ok("notary addhash", &mut n);
    let mut n = trustbridge_e2e::server::notary_cmd(
        &server,
        &st.ca,
        &cfg.join("trust"),
        &["publish", &gun],
    );
    run_ok("notary publish", &mut n);
    wait_job(&st, &gun, "v1", "sign");
    let out = docker(&["trust", "sign", &format!("{gun}:v1")]);
    assert!(out.contains("Successfully signed"), "{out}");

    // docker resolves the tag from targets/releases now: the mirror follows (one sign for
    // releases, the targets layer revoked), leaving exactly one layer, and sigstore-rs
    // verifies it.
    let start = Instant::now();
    loop {
        let (_, body) = https_get(
            &format!("{}/_trustbridge/v1/status?gun={gun}", st.url),
            &st.ca,
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let done = |role: &str, action: &str| {
            v["targets"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["role"] == role && t["action"] == action && t["state"] == "mirrored")
        };
        if done("targets/releases", "sign") && done("targets", "revoke") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not mirrored for the releases role: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(sig_layers(registry.port, repo, &digest), 1);
    let (_, pem) = https_get(&format!("{}/_trustbridge/v1/cosign.pub", st.url), &st.ca);
    let rt = trustbridge_e2e::signer::rt();
    rt.block_on(verify(registry.port, &format!("{gun}:v1"), &pem))
        .expect("sigstore-rs verifies the mirrored docker trust signature");
}

#[test]
fn a_rewrite_sends_a_gun_to_another_registry() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start(&dir.join("registry"));
    let (digest, size) = registry.push_sample("sample/rewritten:v1");
    let gun = "dct.example/sample/rewritten";
    let st = start_stack(
        dir,
        registry.port,
        &format!(
            r#","rewrite":{{"dct.example/":"127.0.0.1:{}/"}}"#,
            registry.port
        ),
    );
    let trust = dir.join("trust");
    sign_tag(&st, &trust, gun, "v1", size, &digest);
    wait_job(&st, gun, "v1", "sign");
    let (_, pem) = https_get(&format!("{}/_trustbridge/v1/cosign.pub", st.url), &st.ca);
    let rt = trustbridge_e2e::signer::rt();
    let image = format!("127.0.0.1:{}/sample/rewritten:v1", registry.port);
    rt.block_on(verify(registry.port, &image, &pem))
        .expect("mirrored into the rewritten registry");
}

/// A tag listed in `targets` and in `targets/releases` with different digests is mirrored as
/// docker resolves it (releases first), and only that digest is signed; when releases drops
/// it, the mirror moves to the digest `targets` names.
#[test]
fn a_tag_is_mirrored_as_docker_resolves_it() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start(&dir.join("registry"));
    let repo = "team/resolved";
    let gun = format!("127.0.0.1:{}/{repo}", registry.port);
    let st = start_stack(dir, registry.port, "");
    let trust = dir.join("trust");
    let t = |args: &[&str]| trustbridge(&st.url, &st.ca, &trust, args);
    t(&["init", &gun, "-p"]);
    let prefix = dir.join("releases");
    let p = prefix.to_str().unwrap();
    t(&["key", "generate", "--role", "targets/releases", "-o", p]);
    t(&["key", "import", &format!("{p}.key")]);
    t(&[
        "delegation",
        "add",
        &gun,
        "targets/releases",
        &format!("{p}.pub"),
        "--all-paths",
        "-p",
    ]);
    let (a, b) = (
        hex_sha256(b"digest named by targets"),
        hex_sha256(b"digest named by releases"),
    );
    t(&["addhash", &gun, "v1", "100", "--sha256", &a]);
    t(&[
        "addhash",
        &gun,
        "v1",
        "100",
        "--sha256",
        &b,
        "-r",
        "targets/releases",
        "-p",
    ]);
    wait_job(&st, &gun, "v1", "sign");
    assert_eq!(sig_layers(registry.port, repo, &b), 1);
    assert_eq!(
        sig_layers(registry.port, repo, &a),
        0,
        "targets' digest is not what docker pulls"
    );

    t(&["remove", &gun, "v1", "-r", "targets/releases", "-p"]);
    wait_job(&st, &gun, "v1", "revoke");
    let start = Instant::now();
    while sig_layers(registry.port, repo, &a) != 1 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "targets' digest never mirrored"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(sig_layers(registry.port, repo, &b), 0);
}
