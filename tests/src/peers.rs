//! The real Go notary 0.7.0 services (Debian's notary-signer and notary-server) with our dev
//! certificates in `dir/certs`, configured as a deployment would: mutual TLS between them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::signer::{ALIAS1_PASS, wait_grpc};
use crate::{Proc, require_bin, wait_ok};

/// Start notary-signer on `port` with `storage` (a JSON object, e.g. `{"backend":"memory"}`),
/// `NOTARY_SIGNER_ALIAS1` set, and wait for its gRPC.
pub fn go_signer(dir: &Path, port: u16, storage: &str) -> Proc {
    std::fs::write(
        dir.join("go-signer.json"),
        format!(
            r#"{{"server":{{"grpc_addr":"127.0.0.1:{port}","tls_cert_file":"certs/signer.crt","tls_key_file":"certs/signer.key","client_ca_file":"certs/root-ca.crt"}},
               "logging":{{"level":"info"}},"storage":{storage}}}"#
        ),
    )
    .unwrap();
    let mut cmd = Command::new(require_bin("notary-signer"));
    cmd.current_dir(dir)
        .args(["-config", "go-signer.json"])
        .env("NOTARY_SIGNER_ALIAS1", ALIAS1_PASS);
    let mut p = Proc::spawn("notary-signer", cmd, dir);
    wait_grpc(&mut p, port, &dir.join("certs"));
    p
}

/// Start notary-server on `port` (memory store) using the signer on `signer_port`, with
/// `extra` config members (e.g. `,"auth":{...}`), and wait for its health.
pub fn go_server(dir: &Path, port: u16, signer_port: u16, extra: &str) -> Proc {
    go_server_with(dir, port, signer_port, r#"{"backend":"memory"}"#, extra)
}

/// Go notary-server 0.7.0 and notary-signer 0.7.0, both on memory stores, in `dir` (beside a
/// stack of ours on the same dev PKI): the reference a test compares answers with.
pub struct GoNotary {
    _signer: Proc,
    _server: Proc,
    pub url: String,
}

pub fn go_notary(dir: &Path) -> GoNotary {
    let signer_port = crate::free_port();
    let signer = go_signer(dir, signer_port, r#"{"backend":"memory"}"#);
    let port = crate::free_port();
    let server = go_server(dir, port, signer_port, "");
    GoNotary {
        _signer: signer,
        _server: server,
        url: format!("https://127.0.0.1:{port}"),
    }
}

/// [`go_server`] with `storage` (a JSON object, e.g. notary's `postgres` backend).
pub fn go_server_with(dir: &Path, port: u16, signer_port: u16, storage: &str, extra: &str) -> Proc {
    std::fs::write(
        dir.join("go-server.json"),
        format!(
            r#"{{"server":{{"http_addr":"127.0.0.1:{port}","tls_cert_file":"certs/server.crt","tls_key_file":"certs/server.key"}},
               "trust_service":{{"type":"remote","hostname":"127.0.0.1","port":"{signer_port}","key_algorithm":"ecdsa",
                 "tls_ca_file":"certs/root-ca.crt","tls_client_cert":"certs/signer-client.crt","tls_client_key":"certs/signer-client.key"}},
               "logging":{{"level":"info"}},"storage":{storage}{extra}}}"#
        ),
    )
    .unwrap();
    let mut cmd = Command::new(require_bin("notary-server"));
    cmd.current_dir(dir).args(["-config", "go-server.json"]);
    let mut p = Proc::spawn("notary-server", cmd, dir);
    wait_ok(
        &format!("https://127.0.0.1:{port}/_notary_server/health"),
        &dir.join("certs/root-ca.crt"),
        Duration::from_secs(30),
        &mut [&mut p],
    );
    p
}

/// Debian's docker-registry on `127.0.0.1:port` with storage under `dir/registry`, plain HTTP
/// unless `http_extra` adds YAML under `http:` (e.g. `tls:`), and `extra` top-level YAML
/// (e.g. `auth:`). Waits until `/v2/` answers at all (200 or 401).
pub fn docker_registry(dir: &Path, port: u16, http_extra: &str, extra: &str) -> Proc {
    let rd = dir.join("registry");
    std::fs::create_dir_all(rd.join("data")).unwrap();
    std::fs::write(
        rd.join("config.yml"),
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem: {{ rootdirectory: {} }}\n  delete: {{ enabled: true }}\nhttp:\n  addr: 127.0.0.1:{port}\n{http_extra}{extra}",
            rd.join("data").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(require_bin("docker-registry"));
    cmd.arg("serve").arg(rd.join("config.yml"));
    let mut p = Proc::spawn("docker-registry", cmd, dir);
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        p.assert_running();
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "registry did not start: {}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    p
}
