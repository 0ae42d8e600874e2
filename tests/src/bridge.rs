//! The Cosign bridge's test setup, shared by the e2e tests here and the sigstore-rs tests:
//! Debian's docker-registry with a sample image (../shared/peers/registry.sh), a stack with
//! the bridge on for it, a tag signed with the real notary client, waiting for jobs, the real
//! cosign CLI, and raw updates for repositories built by hand.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::server::{notary, start_server, write_server_config};
use crate::signer::{cosign_key_generate, start_ours, write_config};
use crate::{free_port, https_get, require_bin, run_ok};

/// A registry on loopback (plain HTTP, no auth), stopped on drop: Debian's docker-registry
/// 2.8 (../shared/peers/registry.sh), which has no referrers API, or ferro-oci-server, which
/// has it.
pub struct Registry {
    pub dir: PathBuf,
    pub port: u16,
    /// ferro-oci-server's process (None: registry.sh's docker-registry).
    api: Option<crate::Proc>,
}

pub fn peers_script() -> PathBuf {
    crate::shared_dir().join("peers/registry.sh")
}

impl Registry {
    pub fn start(dir: &Path) -> Registry {
        require_bin("docker-registry");
        require_bin("skopeo");
        let port = free_port();
        run_ok(
            "registry.sh start",
            Command::new("bash")
                .arg(peers_script())
                .arg("start")
                .arg(dir)
                .env("REGISTRY_PORT", port.to_string()),
        );
        Registry {
            dir: dir.to_path_buf(),
            port,
            api: None,
        }
    }

    /// A registry with the OCI 1.1 referrers API: ferro-oci-server 1.0.0 (crates.io, installed
    /// by scripts/test.sh under `$TRUSTBRIDGE_PEERS/crates`), blobs under `dir`. Debian's
    /// docker-registry 2.8 has no such API and zot or distribution 3 are not packaged.
    pub fn start_with_referrers_api(dir: &Path) -> Registry {
        let bin = crate::peer("crates/bin", "ferro-oci-server");
        std::fs::create_dir_all(dir.join("blobs")).unwrap();
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.env("FERRO_OCI_LISTEN", format!("127.0.0.1:{port}"))
            .env("FERRO_OCI_STORAGE_DIR", dir.join("blobs"))
            .env("RUST_LOG", "warn");
        let proc = crate::Proc::spawn("ferro-oci-server", cmd, dir);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "ferro-oci-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            dir: dir.to_path_buf(),
            port,
            api: Some(proc),
        }
    }

    /// The repository's tags, as `GET /v2/<repo>/tags/list` lists them.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let out = run_ok(
            "curl tags/list",
            Command::new("curl").args([
                "-fsS",
                &format!("http://127.0.0.1:{}/v2/{repo}/tags/list", self.port),
            ]),
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Push the peers' sample image to `repo:tag`; returns (digest hex, size).
    pub fn push_sample(&self, repo_tag: &str) -> (String, u64) {
        let out = run_ok(
            "registry.sh push-sample",
            Command::new("bash")
                .arg(peers_script())
                .arg("push-sample")
                .arg(&self.dir)
                .arg(repo_tag)
                .env("REGISTRY_PORT", self.port.to_string()),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap();
        let f: Vec<&str> = line.split_whitespace().collect();
        (
            f[1].trim_start_matches("sha256:").to_string(),
            f[2].parse().unwrap(),
        )
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if self.api.is_some() {
            return; // the Proc stops ferro-oci-server
        }
        let _ = Command::new("bash")
            .arg(peers_script())
            .arg("stop")
            .arg(&self.dir)
            .env("REGISTRY_PORT", self.port.to_string())
            .status();
    }
}

/// trustbridge-signer (with a bridge key) and trustbridge-server with the bridge on for the
/// registry on `registry_port`.
pub struct Stack {
    pub signer: crate::Proc,
    pub server: crate::Proc,
    pub config: PathBuf,
    pub port: u16,
    pub url: String,
    pub ca: PathBuf,
    /// The bridge key's ID in the signer.
    pub key_id: String,
    /// The signer's config (for its offline admin commands).
    pub signer_config: PathBuf,
}

pub fn start_stack(dir: &Path, registry_port: u16, extra: &str) -> Stack {
    start_bridge(
        dir,
        &format!(r#"{extra},"registries":{{"127.0.0.1:{registry_port}":{{"plain_http":true}}}}"#),
    )
}

/// As [`start_stack`], with `fields` (JSON members after `key_id`, each with a leading comma)
/// as the rest of the bridge's config.
pub fn start_bridge(dir: &Path, fields: &str) -> Stack {
    start_bridge_with(dir, fields, "")
}

/// As [`start_bridge`], with `sections` (JSON members, each with a leading comma) beside
/// `bridge` in the `trustbridge` section (`,"migration":{...}`).
pub fn start_bridge_with(dir: &Path, fields: &str, sections: &str) -> Stack {
    start_bridge_keys(dir, fields, sections, |_| String::new())
}

/// As [`start_bridge`] with Notation signing on: the signer's Notation key is generated
/// offline for `subject` before it starts. With `leaf_seconds`, the leaf lives that long and
/// the serving signer looks at its expiry every second.
pub fn start_bridge_notation(
    dir: &Path,
    fields: &str,
    subject: &str,
    leaf_seconds: Option<u64>,
) -> Stack {
    start_bridge_notation_key(dir, fields, |sc| {
        let secs = leaf_seconds.map(|n| n.to_string());
        let mut extra = vec![];
        if let Some(n) = &secs {
            extra = vec!["--seconds", n.as_str()];
            let mut cfg: serde_json::Value =
                serde_json::from_slice(&std::fs::read(sc).unwrap()).unwrap();
            cfg["notation"] = serde_json::json!({"renew_check_seconds": 1});
            std::fs::write(sc, serde_json::to_vec(&cfg).unwrap()).unwrap();
        }
        crate::signer::notation_key_generate(sc, subject, &extra)
    })
}

/// As [`start_bridge`] with Notation signing on for the key `make_key` puts in the signer's
/// store (given the signer's config) before it starts; `make_key` returns its key ID.
pub fn start_bridge_notation_key(
    dir: &Path,
    fields: &str,
    make_key: impl FnOnce(&Path) -> String,
) -> Stack {
    start_bridge_keys(dir, fields, "", |sc| {
        let id = make_key(sc);
        format!(r#","notation":{{"key_id":"{id}"}}"#)
    })
}

/// The stack, with `more_keys` making further keys in the signer's store (given its config)
/// and returning bridge fields for them.
fn start_bridge_keys(
    dir: &Path,
    fields: &str,
    sections: &str,
    more_keys: impl FnOnce(&Path) -> String,
) -> Stack {
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let signer_port = free_port();
    let sc = write_config(dir, signer_port, "sqlite3");
    let key_id = cosign_key_generate(&sc);
    let fields = format!("{fields}{}", more_keys(&sc));
    let mut signer = start_ours("trustbridge-signer", &sc, &certs, signer_port);
    let port = free_port();
    let config = write_server_config(
        dir,
        port,
        signer_port,
        &format!(r#","trustbridge":{{"bridge":{{"key_id":"{key_id}"{fields}}}{sections}}}"#),
    );
    let server = start_server("trustbridge-server", dir, &config, port, &mut [&mut signer]);
    Stack {
        signer,
        server,
        config,
        port,
        url: format!("https://127.0.0.1:{port}"),
        ca: certs.join("root-ca.crt"),
        key_id,
        signer_config: sc,
    }
}

impl crate::Endpoint for Stack {
    fn url(&self) -> &str {
        &self.url
    }
    fn ca(&self) -> &Path {
        &self.ca
    }
}

impl Stack {
    /// Start the server again on its config, port and signer, once the test has stopped or
    /// killed it.
    pub fn start_server_again(&mut self) {
        let dir = self
            .config
            .parent()
            .expect("the config lies in the stack's directory");
        self.server = crate::server::start_server(
            "trustbridge-server",
            dir,
            &self.config,
            self.port,
            &mut [&mut self.signer],
        );
    }

    /// `/_trustbridge/v1/cosign.pub`, written to `dir/cosign.pub` for `cosign verify --key`.
    pub fn cosign_pub(&self, dir: &Path) -> PathBuf {
        let (code, pem) = https_get(
            &format!("{}/_trustbridge/v1/cosign.pub", self.url),
            &self.ca,
        );
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&pem));
        let path = dir.join("cosign.pub");
        std::fs::write(&path, &pem).unwrap();
        path
    }
}

/// A status row of `gun`'s `tag` (its newest job per role) that `done` accepts, waiting 30 s
/// at most.
pub fn wait_status(
    st: &Stack,
    gun: &str,
    tag: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (_, body) = https_get(
            &format!("{}/_trustbridge/v1/status?gun={gun}", st.url),
            &st.ca,
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if let Some(t) = v["targets"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["tag"] == tag && done(t)))
        {
            return t.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{gun}:{tag} did not reach the state asked for: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The real notary client: init `gun` (publishing), add `tag` for the image digest, publish.
pub fn sign_tag(st: &Stack, trust: &Path, gun: &str, tag: &str, size: u64, digest: &str) {
    notary(&st.url, &st.ca, trust, &["init", gun, "-p"]);
    let size = size.to_string();
    notary(
        &st.url,
        &st.ca,
        trust,
        &["addhash", gun, tag, &size, "--sha256", digest],
    );
    notary(&st.url, &st.ca, trust, &["publish", gun]);
}

/// Wait until a job with `action` for `gun`'s `tag` is mirrored.
pub fn wait_job(st: &Stack, gun: &str, tag: &str, action: &str) {
    wait_status(st, gun, tag, |t| {
        t["action"] == action && t["state"] == "mirrored"
    });
}

/// The number of layers in the `.sig` manifest for `digest` (0 if there is none).
pub fn sig_layers(registry_port: u16, repo: &str, digest: &str) -> usize {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
        ])
        .arg(format!(
            "http://127.0.0.1:{registry_port}/v2/{repo}/manifests/sha256-{digest}.sig"
        ))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["layers"].as_array().map_or(0, |a| a.len())
}

/// The real cosign of a Debian suite (`sid`: 3.1.1, `trixie`: 2.5.0). Missing fails the test:
/// scripts/test.sh installs both with ../shared/peers/debian-extra.sh.
pub fn cosign(suite: &str) -> PathBuf {
    crate::peer(suite, "cosign")
}

/// `cosign verify` of `image` with `key`, no transparency log, plain HTTP; whether it passed,
/// and what it printed.
pub fn cosign_verify(suite: &str, key: &Path, image: &str, extra: &[&str]) -> (bool, String) {
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
pub fn assert_cosign(key: &Path, image: &str, want: bool, why: &str) {
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

/// POST an update (multipart, one part per role); (status, body).
pub fn post(st: &impl crate::Endpoint, gun: &str, parts: &[(&str, Vec<u8>)]) -> (u16, String) {
    let rt = crate::signer::rt();
    let ca = std::fs::read(st.ca()).unwrap();
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
            .post(format!("{}/v2/{gun}/_trust/tuf/", st.url()))
            .multipart(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    })
}

/// A server key of `gun` (`GET {role}.key`: made by the signer for that GUN and role).
pub fn server_key(st: &impl crate::Endpoint, gun: &str, role: &str) -> trustbridge_tuf::PublicKey {
    let (code, body) = https_get(
        &format!("{}/v2/{gun}/_trust/tuf/{role}.key", st.url()),
        st.ca(),
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}
