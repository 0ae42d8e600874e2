//! Attacks our client must refuse, each served by a hostile "notary server" on loopback
//! (plain HTTP, a map of file names to bytes) with metadata made by the TUF core: a rolled-back
//! timestamp, a snapshot whose hash is not the one the timestamp names, an expired targets
//! role, a root rotation not signed by the old root, and a delegated target outside the
//! delegation's paths. Every refusal leaves the trust directory's cache as it was.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use trustbridge_e2e::server::{start_stack, trustbridge_cmd};
use trustbridge_e2e::{https_get, init, our_bin};
use trustbridge_tuf::metadata::{DelegationRole, FileMeta};
use trustbridge_tuf::{
    GoTime, KeyType, PrivateKey, PublicKey, Root, Signed, Snapshot, Targets, Timestamp, x509,
};

const GUN: &str = "evil.example/app";

/// A minimal HTTP/1.1 server answering GETs from a map (name after `/_trust/tuf/`).
struct Evil {
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl Evil {
    fn start() -> Evil {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Default::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (files.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut c) = conn else { continue };
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let path = line.split_whitespace().nth(1).unwrap_or("");
                let name = path.split("/_trust/tuf/").nth(1).unwrap_or("");
                let body = f.lock().unwrap().get(name).cloned();
                let (status, body) = match body {
                    Some(b) => ("200 OK", b),
                    None => (
                        "404 Not Found",
                        br#"{"errors":[{"code":"METADATA_NOT_FOUND"}]}"#.to_vec(),
                    ),
                };
                let _ = write!(
                    c,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = c.write_all(&body);
            }
        });
        Evil { files, stop, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn serve(&self, name: &str, bytes: &[u8]) {
        self.files
            .lock()
            .unwrap()
            .insert(name.into(), bytes.to_vec());
    }
}

impl Drop for Evil {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The keys of a repository and the documents signed with them.
struct Keys {
    root: PrivateKey,
    cert: PublicKey,
    targets: PrivateKey,
    snapshot: PrivateKey,
    timestamp: PrivateKey,
}

fn sha_hex(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b))
}

impl Keys {
    fn new() -> Keys {
        let root = PrivateKey::generate(KeyType::Ecdsa).unwrap();
        let cert = x509::generate_root_certificate(GUN, &root, 10).unwrap();
        let g = || PrivateKey::generate(KeyType::Ecdsa).unwrap();
        Keys {
            root,
            cert,
            targets: g(),
            snapshot: g(),
            timestamp: g(),
        }
    }

    /// Root `version` listing these keys, signed by `signers` (key ID, key).
    fn root(&self, version: i64, signers: Vec<(String, &PrivateKey)>) -> Signed<Root> {
        let mut body = Root::initial([
            ("root", self.cert.clone()),
            ("targets", self.targets.public_key().clone()),
            ("snapshot", self.snapshot.public_key().clone()),
            ("timestamp", self.timestamp.public_key().clone()),
        ]);
        body.version = version;
        Signed::sign_with_ids(body, signers).unwrap()
    }

    fn self_signed_root(&self, version: i64) -> Signed<Root> {
        self.root(version, vec![(self.cert.id(), &self.root)])
    }
}

fn targets_body(version: i64, expires: GoTime, names: &[&str]) -> Targets {
    Targets {
        type_: "Targets".into(),
        delegations: Default::default(),
        expires,
        targets: names
            .iter()
            .map(|n| (n.to_string(), FileMeta::from_bytes(n.as_bytes())))
            .collect(),
        version,
    }
}

/// Serve `root`, `targets` (+ delegations) with a snapshot and a timestamp of `version`.
fn publish(
    e: &Evil,
    k: &Keys,
    root: &Signed<Root>,
    roles: &[(&str, Vec<u8>)],
    version: i64,
) -> (Vec<u8>, Vec<u8>) {
    e.serve("root.json", root.raw());
    e.serve(&format!("{}.root.json", root.signed.version), root.raw());
    let mut meta = BTreeMap::new();
    meta.insert("root".to_string(), FileMeta::from_bytes(root.raw()));
    for (name, bytes) in roles {
        meta.insert(name.to_string(), FileMeta::from_bytes(bytes));
        e.serve(&format!("{name}.{}.json", sha_hex(bytes)), bytes);
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        e.serve(&format!("{}.{name}.json", v["signed"]["version"]), bytes);
    }
    let sn = Signed::sign(
        Snapshot {
            type_: "Snapshot".into(),
            expires: GoTime::now().plus_years(3),
            meta,
            version,
        },
        &[&k.snapshot],
    )
    .unwrap();
    e.serve(&format!("snapshot.{}.json", sha_hex(sn.raw())), sn.raw());
    e.serve(&format!("{version}.snapshot.json"), sn.raw());
    let ts = timestamp(k, sn.raw(), version);
    e.serve("timestamp.json", &ts);
    e.serve(&format!("{version}.timestamp.json"), &ts);
    (sn.raw().to_vec(), ts)
}

fn timestamp(k: &Keys, snapshot: &[u8], version: i64) -> Vec<u8> {
    let mut meta = BTreeMap::new();
    meta.insert("snapshot".to_string(), FileMeta::from_bytes(snapshot));
    let body = Timestamp {
        type_: "Timestamp".into(),
        expires: GoTime::now_plus(time::Duration::days(14)),
        meta,
        version,
    };
    Signed::sign(body, &[&k.timestamp]).unwrap().raw().to_vec()
}

fn client(e: &Evil, trust: &Path, args: &[&str]) -> Output {
    Command::new(our_bin("trustbridge-client", "trustbridge"))
        .arg("-d")
        .arg(trust)
        .args(["-s", &e.url()])
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &Output, expect: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "must be refused: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains(expect), "expected {expect:?} in: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    err
}

fn cached(trust: &Path, role: &str) -> Vec<u8> {
    std::fs::read(
        trust
            .join("tuf")
            .join(GUN)
            .join("metadata")
            .join(format!("{role}.json")),
    )
    .unwrap()
}

fn signed_targets(k: &Keys, version: i64, expires: GoTime, names: &[&str]) -> Vec<u8> {
    Signed::sign(targets_body(version, expires, names), &[&k.targets])
        .unwrap()
        .raw()
        .to_vec()
}

#[test]
fn a_rolled_back_timestamp_is_refused() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let (e, k) = (Evil::start(), Keys::new());
    let root = k.self_signed_root(1);
    let t1 = signed_targets(&k, 1, GoTime::now().plus_years(3), &["v1"]);
    let (sn1, ts1) = publish(&e, &k, &root, &[("targets", t1.clone())], 1);
    let t2 = signed_targets(&k, 2, GoTime::now().plus_years(3), &["v1", "v2"]);
    publish(&e, &k, &root, &[("targets", t2)], 2);
    assert!(ok(&client(&e, tmp.path(), &["list", GUN])).contains("v2"));
    let ts2 = cached(tmp.path(), "timestamp");
    // The server goes back to the old (validly signed) timestamp and snapshot.
    e.serve("timestamp.json", &ts1);
    assert!(!sn1.is_empty());
    refused(
        &client(&e, tmp.path(), &["list", GUN]),
        "timestamp: version 1 is lower than the required minimum 2",
    );
    assert_eq!(cached(tmp.path(), "timestamp"), ts2);
}

#[test]
fn a_snapshot_with_a_wrong_hash_is_refused() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let (e, k) = (Evil::start(), Keys::new());
    let root = k.self_signed_root(1);
    let t1 = signed_targets(&k, 1, GoTime::now().plus_years(3), &["v1"]);
    let (sn, _) = publish(&e, &k, &root, &[("targets", t1)], 1);
    // Another (validly signed) snapshot served under the name of the one the timestamp names.
    let mut meta = BTreeMap::new();
    meta.insert("root".to_string(), FileMeta::from_bytes(root.raw()));
    meta.insert("targets".to_string(), FileMeta::from_bytes(b"other"));
    let other = Signed::sign(
        Snapshot {
            type_: "Snapshot".into(),
            expires: GoTime::now().plus_years(3),
            meta,
            version: 1,
        },
        &[&k.snapshot],
    )
    .unwrap();
    let mut forged = other.raw().to_vec();
    forged.resize(sn.len(), b' ');
    e.serve(&format!("snapshot.{}.json", sha_hex(&sn)), &forged);
    refused(
        &client(&e, tmp.path(), &["list", GUN]),
        "snapshot: snapshot has sha256 hash",
    );
    assert!(
        !tmp.path()
            .join("tuf")
            .join(GUN)
            .join("metadata/root.json")
            .exists(),
        "nothing cached"
    );
}

#[test]
fn an_expired_targets_role_is_refused_with_the_fix() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let (e, k) = (Evil::start(), Keys::new());
    let root = k.self_signed_root(1);
    let past =
        GoTime::from_offset_datetime(time::OffsetDateTime::now_utc() - time::Duration::days(1));
    let t1 = signed_targets(&k, 1, past, &["v1"]);
    publish(&e, &k, &root, &[("targets", t1)], 1);
    refused(
        &client(&e, tmp.path(), &["list", GUN]),
        &format!("the targets role expired at {}", ""),
    );
    let err = refused(
        &client(&e, tmp.path(), &["lookup", GUN, "v1"]),
        "renew it with",
    );
    assert!(
        err.contains(&format!("trustbridge witness {GUN} targets -p")),
        "{err}"
    );
}

#[test]
fn a_root_rotation_not_signed_by_the_old_root_is_refused() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let (e, k) = (Evil::start(), Keys::new());
    let root1 = k.self_signed_root(1);
    let t1 = signed_targets(&k, 1, GoTime::now().plus_years(3), &["v1"]);
    publish(&e, &k, &root1, &[("targets", t1)], 1);
    ok(&client(&e, tmp.path(), &["list", GUN]));
    // An attacker with new keys (and a new root certificate) but not the old root key.
    let mut k2 = Keys::new();
    k2.snapshot = k.snapshot;
    k2.timestamp = k.timestamp;
    let root2 = k2.self_signed_root(2);
    let t2 = signed_targets(&k2, 2, GoTime::now().plus_years(3), &["evil"]);
    publish(&e, &k2, &root2, &[("targets", t2)], 2);
    refused(
        &client(&e, tmp.path(), &["list", GUN]),
        "rotation not signed by the previous root",
    );
    assert_eq!(cached(tmp.path(), "root"), root1.raw());
    // Even a chain of versions does not help: 2.root.json is the same unsigned rotation.
    let root3 = k2.self_signed_root(3);
    publish(&e, &k2, &root3, &[], 3);
    refused(
        &client(&e, tmp.path(), &["list", GUN]),
        "rotation not signed by the previous root",
    );
}

#[test]
fn a_delegated_target_outside_its_paths_is_ignored() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let (e, k) = (Evil::start(), Keys::new());
    let root = k.self_signed_root(1);
    let rel = PrivateKey::generate(KeyType::Ecdsa).unwrap();
    let mut tb = targets_body(1, GoTime::now().plus_years(3), &["top"]);
    tb.delegations
        .keys
        .insert(rel.id(), rel.public_key().clone());
    tb.delegations.roles.push(DelegationRole {
        keyids: vec![rel.id()],
        name: "targets/releases".into(),
        paths: vec!["releases/".into()],
        path_hash_prefixes: None,
        threshold: 1,
    });
    let t = Signed::sign(tb, &[&k.targets]).unwrap();
    let r = Signed::sign(
        Targets {
            type_: "Targets".into(),
            ..targets_body(1, GoTime::now().plus_years(3), &["releases/ok", "evil"])
        },
        &[&rel],
    )
    .unwrap();
    publish(
        &e,
        &k,
        &root,
        &[
            ("targets", t.raw().to_vec()),
            ("targets/releases", r.raw().to_vec()),
        ],
        1,
    );
    let out = client(&e, tmp.path(), &["list", GUN]);
    let list = ok(&out);
    assert!(
        list.contains("releases/ok") && list.contains("top"),
        "{list}"
    );
    assert!(!list.contains("evil"), "{list}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the delegation's paths"));
    refused(
        &client(&e, tmp.path(), &["lookup", GUN, "evil"]),
        "no trust data for evil",
    );
}

/// `import` verifies the history before storing: an old targets version signed by a key root
/// never gave the role is refused, and trustbridge-server stores nothing for the GUN.
#[test]
fn an_import_with_a_forged_old_version_stores_nothing() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let tb = start_stack(tmp.path());
    let (e, k) = (Evil::start(), Keys::new());
    let root = k.self_signed_root(1);
    let t1 = signed_targets(&k, 1, GoTime::now().plus_years(3), &["v1"]);
    publish(&e, &k, &root, &[("targets", t1)], 1);
    let t2 = signed_targets(&k, 2, GoTime::now().plus_years(3), &["v1", "v2"]);
    publish(&e, &k, &root, &[("targets", t2)], 2);
    let other = Keys::new();
    e.serve(
        "1.targets.json",
        &signed_targets(&other, 1, GoTime::now().plus_years(3), &["planted"]),
    );
    let out = trustbridge_cmd(
        &tb.url,
        &tb.ca,
        &tmp.path().join("t"),
        &["import", "--from", &e.url(), "--gun", GUN],
    )
    .output()
    .unwrap();
    refused(&out, "targets: 0 valid signature(s) of 1 required");
    assert_eq!(
        https_get(&format!("{}/v2/{GUN}/_trust/tuf/root.json", tb.url), &tb.ca).0,
        404
    );
    // Without the forgery the same import goes through.
    let t1 = signed_targets(&k, 1, GoTime::now().plus_years(3), &["v1"]);
    e.serve("1.targets.json", &t1);
    let out = trustbridge_cmd(
        &tb.url,
        &tb.ca,
        &tmp.path().join("t2"),
        &["import", "--from", &e.url(), "--gun", GUN],
    )
    .output()
    .unwrap();
    assert!(ok(&out).contains("copied"));
    assert_eq!(
        https_get(
            &format!("{}/v2/{GUN}/_trust/tuf/1.targets.json", tb.url),
            &tb.ca
        )
        .1,
        t1
    );
}
