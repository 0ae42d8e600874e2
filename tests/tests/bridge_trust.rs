//! What the server may sign and store for the bridge: a repository's timestamp only with a key
//! made for that repository's timestamp, and an import only when its whole history verifies.

use std::process::Command;

use trustbridge_e2e::bridge::{Stack, post, server_key};
use trustbridge_e2e::{https_get, init};

/// A new repository's first upload (root + targets), with `timestamp` as its timestamp key
/// and the GUN's own server-held snapshot key.
fn first_upload(
    st: &Stack,
    gun: &str,
    timestamp: trustbridge_tuf::PublicKey,
) -> Vec<(&'static str, Vec<u8>)> {
    use trustbridge_tuf::{GoTime, KeyType, PrivateKey, Root, Signed, Targets, x509};
    let snapshot = server_key(st, gun, "snapshot");
    let root_key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
    let cert = x509::generate_root_certificate(gun, &root_key, 10).unwrap();
    let targets_key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
    let root = Root::initial([
        ("root", cert.clone()),
        ("targets", targets_key.public_key().clone()),
        ("snapshot", snapshot),
        ("timestamp", timestamp),
    ]);
    let root = Signed::sign_with_ids(root, vec![(cert.id(), &root_key)]).unwrap();
    let targets = Targets {
        type_: "Targets".into(),
        delegations: Default::default(),
        expires: GoTime::now().plus_years(3),
        targets: Default::default(),
        version: 1,
    };
    let targets = Signed::sign(targets, &[&targets_key]).unwrap();
    vec![
        ("root", root.raw().to_vec()),
        ("targets", targets.raw().to_vec()),
    ]
}

/// The server signs a repository's timestamp only with a key the signer made for that
/// repository's timestamp: a root naming the Cosign bridge key, or another GUN's timestamp
/// key, is refused (notary's 400 INVALID_UPDATE), and nothing is stored.
#[test]
fn server_keys_sign_only_their_own_repository_and_role() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let st = trustbridge_e2e::bridge::start_bridge(dir, r#","allow_loopback":true"#);
    let (_, pem) = https_get(&format!("{}/_trustbridge/v1/cosign.pub", st.url), &st.ca);
    let spki = pem::parse(&pem).unwrap().into_contents();
    let bridge = trustbridge_tuf::PublicKey::new(trustbridge_tuf::KeyType::Ecdsa, spki);
    assert_eq!(bridge.id(), st.key_id, "the bridge key as a TUF key");

    // Another repository's timestamp key, and the bridge key, may not sign this one.
    let a_timestamp = server_key(&st, "example.com/a", "timestamp");
    for (name, key) in [
        ("the bridge key", bridge),
        ("example.com/a's key", a_timestamp),
    ] {
        let (code, body) = post(
            &st,
            "example.com/b",
            &first_upload(&st, "example.com/b", key),
        );
        assert_eq!(code, 400, "a root naming {name} as timestamp key: {body}");
        assert!(body.contains("INVALID_UPDATE"), "{name}: {body}");
        let (code, _) = https_get(
            &format!("{}/v2/example.com/b/_trust/tuf/root.json", st.url),
            &st.ca,
        );
        assert_eq!(code, 404, "nothing stored after {name} was refused");
    }
    // Its own timestamp key works.
    let own = server_key(&st, "example.com/b", "timestamp");
    let (code, body) = post(
        &st,
        "example.com/b",
        &first_upload(&st, "example.com/b", own),
    );
    assert_eq!(code, 200, "{body}");
}

/// An import whose targets are signed by a key the root never named: on a server that only
/// checked shapes, it was stored and its tag mirrored with the forger's key as "signer".
/// The server verifies the history itself: refused, nothing stored, nothing mirrored.
#[test]
fn imported_histories_are_verified_before_anything_is_stored() {
    use base64::Engine as _;
    use trustbridge_tuf::metadata::FileMeta;
    use trustbridge_tuf::{GoTime, KeyType, PrivateKey, Root, Signed, Targets, Timestamp, x509};
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let st = trustbridge_e2e::bridge::start_bridge(dir, r#","allow_loopback":true"#);
    let gun = "127.0.0.1:1/team/forged";
    let k = || PrivateKey::generate(KeyType::Ecdsa).unwrap();
    let (root_key, targets_key, snapshot_key, timestamp_key, forger) = (k(), k(), k(), k(), k());
    let cert = x509::generate_root_certificate(gun, &root_key, 10).unwrap();
    let root = Root::initial([
        ("root", cert.clone()),
        ("targets", targets_key.public_key().clone()),
        ("snapshot", snapshot_key.public_key().clone()),
        ("timestamp", timestamp_key.public_key().clone()),
    ]);
    let root = Signed::sign_with_ids(root, vec![(cert.id(), &root_key)]).unwrap();
    let targets = Targets {
        type_: "Targets".into(),
        delegations: Default::default(),
        expires: GoTime::now().plus_years(3),
        targets: [("v1".to_string(), FileMeta::from_bytes(b"image"))].into(),
        version: 1,
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let import = |targets_by: &PrivateKey| {
        let targets = Signed::sign(targets.clone(), &[targets_by]).unwrap();
        let ts = Timestamp {
            type_: "Timestamp".into(),
            expires: GoTime::now().plus_years(1),
            meta: Default::default(),
            version: 1,
        };
        let ts = Signed::sign(ts, &[&timestamp_key]).unwrap();
        let body = serde_json::json!({"files": [
            {"role": "root", "version": 1, "data": b64.encode(root.raw())},
            {"role": "targets", "version": 1, "data": b64.encode(targets.raw())},
            {"role": "timestamp", "version": 1, "data": b64.encode(ts.raw())},
        ]});
        let out = Command::new("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
            .arg(&st.ca)
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(body.to_string())
            .arg(format!("{}/_trustbridge/v1/import/{gun}", st.url))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.trim().to_string(), body.to_string())
    };
    let (code, body) = import(&forger);
    assert_eq!(code, "400", "a forged targets file: {body}");
    assert!(
        body.contains("targets"),
        "the refusal names the role: {body}"
    );
    let (code, _) = https_get(&format!("{}/v2/{gun}/_trust/tuf/root.json", st.url), &st.ca);
    assert_eq!(code, 404, "nothing stored");
    let (_, status) = https_get(
        &format!("{}/_trustbridge/v1/status?gun={gun}", st.url),
        &st.ca,
    );
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(
        status["targets"],
        serde_json::json!([]),
        "nothing mirrored: {status}"
    );
    // The same history, signed as the root says, is taken, and its tag queued for mirroring.
    let (code, body) = import(&targets_key);
    assert_eq!(code, "200", "{body}");
    let job = trustbridge_e2e::bridge::wait_status(&st, gun, "v1", |_| true);
    assert_eq!(job["signers"], targets_key.id(), "{job}");
}
