//! The Cosign bridge key against sigstore-rs (cosign's formats, implemented by others):
//! * a `cosign.key` written by sigstore-rs imports into trustbridge-signer, which exports the
//!   same public key and signs payloads that sigstore-rs verifies (r||s from the Sign RPC,
//!   converted to the DER cosign stores);
//! * a `cosign.key` written by trustbridge decrypts with sigstore-rs to the same key.

use std::process::Command;

use sigstore::crypto::signing_key::SigStoreKeyPair;
use sigstore::crypto::signing_key::ecdsa::{ECDSAKeys, EllipticCurve};
use sigstore::crypto::{CosignVerificationKey, Signature};
use trustbridge_e2e::signer::{ALIAS1_PASS, ClientTls, connect, rt, start_ours, write_config};
use trustbridge_e2e::{free_port, init, our_bin, run_ok};
use trustbridge_signer::proto::{KeyId, SignatureRequest};

fn signer_cli(config: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(our_bin("trustbridge-signer", "trustbridge-signer"));
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env("NOTARY_SIGNER_ALIAS1", ALIAS1_PASS);
    for (k, v) in env {
        cmd.env(k, v);
    }
    String::from_utf8_lossy(&run_ok(&args.join(" "), &mut cmd).stdout).into_owned()
}

fn spki_of(pem_text: &str) -> Vec<u8> {
    let block = pem::parse(pem_text).unwrap();
    assert_eq!(block.tag(), "PUBLIC KEY");
    block.contents().to_vec()
}

#[test]
fn sigstore_rs_cosign_key_imports_and_its_signatures_verify() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&dir.join("certs"))
        .unwrap();
    let port = free_port();
    let config = write_config(dir, port, "sqlite3");

    let theirs = SigStoreKeyPair::ECDSA(ECDSAKeys::new(EllipticCurve::P256).unwrap());
    let file = dir.join("cosign.key");
    std::fs::write(
        &file,
        theirs
            .private_key_to_encrypted_pem(b"cosign-password")
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let their_pub = theirs.public_key_to_pem().unwrap();

    let id = signer_cli(
        &config,
        &["cosign-key", "import", file.to_str().unwrap()],
        &[("COSIGN_PASSWORD", "cosign-password")],
    );
    let id = id.trim().to_string();
    let our_pub = signer_cli(&config, &["cosign-key", "export-public"], &[]);
    assert_eq!(
        spki_of(&our_pub),
        spki_of(&their_pub),
        "same public key after import"
    );

    let _signer = start_ours("trustbridge-signer", &config, &dir.join("certs"), port);
    let payload = br#"{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/app"},"image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature"},"optional":null}"#;
    let raw = rt().block_on(async {
        let (_, mut sg) = connect(port, &ClientTls::dev(&dir.join("certs")))
            .await
            .unwrap();
        sg.sign(SignatureRequest {
            key_id: Some(KeyId { id: id.clone() }),
            content: payload.to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .content
    });
    let der = trustbridge_signer::cosign::raw_to_der(&raw).unwrap();
    let verifier = CosignVerificationKey::try_from_pem(our_pub.as_bytes()).unwrap();
    verifier
        .verify_signature(Signature::Raw(&der), payload)
        .expect("sigstore-rs verifies our signature");
    let mut tampered = payload.to_vec();
    tampered[20] ^= 1;
    assert!(
        verifier
            .verify_signature(Signature::Raw(&der), &tampered)
            .is_err()
    );
    let other = SigStoreKeyPair::ECDSA(ECDSAKeys::new(EllipticCurve::P256).unwrap());
    let wrong =
        CosignVerificationKey::try_from_pem(other.public_key_to_pem().unwrap().as_bytes()).unwrap();
    assert!(
        wrong
            .verify_signature(Signature::Raw(&der), payload)
            .is_err()
    );
}

#[test]
fn trustbridge_cosign_key_file_opens_with_sigstore_rs() {
    init();
    let key = trustbridge_tuf::PrivateKey::generate(trustbridge_tuf::KeyType::Ecdsa).unwrap();
    let file = trustbridge_signer::cosign::encrypt(&key, "pw").unwrap();
    let theirs =
        SigStoreKeyPair::from_encrypted_pem(file.as_bytes(), b"pw").expect("sigstore-rs opens it");
    let their_spki = spki_of(&theirs.public_key_to_pem().unwrap());
    assert_eq!(their_spki, key.public_key().public);
    assert!(SigStoreKeyPair::from_encrypted_pem(file.as_bytes(), b"wrong").is_err());
}
