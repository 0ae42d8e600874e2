//! Our signatures against notary's keys and notary's signatures against our verifier, plus
//! metadata we write that notary's rules accept.

mod common;

use trustbridge_tuf::metadata::{FileMeta, Role};
use trustbridge_tuf::{
    Error, GoTime, KeyType, PrivateKey, Root, Signed, Snapshot, Targets, keyfile, x509,
};

fn throwaway(id: &str, pass: &str) -> PrivateKey {
    keyfile::decode(
        &common::read(&format!("THROWAWAY-client-private-keys/{id}.key")),
        pass,
    )
    .unwrap()
    .key
}

const TARGETS_KEY: &str = "3f7294e7a02c1f7c53d8e629774b75ec309bb2bb3fd96c4d0b26f7fdc5547269";

#[test]
fn we_sign_with_notarys_keys_and_the_metadata_keys_verify() {
    let root = Signed::<Root>::from_bytes("root", &common::read("metadata/root.json"))
        .unwrap()
        .signed;
    let key = throwaway(TARGETS_KEY, "throwaway-targets");
    let mut t = Signed::<Targets>::from_bytes("targets", &common::read("metadata/targets.json"))
        .unwrap()
        .signed;
    t.version += 1;
    t.targets.insert(
        "v4 <&> \u{2028}".into(),
        FileMeta::from_bytes(b"new content"),
    );
    let signed = Signed::sign(t, &[&key]).unwrap();
    let text = String::from_utf8(signed.raw().to_vec()).unwrap();
    assert!(
        text.contains(r#""v4 \u003c\u0026\u003e \u2028""#),
        "file form escapes: {text}"
    );
    let reparsed = Signed::<Targets>::from_bytes("targets", signed.raw()).unwrap();
    reparsed
        .verify(
            "targets",
            &root.keys,
            &root.roles["targets"].keyids,
            1,
            6,
            true,
        )
        .unwrap();
    assert_eq!(reparsed.to_notary_bytes().unwrap(), signed.raw());
    // and the root key (file named by canonical ID) signs root under its certificate key ID
    let cert_id = root.roles["root"].keyids[0].clone();
    let root_key = throwaway(
        &root.keys[&cert_id].canonical_id().unwrap(),
        "throwaway-root",
    );
    let mut r = root.clone();
    r.version += 1;
    let new_root = Signed::sign_with_ids(r, vec![(cert_id.clone(), &root_key)]).unwrap();
    let prev = Signed::<Root>::from_bytes("root", &common::read("metadata/root.json")).unwrap();
    x509::validate_root(common::GUN, &new_root, Some(&prev), &GoTime::now()).unwrap();
}

#[test]
fn keys_we_generate_sign_metadata_notary_rules_accept() {
    for kt in [KeyType::Ecdsa, KeyType::Ed25519] {
        let key = PrivateKey::generate(kt).unwrap();
        let body = Snapshot {
            type_: "Snapshot".into(),
            expires: GoTime::now().plus_years(3),
            meta: [("root", b"r".as_slice()), ("targets", b"t".as_slice())]
                .into_iter()
                .map(|(n, b)| (n.to_string(), FileMeta::from_bytes(b)))
                .collect(),
            version: 1,
        };
        let s = Signed::sign(body, &[&key]).unwrap();
        assert_eq!(
            s.signatures[0].method,
            if kt == KeyType::Ecdsa {
                "ecdsa"
            } else {
                "eddsa"
            }
        );
        let keys = [(key.id(), key.public_key().clone())].into_iter().collect();
        s.verify("snapshot", &keys, &[key.id()], 1, 1, false)
            .unwrap();
        // threshold 2 with one key fails, naming the role
        let err = s
            .verify_signatures("snapshot", &keys, &[key.id()], 2)
            .unwrap_err();
        assert!(
            matches!(&err, Error::Threshold { role, valid: 1, required: 2, .. } if role == "snapshot"),
            "{err}"
        );
        // a duplicate signature by the same key does not count twice
        let mut dup = Signed::<Snapshot>::from_bytes("snapshot", s.raw()).unwrap();
        dup.signatures.push(dup.signatures[0].clone());
        assert!(
            dup.verify_signatures("snapshot", &keys, &[key.id()], 2)
                .is_err()
        );
    }
}

#[test]
fn ecdsa_signatures_are_raw_r_s_and_verify_under_notarys_rules() {
    let key = throwaway(TARGETS_KEY, "throwaway-targets");
    let sig = key.sign(b"payload").unwrap();
    assert_eq!(sig.len(), 64, "raw r||s, not DER");
    key.public_key().verify("ecdsa", b"payload", &sig).unwrap();
    // a DER-encoded signature is refused as notary refuses it
    let der = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &ring::rand::SystemRandom::new(),
        )
        .unwrap()
        .as_ref(),
        &ring::rand::SystemRandom::new(),
    )
    .unwrap()
    .sign(&ring::rand::SystemRandom::new(), b"payload")
    .unwrap();
    assert!(
        key.public_key()
            .verify("ecdsa", b"payload", der.as_ref())
            .is_err()
    );
    assert!(matches!(
        key.public_key().verify("eddsa", b"payload", &sig),
        Err(Error::UnsupportedMethod { .. })
    ));
}

#[test]
fn generated_root_certificates_validate_like_notary_client_roots() {
    let gun = "example.com/ours/app";
    let root_key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
    let cert_key = x509::generate_root_certificate(gun, &root_key, 10).unwrap();
    assert_eq!(cert_key.key_type, KeyType::EcdsaX509);
    assert_eq!(cert_key.canonical_id().unwrap(), root_key.id());
    assert_ne!(cert_key.id(), root_key.id());
    let pem_text = String::from_utf8(cert_key.public.clone()).unwrap();
    assert!(
        pem_text.starts_with("-----BEGIN CERTIFICATE-----\n")
            && pem_text.ends_with("-----END CERTIFICATE-----\n")
    );
    let der = x509::certificate_ders(&cert_key.public).unwrap().remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        gun
    );
    assert!(!cert.is_ca());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.code_signing);
    let years = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp())
        / 86_400
        / 365;
    assert_eq!(years, 10);

    let others: Vec<PrivateKey> = (0..3)
        .map(|_| PrivateKey::generate(KeyType::Ecdsa).unwrap())
        .collect();
    let mut keys = std::collections::BTreeMap::new();
    keys.insert(cert_key.id(), cert_key.clone());
    let mut roles = std::collections::BTreeMap::new();
    roles.insert(
        "root".to_string(),
        trustbridge_tuf::metadata::RootRole {
            keyids: vec![cert_key.id()],
            threshold: 1,
        },
    );
    for (name, k) in ["targets", "snapshot", "timestamp"].iter().zip(&others) {
        keys.insert(k.id(), k.public_key().clone());
        roles.insert(
            name.to_string(),
            trustbridge_tuf::metadata::RootRole {
                keyids: vec![k.id()],
                threshold: 1,
            },
        );
    }
    let body = Root {
        type_: "Root".into(),
        consistent_snapshot: false,
        expires: GoTime::now().plus_years(10),
        keys,
        roles,
        version: 1,
    };
    body.check_structure("root").unwrap();
    let root = Signed::sign_with_ids(body.clone(), vec![(cert_key.id(), &root_key)]).unwrap();
    x509::validate_root(gun, &root, None, &GoTime::now()).unwrap();
    // wrong GUN for the certificate
    assert!(matches!(
        x509::validate_root("example.com/other", &root, None, &GoTime::now()),
        Err(Error::RootInvalid { .. })
    ));
    // a rotation to a new root key not signed by the old one is refused
    let new_key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
    let new_cert = x509::generate_root_certificate(gun, &new_key, 10).unwrap();
    let mut rotated = body.clone();
    rotated.version = 2;
    rotated.keys.remove(&cert_key.id());
    rotated.keys.insert(new_cert.id(), new_cert.clone());
    rotated.roles.get_mut("root").unwrap().keyids = vec![new_cert.id()];
    let only_new = Signed::sign_with_ids(rotated.clone(), vec![(new_cert.id(), &new_key)]).unwrap();
    assert!(matches!(
        x509::validate_root(gun, &only_new, Some(&root), &GoTime::now()),
        Err(Error::RootRotation { .. })
    ));
    let both = Signed::sign_with_ids(
        rotated,
        vec![(new_cert.id(), &new_key), (cert_key.id(), &root_key)],
    )
    .unwrap();
    x509::validate_root(gun, &both, Some(&root), &GoTime::now()).unwrap();
    // certificates are checked for expiry in the new root
    let in_eleven_years = GoTime::now().plus_years(11);
    assert!(x509::validate_root(gun, &root, None, &in_eleven_years).is_err());
}

/// A GUN with a registry port (`host:5000/...`) is a valid `gun:` header value; the file opens
/// again with the same role, GUN and key.
#[test]
fn key_files_for_guns_with_a_port() {
    let key = trustbridge_tuf::PrivateKey::generate(trustbridge_tuf::KeyType::Ecdsa).unwrap();
    let gun = "registry.example:5000/team/app";
    let text = trustbridge_tuf::keyfile::encode(&key, "targets", Some(gun), "pw").unwrap();
    assert!(
        text.contains("\ngun: registry.example:5000/team/app\nrole: targets\n\n"),
        "{text}"
    );
    let back = trustbridge_tuf::keyfile::decode(text.as_bytes(), "pw").unwrap();
    assert_eq!(back.gun.as_deref(), Some(gun));
    assert_eq!(back.role.as_deref(), Some("targets"));
    assert_eq!(back.key.id(), key.id());
    // Lines of 64 base64 characters, as Go's pem.Encode writes them.
    let body: Vec<&str> = text
        .lines()
        .skip(4)
        .take_while(|l| !l.starts_with("-----"))
        .collect();
    assert!(
        body[..body.len() - 1].iter().all(|l| l.len() == 64),
        "{text}"
    );
}
