//! A notary deployment taken over as it runs, on MariaDB (notary's own compose setup): Go
//! notary-server 0.7.0 and notary-signer 0.7.0, each on its database in notary's schema, serve
//! the real notary client (a root rotation) and the docker CLI (signers, i.e. delegations, and
//! a signature). Both are stopped and trustbridge-server and trustbridge-signer start with the
//! very same config files: a fresh notary client and a fresh docker config read everything,
//! publishing goes on, and the timestamp is signed by the same server-held key. Then back to
//! Go notary on the same databases, which reads what trustbridge wrote.

use std::path::Path;

use trustbridge_e2e::mysql::{MyDb, NOTARY_SERVER_SCHEMA, NOTARY_SIGNER_SCHEMA};
use trustbridge_e2e::peers::{go_server_with, go_signer};
use trustbridge_e2e::server::{docker_trust, notary, start_server};
use trustbridge_e2e::signer::start_ours;
use trustbridge_e2e::{free_port, https_get, init};

/// The dev server certificate's name, mapped to 127.0.0.1 (scripts/test.sh), so docker checks
/// TLS for real.
const HOST: &str = "notary-server";
const GUN: &str = "registry.example:5000/team/app";

/// A docker config trusting the dev CA for the server at `port`.
fn docker_config(dir: &Path, port: u16) -> std::path::PathBuf {
    let tls = dir.join("tls").join(format!("{HOST}:{port}"));
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(
        dir.parent().unwrap().join("certs/root-ca.crt"),
        tls.join("ca.crt"),
    )
    .unwrap();
    dir.to_path_buf()
}

/// The key ID that signed the current timestamp.json.
fn timestamp_signer(url: &str, ca: &Path) -> String {
    let (code, body) = https_get(&format!("{url}/v2/{GUN}/_trust/tuf/timestamp.json"), ca);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["signatures"][0]["keyid"].as_str().unwrap().to_string()
}

/// Tags and their signers as a fresh docker config sees them.
fn inspect(dir: &Path, port: u16, server: &str) -> Vec<(String, Vec<String>)> {
    let cfg = docker_config(dir, port);
    let out = docker_trust(&cfg, server, &["trust", "inspect", GUN]);
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    v[0]["SignedTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let mut s: Vec<String> = t["Signers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            s.sort();
            (t["SignedTag"].as_str().unwrap().to_string(), s)
        })
        .collect()
}

#[test]
fn a_notary_deployment_on_mariadb_moves_to_trustbridge_and_back() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let ca = certs.join("root-ca.crt");
    // notary's migrate step, as its compose files run it.
    let (server_db, signer_db) = (MyDb::new("notaryserver"), MyDb::new("notarysigner"));
    server_db.sql(NOTARY_SERVER_SCHEMA);
    signer_db.sql(NOTARY_SIGNER_SCHEMA);
    let signer_storage = format!(
        r#"{{"backend":"mysql","db_url":"{}","default_alias":"alias1"}}"#,
        signer_db.dsn()
    );
    let (port, signer_port) = (free_port(), free_port());
    let url = format!("https://{HOST}:{port}");

    // 1. Go notary on MariaDB.
    let mut go_signer_p = go_signer(dir, signer_port, &signer_storage);
    let mut go_server = go_server_with(dir, port, signer_port, &server_db.storage(), "");
    let admin = docker_config(&dir.join("docker-admin"), port);
    std::fs::create_dir_all(&admin).unwrap();
    let d = |args: &[&str]| docker_trust(&admin, &url, args);
    d(&[
        "trust",
        "key",
        "generate",
        "alice",
        "--dir",
        admin.to_str().unwrap(),
    ]);
    let out = d(&[
        "trust",
        "signer",
        "add",
        "--key",
        admin.join("alice.pub").to_str().unwrap(),
        "alice",
        GUN,
    ]);
    assert!(out.contains("Successfully added signer: alice"), "{out}");
    let n = |args: &[&str]| notary(&url, &ca, &admin.join("trust"), args);
    let manifest = dir.join("manifest.json");
    std::fs::write(&manifest, br#"{"schemaVersion":2}"#).unwrap();
    n(&[
        "add",
        GUN,
        "v1",
        manifest.to_str().unwrap(),
        "--roles",
        "targets/releases",
    ]);
    n(&["publish", GUN]);
    let out = d(&["trust", "sign", &format!("{GUN}:v1")]);
    assert!(out.contains("Successfully signed"), "{out}");
    n(&["key", "rotate", GUN, "root"]);
    let go_timestamp_key = timestamp_signer(&url, &ca);
    let before = inspect(&dir.join("docker-1"), port, &url);
    assert_eq!(before, [("v1".to_string(), vec!["alice".to_string()])]);
    go_server.stop();
    go_signer_p.stop();

    // 2. trustbridge on the same databases, with notary's own config files.
    let mut ours_signer = start_ours(
        "trustbridge-signer",
        &dir.join("go-signer.json"),
        &certs,
        signer_port,
    );
    let mut ours = start_server(
        "trustbridge-server",
        dir,
        &dir.join("go-server.json"),
        port,
        &mut [&mut ours_signer],
    );
    assert_eq!(inspect(&dir.join("docker-2"), port, &url), before);
    let list = notary(&url, &ca, &dir.join("fresh-1"), &["list", GUN]);
    assert!(list.contains("v1"), "{list}");
    n(&[
        "addhash",
        GUN,
        "v2",
        "10",
        "--sha256",
        &"22".repeat(32),
        "--roles",
        "targets/releases",
        "-p",
    ]);
    assert_eq!(
        timestamp_signer(&url, &ca),
        go_timestamp_key,
        "the server-held timestamp key carried over"
    );
    let list = notary(&url, &ca, &dir.join("fresh-2"), &["list", GUN]);
    assert!(list.contains("v2"), "{list}");
    ours.stop();
    ours_signer.stop();

    // 3. Back to Go notary on the same databases and configs.
    let _go_signer = go_signer(dir, signer_port, &signer_storage);
    let _go_server = go_server_with(dir, port, signer_port, &server_db.storage(), "");
    let list = notary(&url, &ca, &dir.join("fresh-3"), &["list", GUN]);
    assert!(list.contains("v1") && list.contains("v2"), "{list}");
    let tags: Vec<String> = inspect(&dir.join("docker-3"), port, &url)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(tags, ["v1", "v2"]);
    // Go re-signs the timestamp with the same key on its next publish.
    n(&[
        "addhash",
        GUN,
        "v3",
        "10",
        "--sha256",
        &"33".repeat(32),
        "--roles",
        "targets/releases",
        "-p",
    ]);
    assert_eq!(timestamp_signer(&url, &ca), go_timestamp_key);
}
