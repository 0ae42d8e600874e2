//! Go notary-server 0.7.0 with `trust_service.type=remote` pointed at trustbridge-signer: the
//! real notary client inits, publishes, rotates the timestamp and snapshot keys to the server
//! (which creates them in our signer), and a fresh client reads it all back. The signer is then
//! restarted: its keys persist in SQLite and the timestamps it signs afterwards verify.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use trustbridge_e2e::signer::{ALIAS1_PASS, start_ours, write_config};
use trustbridge_e2e::{Proc, free_port, https_get, init, our_bin, require_bin, run_ok};
use trustbridge_tuf::{Root, Signed, Snapshot, Timestamp};

const GUN: &str = "127.0.0.1/e2e/remote-signer";
const PASS: &str = "e2e-client-passphrase";

struct Server {
    _proc: Proc,
    url: String,
    ca: PathBuf,
}

fn start_go_server(dir: &Path, signer_port: u16) -> Server {
    let port = free_port();
    let proc = trustbridge_e2e::peers::go_server(dir, port, signer_port, "");
    let url = format!("https://127.0.0.1:{port}");
    let ca = dir.join("certs/root-ca.crt");
    Server {
        _proc: proc,
        url,
        ca,
    }
}

fn notary(s: &Server, trust: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(require_bin("notary"));
    cmd.arg("-d")
        .arg(trust)
        .args(["-s", &s.url, "--tlscacert"])
        .arg(&s.ca)
        .args(args);
    for role in ["ROOT", "TARGETS", "SNAPSHOT", "DELEGATION"] {
        cmd.env(format!("NOTARY_{role}_PASSPHRASE"), PASS);
    }
    let out = run_ok(&format!("notary {}", args.join(" ")), &mut cmd);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get(s: &Server, name: &str) -> Vec<u8> {
    let (code, body) = https_get(&format!("{}/v2/{GUN}/_trust/tuf/{name}", s.url), &s.ca);
    assert_eq!(code, 200, "GET {name}: {}", String::from_utf8_lossy(&body));
    body
}

/// The current root, and the timestamp verified against it; returns (root, timestamp key ID).
fn verified_timestamp(s: &Server) -> (Signed<Root>, String) {
    let root = Signed::<Root>::from_bytes("root", &get(s, "root.json")).unwrap();
    let ts_bytes = get(s, "timestamp.json");
    let ts = Signed::<Timestamp>::from_bytes("timestamp", &ts_bytes).unwrap();
    let role = &root.signed.roles["timestamp"];
    ts.verify(
        "timestamp",
        &root.signed.keys,
        &role.keyids,
        role.threshold,
        1,
        false,
    )
    .expect("timestamp signed by our signer verifies against root");
    ts.signed.meta["snapshot"]
        .check("timestamp", "snapshot", &get(s, "snapshot.json"))
        .unwrap();
    (root.clone(), role.keyids[0].clone())
}

fn admin_list(config: &Path) -> String {
    let out = run_ok(
        "trustbridge-signer keys list",
        Command::new(our_bin("trustbridge-signer", "trustbridge-signer"))
            .args(["keys", "list", "--config"])
            .arg(config)
            .env("NOTARY_SIGNER_ALIAS1", ALIAS1_PASS),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn go_notary_server_signs_through_trustbridge_signer() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let signer_port = free_port();
    let config = write_config(dir, signer_port, "sqlite3");
    let signer = start_ours("trustbridge-signer", &config, &certs, signer_port);
    let server = start_go_server(dir, signer_port);
    let trust = dir.join("trust");
    let file = dir.join("artefact.bin");
    std::fs::write(&file, b"payload").unwrap();
    let file = file.to_str().unwrap();

    notary(&server, &trust, &["init", GUN, "-p"]);
    notary(&server, &trust, &["add", GUN, "v1", file]);
    notary(&server, &trust, &["publish", GUN]);
    let (_, ts_key1) = verified_timestamp(&server);
    // The timestamp key notary-server asked for lives in our store (admin CLI, service running).
    let listing = admin_list(&config);
    assert!(
        listing.contains(&ts_key1) && listing.contains("timestamp"),
        "{listing}"
    );

    // Rotate timestamp and snapshot keys to new server-managed keys (CreateKey in our signer).
    notary(&server, &trust, &["key", "rotate", GUN, "timestamp", "-r"]);
    notary(&server, &trust, &["key", "rotate", GUN, "snapshot", "-r"]);
    notary(&server, &trust, &["add", GUN, "v2", file]);
    notary(&server, &trust, &["publish", GUN]);
    let (root, ts_key2) = verified_timestamp(&server);
    assert_ne!(ts_key1, ts_key2, "timestamp key rotated");
    let snap_key = root.signed.roles["snapshot"].keyids[0].clone();
    let snapshot =
        Signed::<Snapshot>::from_bytes("snapshot", &get(&server, "snapshot.json")).unwrap();
    let sr = &root.signed.roles["snapshot"];
    snapshot
        .verify(
            "snapshot",
            &root.signed.keys,
            &sr.keyids,
            sr.threshold,
            1,
            false,
        )
        .expect("server-managed snapshot signed by our signer verifies");
    let listing = admin_list(&config);
    for k in [&ts_key1, &ts_key2, &snap_key] {
        assert!(listing.contains(k.as_str()), "{k} missing from\n{listing}");
    }

    let fresh = dir.join("fresh");
    let list = notary(&server, &fresh, &["list", GUN]);
    assert!(list.contains("v1") && list.contains("v2"), "{list}");

    // Restart the signer on the same store: keys persist, new signatures verify.
    drop(signer);
    let _signer = start_ours("trustbridge-signer-2", &config, &certs, signer_port);
    notary(&server, &trust, &["add", GUN, "v3", file]);
    // notary-server's gRPC connection to the signer reconnects with grpc-go's backoff (1 s,
    // growing): a publish in that window fails and keeps the change queued, so retry as a
    // user would.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut cmd = Command::new(require_bin("notary"));
        cmd.arg("-d")
            .arg(&trust)
            .args(["-s", &server.url, "--tlscacert"])
            .arg(&server.ca);
        cmd.args(["publish", GUN])
            .env("NOTARY_SNAPSHOT_PASSPHRASE", PASS)
            .env("NOTARY_TARGETS_PASSPHRASE", PASS);
        let out = cmd.output().unwrap();
        if out.status.success() {
            break;
        }
        assert!(
            attempt < 20,
            "publish after signer restart: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, ts_key3) = verified_timestamp(&server);
    assert_eq!(ts_key2, ts_key3);
    let fresh2 = dir.join("fresh2");
    let list = notary(&server, &fresh2, &["list", GUN]);
    assert!(list.contains("v3"), "{list}");
    let lookup = notary(&server, &fresh2, &["lookup", GUN, "v3"]);
    assert!(lookup.contains("v3"), "{lookup}");
}
