//! The real Go notary 0.7.0 (Debian's notary-signer, notary-server and notary client) against
//! our core and our dev PKI:
//! * our certificates carry Go's mutual TLS between notary-server and notary-signer and the
//!   client's HTTPS;
//! * metadata the real client publishes parses, re-emits byte-identically, hashes and verifies
//!   in our core, and its key files decrypt with ours;
//! * an update signed by our core is accepted by Go notary-server's validation and read back
//!   and verified by a fresh real notary client.

use std::path::Path;
use std::process::Command;

use trustbridge_e2e::{Proc, free_port, https_get, init, require_bin, run_ok};
use trustbridge_tuf::metadata::{FileMeta, Role};
use trustbridge_tuf::{GoTime, Root, Signed, Snapshot, Targets, Timestamp, keyfile, x509};

const GUN: &str = "127.0.0.1/e2e/app";
const PASS: &str = "e2e-passphrase";

struct Peers {
    _signer: Proc,
    _server: Proc,
    url: String,
    ca: std::path::PathBuf,
}

fn start_go_notary(dir: &Path) -> Peers {
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let (signer_port, server_port) = (free_port(), free_port());
    // The signer first (and its gRPC up): notary-server's health can answer before its first
    // signer check has run.
    let signer = trustbridge_e2e::peers::go_signer(dir, signer_port, r#"{"backend":"memory"}"#);
    let server = trustbridge_e2e::peers::go_server(dir, server_port, signer_port, "");
    let url = format!("https://127.0.0.1:{server_port}");
    let ca = certs.join("root-ca.crt");
    Peers {
        _signer: signer,
        _server: server,
        url,
        ca,
    }
}

fn notary(peers: &Peers, trust: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(require_bin("notary"));
    cmd.arg("-d")
        .arg(trust)
        .args(["-s", &peers.url, "--tlscacert"])
        .arg(&peers.ca)
        .args(args);
    for role in ["ROOT", "TARGETS", "SNAPSHOT", "DELEGATION"] {
        cmd.env(format!("NOTARY_{role}_PASSPHRASE"), PASS);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "notary {} failed:\n{}\n--- notary-server log:\n{}\n--- notary-signer log:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        peers._server.log(),
        peers._signer.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get(peers: &Peers, name: &str) -> Vec<u8> {
    let (code, body) = https_get(
        &format!("{}/v2/{GUN}/_trust/tuf/{name}", peers.url),
        &peers.ca,
    );
    assert_eq!(code, 200, "GET {name}: {}", String::from_utf8_lossy(&body));
    body
}

/// The decrypted private key the client holds for `canonical_id`.
fn client_key(trust: &Path, canonical_id: &str) -> trustbridge_tuf::PrivateKey {
    let text = std::fs::read(trust.join("private").join(format!("{canonical_id}.key"))).unwrap();
    keyfile::decode(&text, PASS).unwrap().key
}

#[test]
fn go_notary_and_our_core_read_and_write_each_others_metadata() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let peers = start_go_notary(tmp.path());
    let trust = tmp.path().join("trust");
    let artefact = tmp.path().join("artefact.bin");
    std::fs::write(&artefact, b"hello from the notary client").unwrap();

    notary(&peers, &trust, &["init", GUN, "-p"]);
    notary(
        &peers,
        &trust,
        &["add", GUN, "v1", artefact.to_str().unwrap()],
    );
    notary(&peers, &trust, &["publish", GUN]);

    // Everything the real client and server wrote parses, re-emits byte-identically and verifies.
    let root_b = get(&peers, "root.json");
    let targets_b = get(&peers, "targets.json");
    let snapshot_b = get(&peers, "snapshot.json");
    let ts_b = get(&peers, "timestamp.json");
    let root = Signed::<Root>::from_bytes("root", &root_b).unwrap();
    let targets = Signed::<Targets>::from_bytes("targets", &targets_b).unwrap();
    let snapshot = Signed::<Snapshot>::from_bytes("snapshot", &snapshot_b).unwrap();
    let ts = Signed::<Timestamp>::from_bytes("timestamp", &ts_b).unwrap();
    assert_eq!(root.to_notary_bytes().unwrap(), root_b);
    assert_eq!(targets.to_notary_bytes().unwrap(), targets_b);
    assert_eq!(snapshot.to_notary_bytes().unwrap(), snapshot_b);
    assert_eq!(ts.to_notary_bytes().unwrap(), ts_b);
    x509::validate_root(GUN, &root, None, &GoTime::now()).unwrap();
    let r = &root.signed;
    for (role, keyids) in [
        ("targets", &r.roles["targets"]),
        ("snapshot", &r.roles["snapshot"]),
        ("timestamp", &r.roles["timestamp"]),
    ] {
        let res = match role {
            "targets" => targets.verify(role, &r.keys, &keyids.keyids, keyids.threshold, 1, false),
            "snapshot" => {
                snapshot.verify(role, &r.keys, &keyids.keyids, keyids.threshold, 1, false)
            }
            _ => ts.verify(role, &r.keys, &keyids.keyids, keyids.threshold, 1, false),
        };
        res.unwrap_or_else(|e| panic!("{role}: {e}"));
    }
    ts.signed.meta["snapshot"]
        .check("timestamp", "snapshot", &snapshot_b)
        .unwrap();
    snapshot.signed.meta["targets"]
        .check("snapshot", "targets", &targets_b)
        .unwrap();
    snapshot.signed.meta["root"]
        .check("snapshot", "root", &root_b)
        .unwrap();
    let v1 = &targets.signed.targets["v1"];
    v1.check("targets", "v1", b"hello from the notary client")
        .unwrap();

    // The client's key files (written by Go) decrypt with our key file code.
    let targets_key = client_key(
        &trust,
        &r.keys[&r.roles["targets"].keyids[0]]
            .canonical_id()
            .unwrap(),
    );
    let snapshot_key = client_key(
        &trust,
        &r.keys[&r.roles["snapshot"].keyids[0]]
            .canonical_id()
            .unwrap(),
    );

    // Our core signs the next targets + snapshot; Go notary-server validates and accepts them.
    let mut t = targets.signed.clone();
    t.version += 1;
    t.expires = GoTime::now().plus_years(3);
    t.targets.insert(
        "from-trustbridge".into(),
        FileMeta::from_bytes(b"signed by the trustbridge core"),
    );
    let new_targets = Signed::sign(t, &[&targets_key]).unwrap();
    let mut s = snapshot.signed.clone();
    s.version += 1;
    s.expires = GoTime::now().plus_years(3);
    s.meta
        .insert("targets".into(), FileMeta::from_bytes(new_targets.raw()));
    let new_snapshot = Signed::sign(s, &[&snapshot_key]).unwrap();
    assert!(new_snapshot.signed.check_structure("snapshot").is_ok());
    let dir = tmp.path();
    std::fs::write(dir.join("targets.json"), new_targets.raw()).unwrap();
    std::fs::write(dir.join("snapshot.json"), new_snapshot.raw()).unwrap();
    let out = run_ok(
        "POST update",
        Command::new(require_bin("curl"))
            .current_dir(dir)
            .args(["-sS", "-w", "%{http_code}", "--cacert"])
            .arg(&peers.ca)
            .args([
                "-F",
                "files=@targets.json;filename=targets",
                "-F",
                "files=@snapshot.json;filename=snapshot",
            ])
            .arg(format!("{}/v2/{GUN}/_trust/tuf/", peers.url)),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "notary-server refused our update"
    );
    assert_eq!(
        get(&peers, "targets.json"),
        new_targets.raw(),
        "served bytes are the bytes we signed"
    );

    // A fresh real client downloads and verifies the whole chain, and sees our target.
    let fresh = tmp.path().join("fresh-trust");
    let listing = notary(&peers, &fresh, &["list", GUN]);
    assert!(
        listing.contains("from-trustbridge") && listing.contains("v1"),
        "{listing}"
    );
    let sha = hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        b"signed by the trustbridge core",
    ));
    let lookup = notary(&peers, &fresh, &["lookup", GUN, "from-trustbridge"]);
    assert!(lookup.contains(&sha), "{lookup}");

    // A tampered update (one byte of our signed targets) is refused by Go's validation.
    let mut bad = new_targets.raw().to_vec();
    let pos = bad
        .windows(16)
        .position(|w| w == b"from-trustbridge")
        .unwrap();
    bad[pos] = b'F';
    std::fs::write(dir.join("bad.json"), &bad).unwrap();
    let out = Command::new(require_bin("curl"))
        .current_dir(dir)
        .args(["-sS", "--cacert"])
        .arg(&peers.ca)
        .args(["-F", "files=@bad.json;filename=targets"])
        .arg(format!("{}/v2/{GUN}/_trust/tuf/", peers.url))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains("INVALID_UPDATE") || body.contains("VERSION"),
        "{body}"
    );
}
