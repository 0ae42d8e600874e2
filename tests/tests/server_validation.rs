//! Every validation rule of notary's update check (reference §3), against trustbridge-server
//! over HTTPS: a bad update is sent as the client would send it (multipart, part filename =
//! role), the answer must carry notary's status, error code and validation error name, and
//! every stored file must be byte-for-byte what it was before.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use trustbridge_e2e::server::{CLIENT_PASS, Stack, notary, start_stack};
use trustbridge_e2e::{https_get, init, require_bin};
use trustbridge_tuf::metadata::{DelegationRole, FileMeta, RootRole};
use trustbridge_tuf::{
    GoTime, KeyType, PrivateKey, Root, Signed, Snapshot, Targets, keyfile, x509,
};

const GUN: &str = "127.0.0.1/e2e/validation";

/// POST a multipart update; returns (status, body JSON or Null).
fn post(s: &Stack, gun: &str, parts: &[(&str, &[u8])], dir: &Path) -> (u16, serde_json::Value) {
    let mut cmd = Command::new(require_bin("curl"));
    cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(&s.ca);
    for (i, (role, data)) in parts.iter().enumerate() {
        let f = dir.join(format!("part{i}"));
        std::fs::write(&f, data).unwrap();
        cmd.arg("-F")
            .arg(format!("files=@{};filename={role}", f.display()));
    }
    cmd.arg(format!("{}/v2/{gun}/_trust/tuf/", s.url));
    raw_response(cmd)
}

fn raw_response(mut cmd: Command) -> (u16, serde_json::Value) {
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.trim().parse().unwrap(),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

fn get(s: &Stack, name: &str) -> Vec<u8> {
    let (code, body) = https_get(&format!("{}/v2/{GUN}/_trust/tuf/{name}", s.url), &s.ca);
    assert_eq!(code, 200, "{name}");
    body
}

/// The stored files that must not change when an update is refused.
fn snapshot_of_store(s: &Stack) -> Vec<Vec<u8>> {
    [
        "root.json",
        "targets.json",
        "snapshot.json",
        "timestamp.json",
    ]
    .iter()
    .map(|n| get(s, n))
    .collect()
}

fn key_of(trust: &Path, public: &trustbridge_tuf::PublicKey) -> PrivateKey {
    let id = public.canonical_id().unwrap();
    let text = std::fs::read(trust.join("private").join(format!("{id}.key"))).unwrap();
    keyfile::decode(&text, CLIENT_PASS).unwrap().key
}

struct Case<'a> {
    name: &'a str,
    parts: Vec<(&'a str, Vec<u8>)>,
    status: u16,
    code: &'a str,
    /// Expected `detail.Name` for INVALID_UPDATE.
    detail: Option<&'a str>,
}

#[test]
fn every_rule_refuses_and_nothing_changes() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let s = start_stack(dir);
    let trust = dir.join("trust");
    let file = dir.join("a.bin");
    std::fs::write(&file, b"a").unwrap();
    notary(&s.url, &s.ca, &trust, &["init", GUN, "-p"]);
    notary(
        &s.url,
        &s.ca,
        &trust,
        &["add", GUN, "v1", file.to_str().unwrap()],
    );
    notary(&s.url, &s.ca, &trust, &["publish", GUN]);

    let root = Signed::<Root>::from_bytes("root", &get(&s, "root.json")).unwrap();
    let targets = Signed::<Targets>::from_bytes("targets", &get(&s, "targets.json")).unwrap();
    let snapshot = Signed::<Snapshot>::from_bytes("snapshot", &get(&s, "snapshot.json")).unwrap();
    let r = &root.signed;
    let root_id = r.roles["root"].keyids[0].clone();
    let root_key = key_of(&trust, &r.keys[&root_id]);
    let targets_key = key_of(&trust, &r.keys[&r.roles["targets"].keyids[0]]);
    let snapshot_key = key_of(&trust, &r.keys[&r.roles["snapshot"].keyids[0]]);
    let future = || GoTime::now().plus_years(1);

    let next_targets = |f: &dyn Fn(&mut Targets), key: &PrivateKey| {
        let mut t = targets.signed.clone();
        t.version += 1;
        t.expires = future();
        t.targets.insert("v2".into(), FileMeta::from_bytes(b"v2"));
        f(&mut t);
        Signed::sign(t, &[key]).unwrap()
    };
    let snapshot_for = |items: &[(&str, &[u8])], version_bump: i64| {
        let mut sn = snapshot.signed.clone();
        sn.version += version_bump;
        sn.expires = future();
        for (role, data) in items {
            sn.meta.insert(role.to_string(), FileMeta::from_bytes(data));
        }
        Signed::sign(sn, &[&snapshot_key]).unwrap()
    };

    let good_targets = next_targets(&|_| {}, &targets_key);
    let good_snapshot = snapshot_for(&[("targets", good_targets.raw())], 1);

    // One-byte tamper inside the signed part of targets.
    let mut tampered = good_targets.raw().to_vec();
    let pos = tampered.windows(4).position(|w| w == b"\"v2\"").unwrap() + 2;
    tampered[pos] = b'3';
    let expired = next_targets(
        &|t| t.expires = GoTime::parse("2020-01-01T00:00:00Z").unwrap(),
        &targets_key,
    );
    let wrong_key = next_targets(&|_| {}, &snapshot_key);
    let same_version = {
        let mut t = targets.signed.clone();
        t.targets.insert("v9".into(), FileMeta::from_bytes(b"v9"));
        Signed::sign(t, &[&targets_key]).unwrap()
    };
    let same_version_snap = snapshot_for(&[("targets", same_version.raw())], 1);
    let stale_snapshot = snapshot_for(&[], 0); // hashes old targets: wrong for the new one

    // A root rotated to a new key, signed only by the new key.
    let new_root_key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
    let new_cert = x509::generate_root_certificate(GUN, &new_root_key, 10).unwrap();
    let rogue_root = {
        let mut nr = r.clone();
        nr.version += 1;
        let new_id = new_cert.id();
        nr.keys.insert(new_id.clone(), new_cert.clone());
        nr.roles.insert(
            "root".into(),
            RootRole {
                keyids: vec![new_id.clone()],
                threshold: 1,
            },
        );
        Signed::sign_with_ids(nr, vec![(new_id, &new_root_key)]).unwrap()
    };
    let jumped_root = {
        let mut nr = r.clone();
        nr.version += 3;
        Signed::sign_with_ids(nr, vec![(root_id.clone(), &root_key)]).unwrap()
    };
    let expired_root = {
        let mut nr = r.clone();
        nr.version += 1;
        nr.expires = GoTime::parse("2021-01-01T00:00:00Z").unwrap();
        Signed::sign_with_ids(nr, vec![(root_id.clone(), &root_key)]).unwrap()
    };

    // The targets key listed a second time under a key ID that is not its own, so that one
    // key would meet a threshold of 2.
    let alias = "ab".repeat(32);
    let doubled_root = {
        let mut nr = r.clone();
        nr.version += 1;
        let tk = r.roles["targets"].keyids[0].clone();
        nr.keys.insert(alias.clone(), r.keys[&tk].clone());
        nr.roles.insert(
            "targets".into(),
            RootRole {
                keyids: vec![tk, alias.clone()],
                threshold: 2,
            },
        );
        Signed::sign_with_ids(nr, vec![(root_id.clone(), &root_key)]).unwrap()
    };

    // A delegation restricted to "allowed/" holding a target outside it.
    let deleg_key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
    let with_deleg = next_targets(
        &|t| {
            t.delegations
                .keys
                .insert(deleg_key.id(), deleg_key.public_key().clone());
            t.delegations.roles.push(DelegationRole {
                keyids: vec![deleg_key.id()],
                name: "targets/team".into(),
                paths: vec!["allowed/".into()],
                path_hash_prefixes: None,
                threshold: 1,
            });
        },
        &targets_key,
    );
    let aliased_deleg = next_targets(
        &|t| {
            t.delegations
                .keys
                .insert(alias.clone(), deleg_key.public_key().clone());
            t.delegations.roles.push(DelegationRole {
                keyids: vec![alias.clone()],
                name: "targets/team".into(),
                paths: vec!["".into()],
                path_hash_prefixes: None,
                threshold: 1,
            });
        },
        &targets_key,
    );
    let aliased_deleg_snap = snapshot_for(&[("targets", aliased_deleg.raw())], 1);
    let doubled_root_snap = snapshot_for(&[("root", doubled_root.raw())], 1);
    let outside = {
        let mut t = targets.signed.clone();
        t.version = 1;
        t.expires = future();
        t.delegations = Default::default();
        t.targets = BTreeMap::from([("elsewhere/x".to_string(), FileMeta::from_bytes(b"x"))]);
        Signed::sign(t, &[&deleg_key]).unwrap()
    };
    let outside_snap = snapshot_for(
        &[
            ("targets", with_deleg.raw()),
            ("targets/team", outside.raw()),
        ],
        1,
    );

    // Target entries TUF forbids: no hashes, a negative length, a SHA-256 of 16 bytes.
    let bad_entry = |f: &dyn Fn(&mut FileMeta)| {
        let t = next_targets(
            &|t| {
                let mut m = FileMeta::from_bytes(b"bad");
                f(&mut m);
                t.targets.insert("bad".into(), m);
            },
            &targets_key,
        );
        let sn = snapshot_for(&[("targets", t.raw())], 1);
        (t, sn)
    };
    let (no_hashes, no_hashes_snap) = bad_entry(&|m| m.hashes.clear());
    let (negative, negative_snap) = bad_entry(&|m| m.length = -1);
    let (short_sha, short_sha_snap) = bad_entry(&|m| {
        m.hashes.insert("sha256".into(), vec![7u8; 16]);
    });
    // A snapshot naming a delegation that exists nowhere.
    let ghost_snap = snapshot_for(
        &[("targets", good_targets.raw()), ("targets/ghost", b"{}")],
        1,
    );

    let invalid = |name, parts, detail| Case {
        name,
        parts,
        status: 400,
        code: "INVALID_UPDATE",
        detail: Some(detail),
    };
    let cases = vec![
        invalid(
            "tampered targets",
            vec![
                ("targets", tampered.clone()),
                ("snapshot", good_snapshot.raw().to_vec()),
            ],
            "ErrBadTargets",
        ),
        invalid(
            "targets threshold not met",
            vec![
                ("targets", wrong_key.raw().to_vec()),
                ("snapshot", good_snapshot.raw().to_vec()),
            ],
            "ErrBadTargets",
        ),
        invalid(
            "expired targets",
            vec![
                ("targets", expired.raw().to_vec()),
                ("snapshot", good_snapshot.raw().to_vec()),
            ],
            "ErrBadTargets",
        ),
        invalid(
            "root rotation not signed by the old root",
            vec![("root", rogue_root.raw().to_vec())],
            "ErrBadRoot",
        ),
        invalid(
            "root key under a key ID that is not its own",
            vec![
                ("root", doubled_root.raw().to_vec()),
                ("snapshot", doubled_root_snap.raw().to_vec()),
            ],
            "ErrBadRoot",
        ),
        invalid(
            "delegation key under a key ID that is not its own",
            vec![
                ("targets", aliased_deleg.raw().to_vec()),
                ("snapshot", aliased_deleg_snap.raw().to_vec()),
            ],
            "ErrBadTargets",
        ),
        invalid(
            "root version jump",
            vec![("root", jumped_root.raw().to_vec())],
            "ErrBadRoot",
        ),
        invalid(
            "expired root",
            vec![("root", expired_root.raw().to_vec())],
            "ErrBadRoot",
        ),
        invalid(
            "snapshot with a wrong targets hash",
            vec![
                ("targets", good_targets.raw().to_vec()),
                ("snapshot", stale_snapshot.raw().to_vec()),
            ],
            "ErrBadSnapshot",
        ),
        invalid(
            "no snapshot and no server snapshot key",
            vec![("targets", good_targets.raw().to_vec())],
            "ErrBadHierarchy",
        ),
        invalid(
            "delegated target outside its paths",
            vec![
                ("targets", with_deleg.raw().to_vec()),
                ("targets/team", outside.raw().to_vec()),
                ("snapshot", outside_snap.raw().to_vec()),
            ],
            "ErrBadTargets",
        ),
        invalid(
            "target without hashes",
            vec![
                ("targets", no_hashes.raw().to_vec()),
                ("snapshot", no_hashes_snap.raw().to_vec()),
            ],
            "ErrBadTargets",
        ),
        invalid(
            "target with a negative length",
            vec![
                ("targets", negative.raw().to_vec()),
                ("snapshot", negative_snap.raw().to_vec()),
            ],
            "ErrBadTargets",
        ),
        invalid(
            "target with a 16-byte SHA-256",
            vec![
                ("targets", short_sha.raw().to_vec()),
                ("snapshot", short_sha_snap.raw().to_vec()),
            ],
            "ErrBadTargets",
        ),
        invalid(
            "snapshot naming a role that does not exist",
            vec![
                ("targets", good_targets.raw().to_vec()),
                ("snapshot", ghost_snap.raw().to_vec()),
            ],
            "ErrBadSnapshot",
        ),
        invalid(
            "two parts for targets (notary kept the last)",
            vec![
                ("targets", tampered.clone()),
                ("targets", good_targets.raw().to_vec()),
                ("snapshot", good_snapshot.raw().to_vec()),
            ],
            "ErrBadTargets",
        ),
        Case {
            name: "rollback: targets version not increased",
            parts: vec![
                ("targets", same_version.raw().to_vec()),
                ("snapshot", same_version_snap.raw().to_vec()),
            ],
            status: 400,
            code: "VERSION",
            detail: None,
        },
        Case {
            name: "replay of the stored snapshot",
            parts: vec![("snapshot", snapshot.raw().to_vec())],
            status: 400,
            code: "VERSION",
            detail: None,
        },
        Case {
            name: "malformed JSON",
            parts: vec![("targets", b"{not json".to_vec())],
            status: 400,
            code: "MALFORMED_JSON",
            detail: None,
        },
        Case {
            name: "invalid role name",
            parts: vec![("targets/Upper", good_targets.raw().to_vec())],
            status: 400,
            code: "INVALID_ROLE",
            detail: None,
        },
    ];
    let before = snapshot_of_store(&s);
    for c in &cases {
        let parts: Vec<(&str, &[u8])> = c.parts.iter().map(|(r, d)| (*r, d.as_slice())).collect();
        let (status, body) = post(&s, GUN, &parts, dir);
        assert_eq!(status, c.status, "{}: {body}", c.name);
        assert_eq!(body["errors"][0]["code"], c.code, "{}: {body}", c.name);
        if let Some(d) = c.detail {
            assert_eq!(body["errors"][0]["detail"]["Name"], d, "{}: {body}", c.name);
        }
        assert_eq!(
            snapshot_of_store(&s),
            before,
            "{}: stored metadata changed",
            c.name
        );
        assert_eq!(
            https_get(
                &format!("{}/v2/{GUN}/_trust/tuf/targets/team.json", s.url),
                &s.ca
            )
            .0,
            404,
            "{}",
            c.name
        );
    }

    // No root stored and none uploaded.
    let (status, body) = post(
        &s,
        "127.0.0.1/e2e/empty",
        &[("targets", good_targets.raw())],
        dir,
    );
    assert_eq!(
        (status, &body["errors"][0]["detail"]["Name"]),
        (400, &serde_json::json!("ErrValidation")),
        "{body}"
    );

    // No filename, and a body that is not multipart.
    let mut cmd = Command::new(require_bin("curl"));
    cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(&s.ca)
        .args(["-F", "files=plain-field-without-filename"])
        .arg(format!("{}/v2/{GUN}/_trust/tuf/", s.url));
    let (status, body) = raw_response(cmd);
    assert_eq!(
        (status, body["errors"][0]["code"].as_str()),
        (400, Some("NO_FILENAME")),
        "{body}"
    );
    let mut cmd = Command::new(require_bin("curl"));
    cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(&s.ca)
        .args(["-X", "POST", "--data", "x"])
        .arg(format!("{}/v2/{GUN}/_trust/tuf/", s.url));
    let (status, body) = raw_response(cmd);
    assert_eq!(
        (status, body["errors"][0]["code"].as_str()),
        (400, Some("MALFORMED_UPLOAD")),
        "{body}"
    );
    assert_eq!(snapshot_of_store(&s), before);

    // The control: the good update is accepted and served.
    let (status, body) = post(
        &s,
        GUN,
        &[
            ("targets", good_targets.raw()),
            ("snapshot", good_snapshot.raw()),
        ],
        dir,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&s, "targets.json"), good_targets.raw());
    assert_eq!(get(&s, "snapshot.json"), good_snapshot.raw());
    let list = notary(&s.url, &s.ca, &dir.join("fresh"), &["list", GUN]);
    assert!(list.contains("v2"), "{list}");
}
