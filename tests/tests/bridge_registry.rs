//! The Cosign bridge against a registry that needs credentials and serves TLS from a private
//! CA (Debian's docker-registry with htpasswd auth), and the dead-letter path: a job the
//! registry refuses (wrong credentials) goes `dead` at once, shows in `/metrics`, is not retried by itself,
//! and `trustbridge-server bridge retry` revives it (`bridge drop` ends one for good).
//! Signatures are checked with ring against `/_trustbridge/v1/cosign.pub`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use trustbridge_e2e::peers::docker_registry;
use trustbridge_e2e::server::{start_server, trustbridge, trustbridge_cmd, write_server_config};
use trustbridge_e2e::signer::{cosign_key_generate, start_ours, write_config};
use trustbridge_e2e::{Proc, curl_get, free_port, https_get, init, our_bin, run_ok};

const USER: &str = "bridge";
const PASS: &str = "bridge-registry-pw";

/// docker-registry on `port` with TLS (the dev server certificate) and htpasswd auth.
fn registry(dir: &Path, port: u16) -> Proc {
    let htpasswd = dir.join("registry.htpasswd");
    std::fs::write(
        &htpasswd,
        format!("{USER}:{}\n", bcrypt::hash(PASS, 5).unwrap()),
    )
    .unwrap();
    let certs = dir.join("certs");
    let p = docker_registry(
        dir,
        port,
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            certs.join("server.crt").display(),
            certs.join("server.key").display()
        ),
        &format!(
            "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
            htpasswd.display()
        ),
    );
    assert_eq!(
        curl(dir, port, "/v2/", None).0,
        200,
        "registry with TLS and auth: {}",
        p.log()
    );
    p
}

/// GET from the registry with the credentials over TLS; (status, body).
fn curl(dir: &Path, port: u16, path: &str, accept: Option<&str>) -> (u16, Vec<u8>) {
    let ca = dir.join("certs/root-ca.crt");
    let user = format!("{USER}:{PASS}");
    let header = accept.map(|a| format!("Accept: {a}"));
    let mut extra = vec!["--cacert", ca.to_str().unwrap(), "-u", &user];
    if let Some(h) = &header {
        extra.extend(["-H", h]);
    }
    curl_get(&format!("https://127.0.0.1:{port}{path}"), &extra)
}

struct Stack {
    _signer: Proc,
    server: Option<Proc>,
    config: PathBuf,
    url: String,
    ca: PathBuf,
    port: u16,
    signer_port: u16,
    key_id: String,
}

fn stack(dir: &Path) -> Stack {
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let signer_port = free_port();
    let sc = write_config(dir, signer_port, "sqlite3");
    let key_id = cosign_key_generate(&sc);
    let signer = start_ours("trustbridge-signer", &sc, &certs, signer_port);
    let port = free_port();
    Stack {
        _signer: signer,
        server: None,
        config: dir.join("server.json"),
        url: format!("https://127.0.0.1:{port}"),
        ca: certs.join("root-ca.crt"),
        port,
        signer_port,
        key_id,
    }
}

/// (Re)start the server with the bridge on for the registry, with `password`.
fn serve(st: &mut Stack, dir: &Path, registry_port: u16, password: &str) {
    if let Some(p) = &mut st.server {
        p.stop();
    }
    write_server_config(
        dir,
        st.port,
        st.signer_port,
        &format!(
            r#","trustbridge":{{"bridge":{{"key_id":"{}","max_attempts":2,"max_backoff_seconds":1,"registries":{{"127.0.0.1:{registry_port}":{{"username":"{USER}","password":"{password}","ca_file":"certs/root-ca.crt"}}}}}}}}"#,
            st.key_id
        ),
    );
    st.server = Some(start_server(
        "trustbridge-server",
        dir,
        &st.config,
        st.port,
        &mut [],
    ));
}

fn status(st: &Stack, gun: &str) -> serde_json::Value {
    let (code, body) = https_get(
        &format!("{}/_trustbridge/v1/status?gun={gun}", st.url),
        &st.ca,
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn wait_state(st: &Stack, gun: &str, tag: &str, state: &str) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let v = status(st, gun);
        if let Some(t) = v["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tag"] == tag && t["state"] == state)
        {
            return t.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{tag} never {state}: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sign(st: &Stack, trust: &Path, gun: &str, tag: &str) -> String {
    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, tag.as_bytes()));
    trustbridge(
        &st.url,
        &st.ca,
        trust,
        &["addhash", gun, tag, "123", "--sha256", &digest, "-p"],
    );
    digest
}

/// The bridge's layer for `digest` verifies with the served cosign.pub.
fn assert_signed(st: &Stack, dir: &Path, registry_port: u16, repo: &str, digest: &str) {
    let gun = format!("127.0.0.1:{registry_port}/{repo}");
    let (code, m) = curl(
        dir,
        registry_port,
        &format!("/v2/{repo}/manifests/sha256-{digest}.sig"),
        Some("application/vnd.oci.image.manifest.v1+json"),
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&m));
    let m: serde_json::Value = serde_json::from_slice(&m).unwrap();
    let layer = &m["layers"][0];
    let (_, payload) = curl(
        dir,
        registry_port,
        &format!("/v2/{repo}/blobs/{}", layer["digest"].as_str().unwrap()),
        None,
    );
    let sig = base64::engine::general_purpose::STANDARD
        .decode(
            layer["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let (_, pem_text) = https_get(&format!("{}/_trustbridge/v1/cosign.pub", st.url), &st.ca);
    let spki = trustbridge_client::cosign::public_key(&pem_text)
        .unwrap()
        .public;
    // Checked with ring directly, not our verifier: a P-256 SubjectPublicKeyInfo ends with
    // the 65-byte uncompressed point.
    let point = &spki[spki.len() - 65..];
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
        .verify(&payload, &sig)
        .expect("the mirrored signature verifies with cosign.pub");
    let p: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        p["critical"]["image"]["docker-manifest-digest"],
        format!("sha256:{digest}")
    );
    // The payload names the role and the keys that signed it.
    assert_eq!(p["optional"]["dev.trustbridge/notary-role"], "targets");
    let (_, t) = https_get(
        &format!("{}/v2/{gun}/_trust/tuf/targets.json", st.url),
        &st.ca,
    );
    let t: serde_json::Value = serde_json::from_slice(&t).unwrap();
    let signer = t["signatures"][0]["keyid"].as_str().unwrap();
    assert_eq!(
        p["optional"]["dev.trustbridge/notary-signers"], signer,
        "{p}"
    );
}

#[test]
fn credentials_and_a_private_ca_then_dead_letter_and_retry() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut st = stack(dir);
    let rport = free_port();
    let _registry = registry(dir, rport);
    let repo = "team/app";
    let gun = format!("127.0.0.1:{rport}/{repo}");
    let trust = dir.join("trust");

    // The right credentials and CA: mirrored.
    serve(&mut st, dir, rport, PASS);
    trustbridge(&st.url, &st.ca, &trust, &["init", &gun, "-p"]);
    let d1 = sign(&st, &trust, &gun, "v1");
    wait_state(&st, &gun, "v1", "mirrored");
    assert_signed(&st, dir, rport, repo, &d1);

    // Our client reads the same registry as docker would: credentials from `docker login`'s
    // config.json, the private CA with --registry-ca. Without the credentials, one line naming
    // `docker login`.
    let image = format!("{gun}:v1");
    let registry_ca = dir.join("certs/root-ca.crt");
    let docker = dir.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let verify_both = |docker_config: &Path| {
        trustbridge_cmd(
            &st.url,
            &st.ca,
            &trust,
            &[
                "verify-both",
                &image,
                "--registry-ca",
                registry_ca.to_str().unwrap(),
            ],
        )
        .env("DOCKER_CONFIG", docker_config)
        .output()
        .unwrap()
    };
    let out = verify_both(&docker);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("docker login"),
        "{err}"
    );
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"127.0.0.1:{rport}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    let out = verify_both(&docker);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&format!("OK: DCT and Cosign agree on sha256:{d1}")),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A wrong password: the registry refuses for good, so the job is dead at once (no
    // retries: waiting does not fix credentials), with the registry's refusal kept.
    serve(&mut st, dir, rport, "wrong-password");
    let d2 = sign(&st, &trust, &gun, "v2");
    let dead = wait_state(&st, &gun, "v2", "dead");
    assert_eq!(dead["attempts"], 1, "{dead}");
    let err = dead["last_error"].as_str().unwrap().to_lowercase();
    assert!(
        err.contains("401") && err.contains("authentication required"),
        "the registry's own refusal: {err}"
    );
    let d3 = sign(&st, &trust, &gun, "v3");
    let v3 = wait_state(&st, &gun, "v3", "dead");
    let start = Instant::now();
    loop {
        let (_, m) = https_get(&format!("{}/metrics", st.url), &st.ca);
        if String::from_utf8_lossy(&m)
            .contains(r#"trustbridge_bridge_jobs_by_state{state="dead"} 2"#)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{}",
            String::from_utf8_lossy(&m)
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Fixed credentials: dead jobs wait for an admin. Drop v3, retry the rest.
    serve(&mut st, dir, rport, PASS);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(wait_state(&st, &gun, "v2", "dead")["attempts"], 1);
    let admin = |args: &[&str]| {
        let out = run_ok(
            "trustbridge-server bridge",
            Command::new(our_bin("trustbridge-server", "trustbridge-server"))
                .arg("--config")
                .arg(&st.config)
                .arg("bridge")
                .args(args),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let id = v3["id"].as_i64().unwrap().to_string();
    assert!(admin(&["drop", "--job", &id]).contains("dropped"));
    assert!(admin(&["retry", "--gun", &gun]).contains("requeued 1 job(s)"));
    wait_state(&st, &gun, "v2", "mirrored");
    assert_signed(&st, dir, rport, repo, &d2);
    assert_eq!(wait_state(&st, &gun, "v3", "dropped")["state"], "dropped");
    let (code, _) = curl(
        dir,
        rport,
        &format!("/v2/{repo}/manifests/sha256-{d3}.sig"),
        Some("application/vnd.oci.image.manifest.v1+json"),
    );
    assert_eq!(code, 404, "a dropped job pushes nothing");
}
