//! Helpers for tests of signers (ours and Go notary-signer): start ours from a config, and a
//! gRPC client with mutual TLS built from our generated proto.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use trustbridge_signer::proto::key_management_client::KeyManagementClient;
use trustbridge_signer::proto::signer_client::SignerClient;
use trustbridge_signer::proto::{CreateKeyRequest, KeyId, SignatureRequest};
use trustbridge_tuf::{KeyType, PublicKey};

use crate::{Proc, our_bin, run_ok};

pub type Km = KeyManagementClient<Channel>;
pub type Sg = SignerClient<Channel>;

/// A current-thread runtime for a synchronous test to drive gRPC calls.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Client TLS material: CA to trust, and optionally a client certificate pair.
pub struct ClientTls {
    pub ca: PathBuf,
    pub cert: Option<(PathBuf, PathBuf)>,
}

impl ClientTls {
    /// The dev PKI's CA and the signer-client pair in `certs`.
    pub fn dev(certs: &Path) -> Self {
        ClientTls {
            ca: certs.join("root-ca.crt"),
            cert: Some((
                certs.join("signer-client.crt"),
                certs.join("signer-client.key"),
            )),
        }
    }
}

/// Connect to a signer on 127.0.0.1:`port` verifying it as `notary-signer`, as notary-server does.
pub async fn connect(port: u16, tls: &ClientTls) -> Result<(Km, Sg), tonic::transport::Error> {
    let channel = channel(port, tls).await?;
    Ok((
        KeyManagementClient::new(channel.clone()),
        SignerClient::new(channel),
    ))
}

/// A mutual-TLS channel to 127.0.0.1:`port`, verifying the server as `notary-signer`.
pub async fn channel(port: u16, tls: &ClientTls) -> Result<Channel, tonic::transport::Error> {
    let mut cfg = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(&tls.ca).unwrap()))
        .domain_name("notary-signer");
    if let Some((c, k)) = &tls.cert {
        cfg = cfg.identity(Identity::from_pem(
            std::fs::read(c).unwrap(),
            std::fs::read(k).unwrap(),
        ));
    }
    Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(cfg)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// Write a signer config (notary-signer's keys) into `dir/signer.json`, SQLite store at
/// `dir/keys.db` (or `backend` as a whole `storage` object), certificates from `dir/certs`.
pub fn write_config(dir: &Path, port: u16, backend: &str) -> PathBuf {
    let storage = match backend {
        "memory" => r#"{"backend":"memory"}"#.to_string(),
        // A whole `storage` object (a SQL database).
        json if json.starts_with('{') => json.to_string(),
        _ => r#"{"backend":"sqlite3","db_url":"keys.db","default_alias":"alias1"}"#.to_string(),
    };
    let path = dir.join("signer.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"server":{{"grpc_addr":"127.0.0.1:{port}","tls_cert_file":"certs/signer.crt","tls_key_file":"certs/signer.key","client_ca_file":"certs/root-ca.crt"}},
               "logging":{{"level":"info"}},"storage":{storage}}}"#
        ),
    )
    .unwrap();
    path
}

/// The passphrase tests use for alias `alias1`.
pub const ALIAS1_PASS: &str = "signer-test-passphrase";

/// Start trustbridge-signer with `config` (env `NOTARY_SIGNER_ALIAS1` set) and wait until it
/// answers a gRPC call over mutual TLS.
pub fn start_ours(name: &str, config: &Path, certs: &Path, port: u16) -> Proc {
    let dir = config.parent().unwrap();
    let mut cmd = Command::new(our_bin("trustbridge-signer", "trustbridge-signer"));
    cmd.arg("--config")
        .arg(config)
        .env("NOTARY_SIGNER_ALIAS1", ALIAS1_PASS)
        .env("RUST_LOG", "info");
    let mut p = Proc::spawn(name, cmd, dir);
    wait_grpc(&mut p, port, certs);
    p
}

/// Wait until the signer on `port` completes a GetKeyInfo round trip (any gRPC status).
pub fn wait_grpc(p: &mut Proc, port: u16, certs: &Path) {
    let start = Instant::now();
    let tls = ClientTls::dev(certs);
    let rt = rt();
    loop {
        let ok = rt.block_on(async {
            match connect(port, &tls).await {
                Ok((mut km, _)) => km
                    .get_key_info(trustbridge_signer::proto::KeyId { id: "probe".into() })
                    .await
                    .err()
                    .is_some_and(|s| s.code() == tonic::Code::NotFound),
                Err(_) => false,
            }
        });
        if ok {
            return;
        }
        p.assert_running();
        if start.elapsed() > Duration::from_secs(20) {
            panic!("{} not answering gRPC:\n{}", p.name, p.log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Make the Cosign bridge key offline in the store of `config` (`cosign-key generate`); returns
/// its key ID, for `trustbridge.bridge.key_id`.
pub fn cosign_key_generate(config: &Path) -> String {
    let out = run_ok(
        "cosign-key generate",
        Command::new(our_bin("trustbridge-signer", "trustbridge-signer"))
            .args(["cosign-key", "generate", "--config"])
            .arg(config)
            .env("NOTARY_SIGNER_ALIAS1", ALIAS1_PASS),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Make the Notation key and its chain offline in the store of `config` (`notation-key
/// generate`); returns the key's ID.
pub fn notation_key_generate(config: &Path, subject: &str, extra: &[&str]) -> String {
    let out = run_ok(
        "notation-key generate",
        Command::new(our_bin("trustbridge-signer", "trustbridge-signer"))
            .args(["notation-key", "generate", "--subject", subject])
            .args(extra)
            .arg("--config")
            .arg(config)
            .env("NOTARY_SIGNER_ALIAS1", ALIAS1_PASS),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `notation-key import --cert chain [--key key]` offline in the store of `config`: (success,
/// stdout + stderr).
pub fn notation_key_import(config: &Path, chain: &Path, key: Option<&Path>) -> (bool, String) {
    let mut cmd = Command::new(our_bin("trustbridge-signer", "trustbridge-signer"));
    cmd.args(["notation-key", "import", "--cert"]).arg(chain);
    if let Some(k) = key {
        cmd.arg("--key").arg(k);
    }
    let out = cmd
        .arg("--config")
        .arg(config)
        .env("NOTARY_SIGNER_ALIAS1", ALIAS1_PASS)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Make the built-in token issuer's key offline in the store of `config` (`token-key
/// generate`), its certificate written to `cert_out`; returns its key ID.
pub fn token_key_generate(config: &Path, cert_out: &Path) -> String {
    let out = run_ok(
        "token-key generate",
        Command::new(our_bin("trustbridge-signer", "trustbridge-signer"))
            .args(["token-key", "generate", "--cert-out"])
            .arg(cert_out)
            .arg("--config")
            .arg(config)
            .env("NOTARY_SIGNER_ALIAS1", ALIAS1_PASS),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// CreateKey on the signer at `port` for (gun, role); returns (key ID, public key as reported).
pub fn create(
    port: u16,
    certs: &Path,
    algorithm: &str,
    gun: &str,
    role: &str,
) -> (String, PublicKey) {
    rt().block_on(async {
        let (mut km, _) = connect(port, &ClientTls::dev(certs)).await.unwrap();
        let r = km
            .create_key(CreateKeyRequest {
                algorithm: algorithm.into(),
                gun: gun.into(),
                role: role.into(),
            })
            .await
            .unwrap()
            .into_inner();
        let info = r.key_info.unwrap();
        let kt = KeyType::parse(&info.algorithm.unwrap().algorithm).unwrap();
        (info.key_id.unwrap().id, PublicKey::new(kt, r.public_key))
    })
}

/// Sign on the signer at `port` and verify with `public`.
pub fn sign_and_verify(port: u16, certs: &Path, key_id: &str, public: &PublicKey, who: &str) {
    let msg = format!("message for {key_id} via {who}").into_bytes();
    let sig = rt().block_on(async {
        let (_, mut sg) = connect(port, &ClientTls::dev(certs)).await.unwrap();
        sg.sign(SignatureRequest {
            key_id: Some(KeyId { id: key_id.into() }),
            content: msg.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("{who} Sign {key_id}: {e}"))
        .into_inner()
    });
    let method = sig.algorithm.unwrap().algorithm;
    assert_eq!(method, public.key_type.signature_method());
    public
        .verify(&method, &msg, &sig.content)
        .unwrap_or_else(|e| panic!("{who} signature with {key_id}: {e}"));
}
