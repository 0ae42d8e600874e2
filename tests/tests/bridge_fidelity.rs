//! The bridge's rule, checked with the real `cosign` CLI (Debian's cosign 3.1.1 from sid and
//! 2.5.0 from trixie, installed by scripts/test.sh): a tag is signed on the Cosign side iff a
//! fresh DCT client resolves it to that digest. Each step changes DCT's answer the way users
//! do (sign, move a tag into a delegation, rotate the delegation's signer, delete the
//! repository) and then asks a fresh notary client and cosign, for the `.sig` layout and cosign
//! v3's bundle, whether they agree.

use std::path::{Path, PathBuf};
use std::process::Command;

use trustbridge_e2e::bridge::{
    Registry, Stack, sig_layers, sign_tag, start_stack, wait_job, wait_status,
};
use trustbridge_e2e::server::{delegation_cert, notary, notary_with_input};
use trustbridge_e2e::{https_get, init, run_ok};

/// The real cosign of a Debian suite (`sid`: 3.1.1, `trixie`: 2.5.0). Missing fails the test:
/// scripts/test.sh installs both with ../shared/peers/debian-extra.sh.
fn cosign(suite: &str) -> PathBuf {
    let dir = std::env::var_os("TRUSTBRIDGE_PEERS")
        .map_or_else(|| PathBuf::from("/usr/local/lib/peers"), PathBuf::from);
    let p = dir.join(suite).join("cosign");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/test.sh (it fetches cosign with shared/peers/debian-extra.sh)",
        p.display()
    );
    p
}

/// `cosign verify` of `image` with `key`, no transparency log, plain HTTP; whether it passed,
/// and what it printed.
fn cosign_verify(suite: &str, key: &Path, image: &str, extra: &[&str]) -> (bool, String) {
    let out = Command::new(cosign(suite))
        .args(["verify", "--key"])
        .arg(key)
        .args([
            "--insecure-ignore-tlog=true",
            "--allow-http-registry=true",
            "--output",
            "json",
        ])
        .args(extra)
        .arg(image)
        .env("HOME", key.parent().unwrap())
        .env("SIGSTORE_NO_CACHE", "true")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every way we ask cosign: 2.5.0 on the legacy `.sig`, 3.1.1 on the legacy `.sig`, and 3.1.1
/// on cosign v3's bundle (its default). All must give the same answer, `want`.
fn assert_cosign(key: &Path, image: &str, want: bool, why: &str) {
    for (suite, extra) in [
        ("trixie", &[][..]),
        ("sid", &["--new-bundle-format=false"][..]),
        ("sid", &["--new-bundle-format=true"][..]),
    ] {
        let (ok, text) = cosign_verify(suite, key, image, extra);
        assert_eq!(
            ok,
            want,
            "cosign ({suite} {extra:?}) on {image}: expected {}, {why}\n{text}",
            if want { "accepted" } else { "refused" }
        );
    }
}

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
    let (_, pem) = https_get(&format!("{}/_trustbridge/v1/cosign.pub", st.url), &st.ca);
    let key = dir.join("cosign.pub");
    std::fs::write(&key, &pem).unwrap();
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

/// POST an update (multipart, one part per role); (status, body).
fn post(st: &Stack, gun: &str, parts: &[(&str, Vec<u8>)]) -> (u16, String) {
    let rt = trustbridge_e2e::signer::rt();
    let ca = std::fs::read(&st.ca).unwrap();
    rt.block_on(async {
        let c = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .build()
            .unwrap();
        let mut form = reqwest::multipart::Form::new();
        for (role, data) in parts {
            form = form.part(
                "files",
                reqwest::multipart::Part::bytes(data.clone())
                    .file_name(role.to_string())
                    .mime_str("application/octet-stream")
                    .unwrap(),
            );
        }
        let r = c
            .post(format!("{}/v2/{gun}/_trust/tuf/", st.url))
            .multipart(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    })
}

/// A server key of `gun` (`GET {role}.key`: made by the signer for that GUN and role).
fn server_key(st: &Stack, gun: &str, role: &str) -> trustbridge_tuf::PublicKey {
    let (code, body) = https_get(
        &format!("{}/v2/{gun}/_trust/tuf/{role}.key", st.url),
        &st.ca,
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// A new repository's first upload (root + targets), with `timestamp` as its timestamp key
/// and the GUN's own server-held snapshot key.
fn first_upload(
    st: &Stack,
    gun: &str,
    timestamp: trustbridge_tuf::PublicKey,
) -> Vec<(&'static str, Vec<u8>)> {
    use trustbridge_tuf::{GoTime, KeyType, PrivateKey, Root, Signed, Targets, x509};
    let snapshot = server_key(st, gun, "snapshot");
    let root_key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
    let cert = x509::generate_root_certificate(gun, &root_key, 10).unwrap();
    let targets_key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
    let root = Root::initial([
        ("root", cert.clone()),
        ("targets", targets_key.public_key().clone()),
        ("snapshot", snapshot),
        ("timestamp", timestamp),
    ]);
    let root = Signed::sign_with_ids(root, vec![(cert.id(), &root_key)]).unwrap();
    let targets = Targets {
        type_: "Targets".into(),
        delegations: Default::default(),
        expires: GoTime::now().plus_years(3),
        targets: Default::default(),
        version: 1,
    };
    let targets = Signed::sign(targets, &[&targets_key]).unwrap();
    vec![
        ("root", root.raw().to_vec()),
        ("targets", targets.raw().to_vec()),
    ]
}

/// The server signs a repository's timestamp only with a key the signer made for that
/// repository's timestamp: a root naming the Cosign bridge key, or another GUN's timestamp
/// key, is refused (notary's 400 INVALID_UPDATE), and nothing is stored.
#[test]
fn server_keys_sign_only_their_own_repository_and_role() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let st = trustbridge_e2e::bridge::start_bridge(dir, r#","allow_loopback":true"#);
    let (_, pem) = https_get(&format!("{}/_trustbridge/v1/cosign.pub", st.url), &st.ca);
    let spki = pem::parse(&pem).unwrap().into_contents();
    let bridge = trustbridge_tuf::PublicKey::new(trustbridge_tuf::KeyType::Ecdsa, spki);
    assert_eq!(bridge.id(), st.key_id, "the bridge key as a TUF key");

    // Another repository's timestamp key, and the bridge key, may not sign this one.
    let a_timestamp = server_key(&st, "example.com/a", "timestamp");
    for (name, key) in [
        ("the bridge key", bridge),
        ("example.com/a's key", a_timestamp),
    ] {
        let (code, body) = post(
            &st,
            "example.com/b",
            &first_upload(&st, "example.com/b", key),
        );
        assert_eq!(code, 400, "a root naming {name} as timestamp key: {body}");
        assert!(body.contains("INVALID_UPDATE"), "{name}: {body}");
        let (code, _) = https_get(
            &format!("{}/v2/example.com/b/_trust/tuf/root.json", st.url),
            &st.ca,
        );
        assert_eq!(code, 404, "nothing stored after {name} was refused");
    }
    // Its own timestamp key works.
    let own = server_key(&st, "example.com/b", "timestamp");
    let (code, body) = post(
        &st,
        "example.com/b",
        &first_upload(&st, "example.com/b", own),
    );
    assert_eq!(code, 200, "{body}");
}

/// A registry on loopback that misbehaves in one way, until dropped.
struct Hostile {
    port: u16,
    _thread: std::thread::JoinHandle<()>,
}

#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Accepts connections and never answers.
    Silent,
    /// Answers every request with a 1 GiB body.
    Huge,
    /// Answers every request 403 DENIED.
    Forbidden,
}

impl Hostile {
    fn start(how: Misbehaviour) -> Hostile {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                match how {
                    Misbehaviour::Silent => held.push(conn),
                    Misbehaviour::Huge | Misbehaviour::Forbidden => {
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 16384];
                            // One request per connection: read its head, answer, close.
                            let _ = conn.read(&mut buf);
                            let _ = match how {
                                Misbehaviour::Forbidden => {
                                    let body = r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
                                    conn.write_all(format!("HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
                                }
                                _ => {
                                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 1073741824\r\nConnection: close\r\n\r\n");
                                    let zeros = vec![b' '; 1 << 20];
                                    (0..1024).try_for_each(|_| conn.write_all(&zeros))
                                }
                            };
                        });
                    }
                }
            }
        });
        Hostile {
            port,
            _thread: thread,
        }
    }
}

/// Peak resident memory of a process (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024
}

/// One registry that never answers, one that sends a 1 GiB body, one that refuses (403) and
/// one the config does not name: a good registry's tag is still mirrored at once, the refusal
/// is dead after one attempt with the registry's message, the unnamed one is `not-configured`
/// (never contacted), the huge answer is cut off, and the server's memory stays small.
#[test]
fn hostile_registries_delay_only_their_own_jobs() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start(&dir.join("registry"));
    let (digest, size) = registry.push_sample("team/good:v1");
    let silent = Hostile::start(Misbehaviour::Silent);
    let huge = Hostile::start(Misbehaviour::Huge);
    let forbidden = Hostile::start(Misbehaviour::Forbidden);
    let unnamed = Hostile::start(Misbehaviour::Forbidden);
    let plain = |port: u16| format!(r#""127.0.0.1:{port}":{{"plain_http":true}}"#);
    let st = trustbridge_e2e::bridge::start_bridge(
        dir,
        &format!(
            r#","max_backoff_seconds":1,"registries":{{{},{},{},{}}}"#,
            plain(registry.port),
            plain(silent.port),
            plain(huge.port),
            plain(forbidden.port)
        ),
    );
    let trust = dir.join("owner");
    let gun = |port: u16, name: &str| format!("127.0.0.1:{port}/team/{name}");
    // The hostile ones first: on a bridge that delivers one job at a time, they would stall
    // the good registry's job.
    for (port, name) in [
        (silent.port, "silent"),
        (huge.port, "huge"),
        (forbidden.port, "forbidden"),
        (unnamed.port, "unnamed"),
    ] {
        sign_tag(&st, &trust, &gun(port, name), "v1", size, &digest);
    }
    sign_tag(
        &st,
        &trust,
        &gun(registry.port, "good"),
        "v1",
        size,
        &digest,
    );
    let good = trustbridge_e2e::bridge::wait_status(&st, &gun(registry.port, "good"), "v1", |t| {
        t["state"] == "mirrored"
    });
    assert_eq!(good["action"], "sign");

    let refused =
        trustbridge_e2e::bridge::wait_status(&st, &gun(forbidden.port, "forbidden"), "v1", |t| {
            t["state"] != "pending"
        });
    assert_eq!(refused["state"], "dead", "a 403 is final: {refused}");
    assert_eq!(refused["attempts"], 1, "{refused}");
    assert!(
        refused["last_error"].as_str().unwrap().contains("denied"),
        "the registry's message is kept: {refused}"
    );
    let unnamed_job =
        trustbridge_e2e::bridge::wait_status(&st, &gun(unnamed.port, "unnamed"), "v1", |t| {
            t["state"] != "pending"
        });
    assert_eq!(unnamed_job["state"], "not-configured", "{unnamed_job}");
    assert!(
        unnamed_job["last_error"]
            .as_str()
            .unwrap()
            .contains("trustbridge.bridge.registries"),
        "the fix is named: {unnamed_job}"
    );
    let huge_job = trustbridge_e2e::bridge::wait_status(&st, &gun(huge.port, "huge"), "v1", |t| {
        t["state"] == "failed"
    });
    assert!(
        huge_job["last_error"]
            .as_str()
            .unwrap()
            .contains("larger than"),
        "{huge_job}"
    );
    let (_, metrics) = https_get(&format!("{}/metrics", st.url), &st.ca);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(r#"trustbridge_bridge_jobs_by_state{state="not-configured"} 1"#),
        "{metrics}"
    );
    let rss = peak_rss_mib(st.server.id());
    assert!(rss < 200, "peak RSS {rss} MiB after a 1 GiB answer");
    let silent_job =
        trustbridge_e2e::bridge::wait_status(&st, &gun(silent.port, "silent"), "v1", |_| true);
    assert_ne!(silent_job["state"], "mirrored", "{silent_job}");
}

/// An import whose targets are signed by a key the root never named: on a server that only
/// checked shapes, it was stored and its tag mirrored with the forger's key as "signer".
/// The server verifies the history itself: refused, nothing stored, nothing mirrored.
#[test]
fn imported_histories_are_verified_before_anything_is_stored() {
    use base64::Engine as _;
    use trustbridge_tuf::metadata::FileMeta;
    use trustbridge_tuf::{GoTime, KeyType, PrivateKey, Root, Signed, Targets, Timestamp, x509};
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let st = trustbridge_e2e::bridge::start_bridge(dir, r#","allow_loopback":true"#);
    let gun = "127.0.0.1:1/team/forged";
    let k = || PrivateKey::generate(KeyType::Ecdsa).unwrap();
    let (root_key, targets_key, snapshot_key, timestamp_key, forger) = (k(), k(), k(), k(), k());
    let cert = x509::generate_root_certificate(gun, &root_key, 10).unwrap();
    let root = Root::initial([
        ("root", cert.clone()),
        ("targets", targets_key.public_key().clone()),
        ("snapshot", snapshot_key.public_key().clone()),
        ("timestamp", timestamp_key.public_key().clone()),
    ]);
    let root = Signed::sign_with_ids(root, vec![(cert.id(), &root_key)]).unwrap();
    let targets = Targets {
        type_: "Targets".into(),
        delegations: Default::default(),
        expires: GoTime::now().plus_years(3),
        targets: [("v1".to_string(), FileMeta::from_bytes(b"image"))].into(),
        version: 1,
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let import = |targets_by: &PrivateKey| {
        let targets = Signed::sign(targets.clone(), &[targets_by]).unwrap();
        let ts = Timestamp {
            type_: "Timestamp".into(),
            expires: GoTime::now().plus_years(1),
            meta: Default::default(),
            version: 1,
        };
        let ts = Signed::sign(ts, &[&timestamp_key]).unwrap();
        let body = serde_json::json!({"files": [
            {"role": "root", "version": 1, "data": b64.encode(root.raw())},
            {"role": "targets", "version": 1, "data": b64.encode(targets.raw())},
            {"role": "timestamp", "version": 1, "data": b64.encode(ts.raw())},
        ]});
        let out = Command::new("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
            .arg(&st.ca)
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(body.to_string())
            .arg(format!("{}/_trustbridge/v1/import/{gun}", st.url))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.trim().to_string(), body.to_string())
    };
    let (code, body) = import(&forger);
    assert_eq!(code, "400", "a forged targets file: {body}");
    assert!(
        body.contains("targets"),
        "the refusal names the role: {body}"
    );
    let (code, _) = https_get(&format!("{}/v2/{gun}/_trust/tuf/root.json", st.url), &st.ca);
    assert_eq!(code, 404, "nothing stored");
    let (_, status) = https_get(
        &format!("{}/_trustbridge/v1/status?gun={gun}", st.url),
        &st.ca,
    );
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(
        status["targets"],
        serde_json::json!([]),
        "nothing mirrored: {status}"
    );
    // The same history, signed as the root says, is taken, and its tag queued for mirroring.
    let (code, body) = import(&targets_key);
    assert_eq!(code, "200", "{body}");
    let job = trustbridge_e2e::bridge::wait_status(&st, gun, "v1", |_| true);
    assert_eq!(job["signers"], targets_key.id(), "{job}");
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
    let (_, pem) = https_get(&format!("{}/_trustbridge/v1/cosign.pub", st.url), &st.ca);
    let key = dir.join("cosign.pub");
    std::fs::write(&key, &pem).unwrap();
    let trust = dir.join("owner");
    sign_tag(&st, &trust, &gun, "v1", s1, &d1);
    wait_job(&st, &gun, "v1", "sign");
    let first = wait_status(&st, &gun, "v1", |t| t["verified_at"].is_string());
    assert_eq!(first["drift"], false, "{first}");
    assert_eq!(first["registry_digest"], format!("sha256:{d1}"));

    // Someone deletes our signature manifest: the next pass pushes it again.
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
    let (_, pem) = https_get(&format!("{}/_trustbridge/v1/cosign.pub", st.url), &st.ca);
    let key = dir.join("cosign.pub");
    std::fs::write(&key, &pem).unwrap();
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
