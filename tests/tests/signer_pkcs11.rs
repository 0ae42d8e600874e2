//! trustbridge-signer with its keys in a PKCS#11 token: Debian's SoftHSM2 2.6.1, a token of the
//! test's own, inspected with OpenSC's pkcs11-tool (an independent PKCS#11 client). The offline
//! admin CLI generates, lists and deletes keys there; Go notary-server 0.7.0 publishes through
//! the signer (its timestamp key made and used in the token); the private keys are sensitive
//! and never extractable; and the Cosign bridge signs with a token key that the real cosign
//! verifies.

use std::path::{Path, PathBuf};
use std::process::Command;

use trustbridge_e2e::bridge::{Registry, assert_cosign, sign_tag, wait_job};
use trustbridge_e2e::peers::go_server;
use trustbridge_e2e::server::{notary, start_server, write_server_config};
use trustbridge_e2e::signer::{ALIAS1_PASS, wait_grpc};
use trustbridge_e2e::{Proc, free_port, https_get, init, our_bin, require_bin, run_ok};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const LABEL: &str = "trustbridge";
const PIN: &str = "318275";

/// A SoftHSM2 token of the test's own (its own config and token directory).
struct Hsm {
    conf: PathBuf,
}

impl Hsm {
    fn init(dir: &Path) -> Hsm {
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        run_ok(
            "softhsm2-util --init-token",
            Command::new(require_bin("softhsm2-util"))
                .args(["--init-token", "--free", "--label", LABEL, "--pin", PIN])
                .args(["--so-pin", "918273"])
                .env("SOFTHSM2_CONF", &conf),
        );
        Hsm { conf }
    }

    /// A command that sees the token and its PIN (and the store's passphrase).
    fn cmd(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env("SOFTHSM2_CONF", &self.conf)
            .env("TRUSTBRIDGE_PKCS11_PIN", PIN)
            .env("NOTARY_SIGNER_ALIAS1", ALIAS1_PASS);
        c
    }

    /// pkcs11-tool's view of the token's objects.
    fn objects(&self) -> String {
        let out = run_ok(
            "pkcs11-tool --list-objects",
            self.cmd(&require_bin("pkcs11-tool"))
                .args([
                    "--module",
                    MODULE,
                    "--token-label",
                    LABEL,
                    "--login",
                    "--pin",
                    PIN,
                ])
                .arg("--list-objects"),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The private keys pkcs11-tool lists, each as its block of lines.
    fn private_keys(&self) -> Vec<String> {
        self.objects()
            .split("Private Key Object")
            .skip(1)
            .map(|b| {
                b.split("Public Key Object")
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }
}

/// `trustbridge-signer ARGS --config CONFIG`, offline; its output.
fn admin(hsm: &Hsm, config: &Path, args: &[&str]) -> String {
    let out = run_ok(
        &format!("trustbridge-signer {}", args.join(" ")),
        hsm.cmd(&our_bin("trustbridge-signer", "trustbridge-signer"))
            .args(args)
            .arg("--config")
            .arg(config),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn keys_made_and_used_in_a_softhsm_token() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let ca = certs.join("root-ca.crt");
    let hsm = Hsm::init(dir);
    let signer_port = free_port();
    let config = dir.join("signer.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"server":{{"grpc_addr":"127.0.0.1:{signer_port}","tls_cert_file":"certs/signer.crt","tls_key_file":"certs/signer.key","client_ca_file":"certs/root-ca.crt"}},
               "storage":{{"backend":"sqlite3","db_url":"keys.db","default_alias":"alias1"}},
               "pkcs11":{{"module":"{MODULE}","token_label":"{LABEL}"}}}}"#
        ),
    )
    .unwrap();

    // Offline: generate two keys in the token, list them, delete one.
    let cosign_key = admin(&hsm, &config, &["cosign-key", "generate"])
        .trim()
        .to_string();
    let spare = admin(
        &hsm,
        &config,
        &[
            "keys",
            "generate",
            "--role",
            "targets/releases",
            "--gun",
            "example.com/app",
        ],
    );
    let spare = spare.split_whitespace().last().unwrap().to_string();
    let list = admin(&hsm, &config, &["keys", "list"]);
    for id in [&cosign_key, &spare] {
        let line = list.lines().find(|l| l.starts_with(id.as_str()));
        assert!(
            line.is_some_and(|l| l.contains(" pkcs11 ")),
            "{id} is a token key in:\n{list}"
        );
    }
    assert_eq!(hsm.private_keys().len(), 2, "{}", hsm.objects());
    admin(&hsm, &config, &["keys", "delete", &spare]);
    assert_eq!(hsm.private_keys().len(), 1, "deleted in the token too");
    let out = hsm
        .cmd(&our_bin("trustbridge-signer", "trustbridge-signer"))
        .args([
            "keys",
            "generate",
            "--role",
            "timestamp",
            "--algorithm",
            "ed25519",
        ])
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ecdsa keys only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Serving: Go notary-server publishes through it; its timestamp key is made in the token.
    let mut cmd = hsm.cmd(&our_bin("trustbridge-signer", "trustbridge-signer"));
    cmd.arg("--config").arg(&config).env("RUST_LOG", "info");
    let mut signer = Proc::spawn("trustbridge-signer", cmd, dir);
    wait_grpc(&mut signer, signer_port, &certs);
    let go_port = free_port();
    let go_url = format!("https://127.0.0.1:{go_port}");
    let mut go = go_server(dir, go_port, signer_port, "");
    let gun = "example.com/hsm";
    notary(&go_url, &ca, &dir.join("trust"), &["init", gun, "-p"]);
    notary(
        &go_url,
        &ca,
        &dir.join("trust"),
        &[
            "addhash",
            gun,
            "v1",
            "10",
            "--sha256",
            &"ab".repeat(32),
            "-p",
        ],
    );
    let list = notary(&go_url, &ca, &dir.join("fresh"), &["list", gun]);
    assert!(list.contains("v1"), "{list}");
    let (code, key) = https_get(&format!("{go_url}/v2/{gun}/_trust/tuf/timestamp.key"), &ca);
    assert_eq!(code, 200);
    let key: trustbridge_tuf::PublicKey = serde_json::from_slice(&key).unwrap();
    let timestamp_key = key.id();
    let keys = admin(&hsm, &config, &["keys", "list"]);
    assert!(
        keys.lines()
            .any(|l| l.starts_with(&timestamp_key) && l.contains(" pkcs11 ")),
        "the timestamp key {timestamp_key} is a token key:\n{keys}"
    );
    go.stop();

    // The private keys never leave the token.
    let private = hsm.private_keys();
    assert_eq!(private.len(), 2, "{}", hsm.objects());
    for block in &private {
        assert!(
            block.contains("sensitive") && block.contains("never extractable"),
            "{block}"
        );
    }
    let read = hsm
        .cmd(&require_bin("pkcs11-tool"))
        .args([
            "--module",
            MODULE,
            "--token-label",
            LABEL,
            "--login",
            "--pin",
            PIN,
        ])
        .args(["--read-object", "--type", "privkey", "--label"])
        .arg(format!("trustbridge timestamp {gun}"))
        .output()
        .unwrap();
    assert!(
        !read.status.success() || read.stdout.is_empty(),
        "a token private key was read out: {}",
        String::from_utf8_lossy(&read.stdout)
    );

    // The Cosign bridge signs with the token's cosign key; the real cosign verifies.
    let registry = Registry::start(&dir.join("registry"));
    let repo = format!("127.0.0.1:{}/team/hsm", registry.port);
    let (digest, size) = registry.push_sample("team/hsm:v1");
    let port = free_port();
    let server_config = write_server_config(
        dir,
        port,
        signer_port,
        &format!(
            r#","trustbridge":{{"bridge":{{"key_id":"{cosign_key}","registries":{{"127.0.0.1:{}":{{"plain_http":true}}}}}}}}"#,
            registry.port
        ),
    );
    let server = start_server(
        "trustbridge-server",
        dir,
        &server_config,
        port,
        &mut [&mut signer],
    );
    let st = trustbridge_e2e::bridge::Stack {
        signer,
        server,
        config: server_config,
        port,
        url: format!("https://127.0.0.1:{port}"),
        ca: ca.clone(),
        key_id: cosign_key,
        signer_config: config.clone(),
    };
    sign_tag(&st, &dir.join("trust-bridge"), &repo, "v1", size, &digest);
    wait_job(&st, &repo, "v1", "sign");
    let public = st.cosign_pub(dir);
    assert_cosign(&public, &format!("{repo}:v1"), true, "signed in the token");
}
