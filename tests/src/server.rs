//! Helpers to run trustbridge-server (with a signer) and drive the real notary client at it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::signer::{start_ours as start_signer, write_config as write_signer_config};
use crate::{Proc, free_port, our_bin, require_bin, run_ok, wait_ok};

pub const CLIENT_PASS: &str = "e2e-client-passphrase";

/// docker CLI 28 (`docker trust`, no daemon) with config directory `config` against the notary
/// server `server` (reached by the name `notary-server`, so docker checks TLS for real against
/// `config/tls/<host:port>/ca.crt`), passphrases [`CLIENT_PASS`]; stdout then stderr.
pub fn docker_trust(config: &Path, server: &str, args: &[&str]) -> String {
    let out = run_ok(
        &format!("docker {}", args.join(" ")),
        Command::new(require_bin("docker"))
            .args(args)
            .current_dir(config)
            .env("DOCKER_CONFIG", config)
            .env("DOCKER_CONTENT_TRUST_SERVER", server)
            .env("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", CLIENT_PASS)
            .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", CLIENT_PASS),
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A running trustbridge-server with its trustbridge-signer, certificates in `dir/certs`.
pub struct Stack {
    pub server: Proc,
    pub signer: Proc,
    pub url: String,
    pub ca: PathBuf,
    pub dir: PathBuf,
    pub port: u16,
    pub signer_port: u16,
    /// The server's config (to restart it with [`start_server`]).
    pub config: PathBuf,
}

impl Stack {
    /// Start the server again on its config, port and signer, once the test has stopped or
    /// killed it.
    pub fn start_server_again(&mut self) {
        self.server = start_server(
            "trustbridge-server",
            &self.dir,
            &self.config,
            self.port,
            &mut [&mut self.signer],
        );
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

/// Write `dir/server.json` for trustbridge-server on `port` using the signer on `signer_port`.
pub fn write_server_config(dir: &Path, port: u16, signer_port: u16, extra: &str) -> PathBuf {
    let path = dir.join("server.json");
    write_config_file(
        &path,
        port,
        signer_port,
        r#"{"backend":"sqlite3","db_url":"server.db"}"#,
        extra,
    );
    path
}

/// A trustbridge-server config at `path` with `storage` (a JSON object), certificates under
/// `certs/` beside it.
pub fn write_config_file(path: &Path, port: u16, signer_port: u16, storage: &str, extra: &str) {
    std::fs::write(
        path,
        format!(
            r#"{{"server":{{"http_addr":"127.0.0.1:{port}","tls_cert_file":"certs/server.crt","tls_key_file":"certs/server.key"}},
               "trust_service":{{"type":"remote","hostname":"127.0.0.1","port":"{signer_port}","key_algorithm":"ecdsa",
                 "tls_ca_file":"certs/root-ca.crt","tls_client_cert":"certs/signer-client.crt","tls_client_key":"certs/signer-client.key"}},
               "logging":{{"level":"info"}},"storage":{storage}{extra}}}"#
        ),
    )
    .unwrap();
}

/// Start trustbridge-server with `config` and wait for its health (which includes the signer).
pub fn start_server(
    name: &str,
    dir: &Path,
    config: &Path,
    port: u16,
    others: &mut [&mut Proc],
) -> Proc {
    let mut cmd = Command::new(our_bin("trustbridge-server", "trustbridge-server"));
    cmd.arg("--config").arg(config).env("RUST_LOG", "info");
    let mut p = Proc::spawn(name, cmd, dir);
    let mut all: Vec<&mut Proc> = vec![&mut p];
    all.extend(others.iter_mut().map(|x| &mut **x));
    wait_ok(
        &format!("https://127.0.0.1:{port}/_notary_server/health"),
        &dir.join("certs/root-ca.crt"),
        Duration::from_secs(30),
        &mut all,
    );
    p
}

/// Dev PKI, trustbridge-signer (SQLite) and trustbridge-server (SQLite) in `dir`.
pub fn start_stack(dir: &Path) -> Stack {
    start_stack_with(dir, "")
}

/// As [`start_stack`], with `extra` server config members (each with a leading comma:
/// `,"trustbridge":{...}`).
pub fn start_stack_with(dir: &Path, extra: &str) -> Stack {
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let signer_port = free_port();
    let sc = write_signer_config(dir, signer_port, "sqlite3");
    let mut signer = start_signer("trustbridge-signer", &sc, &certs, signer_port);
    let port = free_port();
    let config = write_server_config(dir, port, signer_port, extra);
    let server = start_server("trustbridge-server", dir, &config, port, &mut [&mut signer]);
    Stack {
        server,
        signer,
        url: format!("https://127.0.0.1:{port}"),
        ca: certs.join("root-ca.crt"),
        dir: dir.to_path_buf(),
        port,
        signer_port,
        config,
    }
}

/// The real notary client against `url`, passphrases from env; returns stdout or panics.
pub fn notary(url: &str, ca: &Path, trust: &Path, args: &[&str]) -> String {
    let out = run_ok(
        &format!("notary {}", args.join(" ")),
        &mut notary_cmd(url, ca, trust, args),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// As [`notary`], with `input` on stdin (for confirmations such as root rotation's).
pub fn notary_with_input(url: &str, ca: &Path, trust: &Path, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut cmd = notary_cmd(url, ca, trust, args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "notary {} failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn notary_cmd(url: &str, ca: &Path, trust: &Path, args: &[&str]) -> Command {
    client_cmd(require_bin("notary"), url, ca, trust, args)
}

/// Our `trustbridge` CLI against `url`, passphrases from notary's env vars.
pub fn trustbridge_cmd(url: &str, ca: &Path, trust: &Path, args: &[&str]) -> Command {
    client_cmd(
        our_bin("trustbridge-client", "trustbridge"),
        url,
        ca,
        trust,
        args,
    )
}

/// A notary-style client (`-d TRUST -s URL --tlscacert CA ARGS`) with every passphrase set.
fn client_cmd(bin: PathBuf, url: &str, ca: &Path, trust: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("-d")
        .arg(trust)
        .args(["-s", url, "--tlscacert"])
        .arg(ca)
        .args(args);
    for role in ["ROOT", "TARGETS", "SNAPSHOT", "DELEGATION"] {
        cmd.env(format!("NOTARY_{role}_PASSPHRASE"), CLIENT_PASS);
    }
    cmd
}

/// A self-signed delegation certificate and its key (PKCS#8 PEM) in `dir`, as a user brings
/// them to `delegation add` / `key import`; returns (key file, certificate file).
pub fn delegation_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    let cert = params.self_signed(&key).unwrap();
    let (kf, cf) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.crt")),
    );
    std::fs::write(&kf, key.serialize_pem()).unwrap();
    std::fs::write(&cf, cert.pem()).unwrap();
    (kf, cf)
}

/// As [`notary`], with our client.
pub fn trustbridge(url: &str, ca: &Path, trust: &Path, args: &[&str]) -> String {
    let out = run_ok(
        &format!("trustbridge {}", args.join(" ")),
        &mut trustbridge_cmd(url, ca, trust, args),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Our client expected to fail: returns its stderr.
pub fn trustbridge_fails(url: &str, ca: &Path, trust: &Path, args: &[&str]) -> String {
    let out = trustbridge_cmd(url, ca, trust, args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "trustbridge {} should have failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}
