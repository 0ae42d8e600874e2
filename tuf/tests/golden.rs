//! Golden tests over real notary 0.7.0 output: our core must read, re-emit, hash and verify
//! every byte exactly as Go notary does.

mod common;

use std::collections::BTreeMap;

use trustbridge_tuf::metadata::{FileMeta, Role};
use trustbridge_tuf::{
    Error, GoTime, PublicKey, Root, Signed, Snapshot, Targets, Timestamp, keyfile, x509,
};

/// Parse as the role its `_type` names and re-emit; return the re-emitted bytes.
fn reemit(bytes: &[u8]) -> Vec<u8> {
    fn go<T: Role>(b: &[u8]) -> Vec<u8> {
        let s = Signed::<T>::from_bytes("file", b).unwrap();
        assert_eq!(s.raw(), b);
        s.to_notary_bytes().unwrap()
    }
    match common::type_of(bytes).as_str() {
        "Root" => go::<Root>(bytes),
        "Targets" => go::<Targets>(bytes),
        "Snapshot" => go::<Snapshot>(bytes),
        "Timestamp" => go::<Timestamp>(bytes),
        t => panic!("unexpected _type {t}"),
    }
}

#[test]
fn every_file_reemits_byte_identical() {
    for f in common::metadata_files() {
        let bytes = common::read(&f);
        assert_eq!(
            String::from_utf8(reemit(&bytes)).unwrap(),
            String::from_utf8(bytes).unwrap(),
            "{f}"
        );
    }
}

fn roots() -> Vec<Signed<Root>> {
    (1..=3)
        .map(|v| {
            Signed::from_bytes(
                "root",
                &common::read(&format!("metadata/versions/root/{v}.json")),
            )
            .unwrap()
        })
        .collect()
}

/// Every public key any fixture lists, by the ID it is listed under.
fn all_listed_keys() -> BTreeMap<String, PublicKey> {
    let mut keys = BTreeMap::new();
    for r in roots() {
        keys.extend(r.signed.keys.clone());
    }
    for f in common::metadata_files() {
        let b = common::read(&f);
        if common::type_of(&b) == "Targets" {
            keys.extend(
                Signed::<Targets>::from_bytes("targets", &b)
                    .unwrap()
                    .signed
                    .delegations
                    .keys,
            );
        }
    }
    keys
}

#[test]
fn every_key_id_recomputes() {
    let keys = all_listed_keys();
    assert!(keys.len() >= 7);
    for (id, key) in &keys {
        assert_eq!(&key.id(), id);
    }
    // server-held keys as served by GET {snapshot,timestamp}.key (Go's field order, not canonical)
    let root = &roots()[2].signed;
    for (file, role) in [
        ("metadata/snapshot.key.json", "snapshot"),
        ("metadata/timestamp.key.json", "timestamp"),
    ] {
        let key: PublicKey = serde_json::from_slice(&common::read(file)).unwrap();
        assert_eq!(root.roles[role].keyids, vec![key.id()], "{file}");
    }
}

#[test]
fn certificate_key_ids_differ_from_canonical_ids_as_in_notary() {
    // The private key files are named by canonical ID; root.json lists certificate IDs.
    let root = &roots()[2].signed;
    let cert_id = &root.roles["root"].keyids[0];
    let canonical = root.keys[cert_id].canonical_id().unwrap();
    assert_ne!(&canonical, cert_id);
    let dir = common::dir().join("THROWAWAY-client-private-keys");
    let file = dir.join(format!("{canonical}.key"));
    let kf = keyfile::decode(&std::fs::read(&file).unwrap(), "throwaway-root").unwrap();
    assert_eq!(kf.key.id(), canonical);
    assert_eq!(kf.role.as_deref(), Some("root"));
    assert_eq!(kf.gun, None);
}

#[test]
fn every_real_signature_verifies() {
    let keys = all_listed_keys();
    let mut checked = 0;
    for f in common::metadata_files() {
        let b = common::read(&f);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        let msg = trustbridge_tuf::cjson::canonical(&v["signed"]).unwrap();
        let sigs: Vec<trustbridge_tuf::metadata::Signature> =
            serde_json::from_value(v["signatures"].clone()).unwrap();
        assert!(!sigs.is_empty(), "{f}");
        for s in sigs {
            // The server-held timestamp and snapshot keys are listed in root by their IDs.
            let key = keys
                .get(&s.keyid)
                .unwrap_or_else(|| panic!("{f}: unknown key {}", s.keyid));
            key.verify(&s.method, &msg, &s.sig)
                .unwrap_or_else(|e| panic!("{f}: {e}"));
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked}");
}

#[test]
fn current_metadata_meets_thresholds_and_root_chain_validates() {
    let now = GoTime::parse("2026-11-24T00:00:00Z").unwrap();
    let rs = roots();
    x509::validate_root(common::GUN, &rs[0], None, &now).unwrap();
    x509::validate_root(common::GUN, &rs[1], Some(&rs[0]), &now).unwrap();
    x509::validate_root(common::GUN, &rs[2], Some(&rs[1]), &now).unwrap();
    // Root v3 rotated the root key: v1's key alone did not sign... but v2 -> v3 must carry v2's.
    assert!(matches!(
        x509::validate_root("example.com/other", &rs[2], None, &now),
        Err(Error::RootInvalid { .. })
    ));

    let root = &rs[2].signed;
    let role = |r: &str| (root.roles[r].keyids.clone(), root.roles[r].threshold);
    let targets =
        Signed::<Targets>::from_bytes("targets", &common::read("metadata/targets.json")).unwrap();
    let (ids, t) = role("targets");
    targets
        .verify("targets", &root.keys, &ids, t, 1, true)
        .unwrap();
    let snapshot =
        Signed::<Snapshot>::from_bytes("snapshot", &common::read("metadata/snapshot.json"))
            .unwrap();
    let (ids, t) = role("snapshot");
    snapshot
        .verify("snapshot", &root.keys, &ids, t, 1, true)
        .unwrap();
    let ts = Signed::<Timestamp>::from_bytes("timestamp", &common::read("metadata/timestamp.json"))
        .unwrap();
    let (ids, t) = role("timestamp");
    ts.verify("timestamp", &root.keys, &ids, t, 1, true)
        .unwrap();
    let rel = Signed::<Targets>::from_bytes(
        "targets/releases",
        &common::read("metadata/targets/releases.json"),
    )
    .unwrap();
    let d = &targets.signed.delegations.roles[0];
    assert_eq!(d.name, "targets/releases");
    assert_eq!(d.paths, vec![String::new()]);
    rel.verify(
        "targets/releases",
        &targets.signed.delegations.keys,
        &d.keyids,
        d.threshold,
        1,
        true,
    )
    .unwrap();
    // A role's keys do not verify another role's file.
    let (ids, t) = role("snapshot");
    assert!(matches!(
        targets.verify_signatures("targets", &root.keys, &ids, t),
        Err(Error::Threshold { .. })
    ));
    // Expiry is checked against the clock given, never against the wall clock here.
    let later = GoTime::parse("2027-01-01T00:00:00Z").unwrap();
    assert!(matches!(
        ts.check_expiry("timestamp", &later),
        Err(Error::Expired { .. })
    ));
    assert!(ts.check_expiry("timestamp", &now).is_ok());
    assert!(matches!(
        ts.check_version("timestamp", 8),
        Err(Error::LowVersion {
            version: 7,
            min: 8,
            ..
        })
    ));
}

#[test]
fn snapshot_and_timestamp_hashes_match_the_files_they_cover() {
    let ts = Signed::<Timestamp>::from_bytes("timestamp", &common::read("metadata/timestamp.json"))
        .unwrap();
    let snap_bytes = common::read("metadata/snapshot.json");
    ts.signed.meta["snapshot"]
        .check("timestamp", "snapshot", &snap_bytes)
        .unwrap();
    let snap = Signed::<Snapshot>::from_bytes("snapshot", &snap_bytes).unwrap();
    for (role, file) in [
        ("root", "root.json"),
        ("targets", "targets.json"),
        ("targets/releases", "targets/releases.json"),
    ] {
        snap.signed.meta[role]
            .check("snapshot", role, &common::read(&format!("metadata/{file}")))
            .unwrap();
    }
    assert_eq!(snap.signed.meta.len(), 3);
    // by-checksum files are named by the sha256 of their stored bytes
    for f in common::metadata_files()
        .into_iter()
        .filter(|f| f.contains("by-checksum"))
    {
        let sha = f.rsplit('.').nth(1).unwrap();
        let b = common::read(&f);
        assert_eq!(
            hex::encode(ring::digest::digest(&ring::digest::SHA256, &b)),
            sha
        );
    }
    // Every historical timestamp names some historical snapshot, every snapshot entry some version.
    let versions = |role: &str| -> Vec<Vec<u8>> {
        let d = common::dir().join("metadata/versions").join(role);
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    };
    for t in versions("timestamp") {
        let t = Signed::<Timestamp>::from_bytes("timestamp", &t).unwrap();
        assert!(versions("snapshot").iter().any(|s| {
            t.signed.meta["snapshot"]
                .check("timestamp", "snapshot", s)
                .is_ok()
        }));
    }
    for s in versions("snapshot") {
        let s = Signed::<Snapshot>::from_bytes("snapshot", &s).unwrap();
        for (role, meta) in &s.signed.meta {
            // targets v1 and snapshot v1 were replaced by the client's first publish (README).
            if versions(role)
                .iter()
                .any(|b| meta.check("snapshot", role, b).is_ok())
            {
                continue;
            }
            assert!(
                role == "targets" && s.signed.version <= 2,
                "{role} in snapshot v{}",
                s.signed.version
            );
        }
    }
    // Our FileMeta of a file equals what notary wrote for it.
    assert_eq!(
        FileMeta::from_bytes(&snap_bytes),
        ts.signed.meta["snapshot"]
    );
}

/// Replace byte `i` by another byte of the same class, so the document stays valid JSON.
fn tamper(b: &[u8], i: usize) -> Option<Vec<u8>> {
    let c = b[i];
    let r = match c {
        b'0'..=b'8' => c + 1,
        b'9' => b'0',
        b'a'..=b'y' | b'A'..=b'Y' => c + 1,
        b'z' => b'a',
        b'Z' => b'A',
        _ => return None,
    };
    let mut t = b.to_vec();
    t[i] = r;
    Some(t)
}

/// Full verification of a current file the way a client does it: parse, key IDs, signatures
/// with root (or the delegating role), and its hash in snapshot (or timestamp).
/// The untampered documents a tampered file is checked against, parsed once.
struct Reference {
    root: Signed<Root>,
    prev_root: Signed<Root>,
    targets: Signed<Targets>,
    snap: Signed<Snapshot>,
    ts: Signed<Timestamp>,
}

impl Reference {
    fn load() -> Self {
        Reference {
            root: Signed::from_bytes("root", &common::read("metadata/root.json")).unwrap(),
            prev_root: Signed::from_bytes("root", &common::read("metadata/versions/root/2.json"))
                .unwrap(),
            targets: Signed::from_bytes("targets", &common::read("metadata/targets.json")).unwrap(),
            snap: Signed::from_bytes("snapshot", &common::read("metadata/snapshot.json")).unwrap(),
            ts: Signed::from_bytes("timestamp", &common::read("metadata/timestamp.json")).unwrap(),
        }
    }
}

fn verify_current(reference: &Reference, role: &str, bytes: &[u8]) -> Result<(), Error> {
    let r = &reference.root.signed;
    let (snap, ts) = (&reference.snap, &reference.ts);
    let check_ids = |keys: &BTreeMap<String, PublicKey>| -> Result<(), Error> {
        for (id, k) in keys {
            if &k.id() != id {
                return Err(Error::Key {
                    key_id: id.clone(),
                    reason: "key ID does not match".into(),
                });
            }
        }
        Ok(())
    };
    match role {
        "root" => {
            let new = Signed::<Root>::from_bytes(role, bytes)?;
            check_ids(&new.signed.keys)?;
            x509::validate_root(
                common::GUN,
                &new,
                Some(&reference.prev_root),
                &GoTime::parse("2026-11-24T00:00:00Z").unwrap(),
            )?;
            snap.signed.meta["root"].check("snapshot", role, bytes)
        }
        "targets" | "targets/releases" => {
            let t = Signed::<Targets>::from_bytes(role, bytes)?;
            check_ids(&t.signed.delegations.keys)?;
            if role == "targets" {
                t.verify(role, &r.keys, &r.roles["targets"].keyids, 1, 1, true)?;
            } else {
                let parent = &reference.targets;
                let d = &parent.signed.delegations.roles[0];
                t.verify(
                    role,
                    &parent.signed.delegations.keys,
                    &d.keyids,
                    d.threshold,
                    1,
                    true,
                )?;
            }
            snap.signed.meta[role].check("snapshot", role, bytes)
        }
        "snapshot" => {
            let s = Signed::<Snapshot>::from_bytes(role, bytes)?;
            s.verify(role, &r.keys, &r.roles["snapshot"].keyids, 1, 1, true)?;
            ts.signed.meta["snapshot"].check("timestamp", role, bytes)
        }
        "timestamp" => {
            let t = Signed::<Timestamp>::from_bytes(role, bytes)?;
            t.verify(role, &r.keys, &r.roles["timestamp"].keyids, 1, 1, true)
        }
        _ => unreachable!(),
    }
}

#[test]
fn one_byte_tamper_anywhere_is_rejected() {
    let reference = Reference::load();
    for (role, file) in [
        ("root", "metadata/root.json"),
        ("targets", "metadata/targets.json"),
        ("targets/releases", "metadata/targets/releases.json"),
        ("snapshot", "metadata/snapshot.json"),
        ("timestamp", "metadata/timestamp.json"),
    ] {
        let b = common::read(file);
        verify_current(&reference, role, &b).unwrap_or_else(|e| panic!("untampered {role}: {e}"));
        let sig_start = b
            .windows(14)
            .position(|w| w == b"\"signatures\":[")
            .unwrap();
        let mut tried = 0;
        for i in 0..b.len() {
            let Some(t) = tamper(&b, i) else { continue };
            tried += 1;
            let err = verify_current(&reference, role, &t)
                .expect_err(&format!("{role}: tamper at byte {i} accepted"));
            // Inside the signed body or a signature value, the signature check is what must
            // catch it (unless the change already broke parsing, a key or a certificate).
            if i > sig_start
                && !matches!(
                    err,
                    Error::Threshold { .. }
                        | Error::Json(_)
                        | Error::RootInvalid { .. }
                        | Error::RootRotation { .. }
                )
            {
                // a tampered keyid: the signature no longer names a role key
                panic!("{role}: tamper at byte {i} (in signatures) gave {err}");
            }
            if role == "timestamp" && i < sig_start {
                assert!(
                    matches!(
                        err,
                        Error::Threshold { .. }
                            | Error::Json(_)
                            | Error::WrongType { .. }
                            | Error::Structure { .. }
                            | Error::MissingMeta { .. }
                    ),
                    "timestamp byte {i}: {err}"
                );
            }
        }
        assert!(tried > 100, "{role}: {tried}");
    }
}

#[test]
fn throwaway_keys_decrypt_to_notary_pkcs8_and_match_the_metadata() {
    let dir = common::dir().join("THROWAWAY-client-private-keys");
    let root = Signed::<Root>::from_bytes("root", &common::read("metadata/root.json"))
        .unwrap()
        .signed;
    let targets = Signed::<Targets>::from_bytes("targets", &common::read("metadata/targets.json"))
        .unwrap()
        .signed;
    let listed: Vec<String> = root
        .keys
        .values()
        .chain(targets.delegations.keys.values())
        .map(|k| k.canonical_id().unwrap())
        .collect();
    let mut matched = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".key") else {
            continue;
        };
        let text = std::fs::read(&p).unwrap();
        let role = pem::parse(&text)
            .unwrap()
            .headers()
            .get("role")
            .unwrap()
            .to_string();
        let pass = match role.as_str() {
            "root" => "throwaway-root",
            "targets" => "throwaway-targets",
            "snapshot" => "throwaway-snapshot",
            _ => "throwaway-delegation",
        };
        let kf = keyfile::decode(&text, pass).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(kf.key.id(), id, "file name is the canonical key ID");
        // Our PKCS#8 encoding of the key is byte-identical to what notary encrypted.
        let der = pem::parse(&text).unwrap().into_contents();
        let plain = keyfile::decrypt_pkcs8(&der, pass).unwrap();
        assert_eq!(&kf.key.to_notary_pkcs8()[..], &plain[..], "{name}");
        if listed.contains(&id.to_string()) {
            matched += 1;
        }
        assert!(matches!(
            keyfile::decode(&text, "wrong"),
            Err(Error::WrongPassphrase)
        ));
    }
    assert!(
        matched >= 3,
        "root, targets and delegation keys are listed in the metadata: {matched}"
    );
    // The unencrypted delegation key (standard PKCS#8) is the one listed for targets/releases.
    let plain = keyfile::decode(
        &std::fs::read(dir.join("releases-delegation-unencrypted.pem")).unwrap(),
        "",
    )
    .unwrap();
    assert_eq!(
        plain.key.id(),
        "19e4673e252291fd2d5ba6b88bf30e1d77bafb0a0e825002838a305d344c8c9d"
    );
}

#[test]
fn our_encrypted_key_files_have_notarys_exact_layout() {
    let their_text = String::from_utf8(common::read("THROWAWAY-client-private-keys/3f7294e7a02c1f7c53d8e629774b75ec309bb2bb3fd96c4d0b26f7fdc5547269.key")).unwrap();
    let theirs = pem::parse(&their_text).unwrap();
    let key = keyfile::decode(their_text.as_bytes(), "throwaway-targets")
        .unwrap()
        .key;
    let ours_text = keyfile::encode(&key, "targets", Some(common::GUN), "pw").unwrap();
    let ours = pem::parse(&ours_text).unwrap();
    let (a, b) = (theirs.contents(), ours.contents());
    assert_eq!(a.len(), b.len());
    // Same DER skeleton; only salt (35..43), IV (62..78) and ciphertext (81..) differ.
    assert_eq!(a[..35], b[..35]);
    assert_eq!(a[43..62], b[43..62]);
    assert_eq!(a[78..81], b[78..81]);
    // Same PEM framing: type, sorted `gun:`/`role:` headers, blank line, 64-column base64.
    let shape = |t: &str| {
        t.lines()
            .map(|l| {
                if l.starts_with("-----") || l.contains(": ") {
                    l.to_string()
                } else {
                    l.len().to_string()
                }
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&ours_text), shape(&their_text));
}
