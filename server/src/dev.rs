//! `trustbridge-server dev`: a whole local deployment in one command — dev certificates,
//! trustbridge-signer as a child process over mutual TLS, SQLite stores under the data
//! directory, and the API on HTTPS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::config::{Config, Storage, TlsFiles, TrustService};
use crate::error::StartError as Error;

fn start(e: impl std::fmt::Display) -> Error {
    Error::Invalid(e.to_string())
}

/// `trustbridge-signer` next to this executable, else on PATH.
pub fn signer_binary() -> Result<PathBuf, Error> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("trustbridge-signer")));
    if let Some(p) = beside.filter(|p| p.is_file()) {
        return Ok(p);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("trustbridge-signer"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            start("trustbridge-signer not found next to trustbridge-server or on PATH: build it with `cargo build --release -p trustbridge-signer`")
        })
}

/// A random passphrase for the dev signer, kept in `DATA/signer.passphrase` (0600).
fn dev_passphrase(data: &Path) -> Result<String, Error> {
    let file = data.join("signer.passphrase");
    if let Ok(p) = std::fs::read_to_string(&file) {
        return Ok(p.trim().to_string());
    }
    let mut bytes = [0u8; 24];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| start("no randomness"))?;
    let pass = hex::encode(bytes);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    use std::io::Write;
    opts.open(&file)
        .and_then(|mut f| f.write_all(pass.as_bytes()))
        .map_err(|e| Error::io(file.display(), e))?;
    Ok(pass)
}

/// The dev Notation chain's subject (Notation trust policies need C, ST and O in it).
pub const DEV_NOTATION_SUBJECT: &str = "CN=trustbridge dev,O=trustbridge,ST=Dev,C=US";

/// The dev store's key ID for `what` (`cosign-key`, `notation-key`), generating the key on
/// first start (offline, with the signer's admin CLI, before the signer runs).
fn dev_key(
    signer_config: &Path,
    pass: &str,
    what: &str,
    generate: &[&str],
) -> Result<String, Error> {
    let run = |args: &[&str]| {
        Command::new(signer_binary()?)
            .args(args)
            .arg("--config")
            .arg(signer_config)
            .env("NOTARY_SIGNER_DEV", pass)
            .output()
            .map_err(|e| Error::io("trustbridge-signer", e))
    };
    let out = run(&[what, "id"])?;
    let out = if out.status.success() {
        out
    } else {
        let mut args = vec![what, "generate"];
        args.extend_from_slice(generate);
        let generated = run(&args)?;
        if !generated.status.success() {
            return Err(start(format!(
                "generating the dev {what}: {}",
                String::from_utf8_lossy(&generated.stderr).trim()
            )));
        }
        generated
    };
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The running dev signer; stopped (SIGTERM, then wait) on drop.
pub struct DevSigner(Child);

impl Drop for DevSigner {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.0.id().to_string())
                .status();
        }
        let _ = self.0.wait();
    }
}

/// Prepare `data`, start the signer, and return the server config to run with it.
pub fn prepare(data: &Path, addr: &str) -> Result<(Config, DevSigner), Error> {
    std::fs::create_dir_all(data).map_err(|e| Error::io(data.display(), e))?;
    let data = data
        .canonicalize()
        .map_err(|e| Error::io(data.display(), e))?;
    let certs = data.join("certs");
    if !certs.join("root-ca.crt").exists() {
        trustbridge_certs::generate(825)
            .and_then(|p| p.write(&certs))
            .map_err(start)?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| Error::io("a port for the dev signer", e))?
        .port();
    let signer_config = data.join("signer.json");
    std::fs::write(
        &signer_config,
        format!(
            r#"{{"server":{{"grpc_addr":"127.0.0.1:{port}","tls_cert_file":"certs/signer.crt","tls_key_file":"certs/signer.key","client_ca_file":"certs/root-ca.crt"}},
"logging":{{"level":"info"}},"storage":{{"backend":"sqlite3","db_url":"signer-keys.db","default_alias":"dev"}}}}"#
        ),
    )
    .map_err(|e| Error::io(signer_config.display(), e))?;
    let pass = dev_passphrase(&data)?;
    let bridge_key = dev_key(&signer_config, &pass, "cosign-key", &[])?;
    let notation_key = dev_key(
        &signer_config,
        &pass,
        "notation-key",
        &["--subject", DEV_NOTATION_SUBJECT],
    )?;
    let child = Command::new(signer_binary()?)
        .arg("--config")
        .arg(&signer_config)
        .env("NOTARY_SIGNER_DEV", pass)
        .spawn()
        .map_err(|e| Error::io("starting trustbridge-signer", e))?;
    let config = Config {
        http_addr: addr.to_string(),
        tls: Some(TlsFiles {
            cert: certs.join("server.crt"),
            key: certs.join("server.key"),
        }),
        trust: TrustService {
            additional: vec![],
            hostname: "127.0.0.1".into(),
            port,
            key_algorithm: "ecdsa".into(),
            ca_file: certs.join("root-ca.crt"),
            client_cert: Some(TlsFiles {
                cert: certs.join("signer-client.crt"),
                key: certs.join("signer-client.key"),
            }),
        },
        storage: Storage::Sqlite(data.join("server.db")),
        caching: Default::default(),
        gun_prefixes: vec![],
        log_level: "info".into(),
        renewal: Default::default(),
        migration: Default::default(),
        cache: Default::default(),
        http_limits: Default::default(),
        auth: None,
        client_ca_file: None,
        // The Cosign bridge is on for loopback registries only, over plain HTTP.
        bridge: Some(crate::bridge::BridgeConfig {
            key_id: bridge_key,
            allow_loopback: true,
            on_expiry: Default::default(),
            reconcile_every: Some(std::time::Duration::from_secs(600)),
            registries: Default::default(),
            max_backoff: std::time::Duration::from_secs(60),
            rewrite: vec![],
            max_attempts: 50,
            new_bundle_format: false,
            notation: Some(crate::bridge::notation::NotationConfig {
                key_id: notation_key,
            }),
        }),
        token_issuer: None,
    };
    Ok((config, DevSigner(child)))
}

/// What to tell the user once the server listens.
pub fn instructions(data: &Path, addr: std::net::SocketAddr) -> String {
    let ca = data.join("certs/root-ca.crt");
    format!(
        "trustbridge dev server on https://{addr} (signer: child process, stores under {data})\n\
         notary:  notary -s https://{addr} --tlscacert {ca} -d ~/.notary list <GUN>\n\
         docker:  mkdir -p ~/.docker/tls/{addr} && cp {ca} ~/.docker/tls/{addr}/ca.crt\n\
         \x20        export DOCKER_CONTENT_TRUST=1 DOCKER_CONTENT_TRUST_SERVER=https://{addr}\n\
         stop with Ctrl-C or SIGTERM",
        data = data.display(),
        ca = ca.display()
    )
}
