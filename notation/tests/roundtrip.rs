//! An envelope made as the bridge makes it verifies; a tampered payload, a foreign root and a
//! leaf Notation would refuse do not.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;
use trustbridge_notation::{chain, envelope};

fn ca() -> (Vec<u8>, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, "test CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let cert = p.self_signed(&key).unwrap();
    (cert.der().to_vec(), Issuer::new(p, key))
}

fn leaf(issuer: &Issuer<'_, KeyPair>, eku: ExtendedKeyUsagePurpose) -> (Vec<u8>, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, "signer");
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![eku];
    p.is_ca = IsCa::ExplicitNoCa;
    (p.signed_by(&key, issuer).unwrap().der().to_vec(), key)
}

#[test]
fn an_envelope_verifies_only_as_made_and_only_under_its_root() {
    let (root, issuer) = ca();
    let (leaf_der, key) = leaf(&issuer, ExtendedKeyUsagePurpose::CodeSigning);
    let chain = vec![leaf_der, root.clone()];
    let info = chain::check(&chain, Some(time::OffsetDateTime::now_utc())).unwrap();
    assert_eq!(info.alg.name(), "ES256");

    let target = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:ab", "size": 7});
    let payload = envelope::payload(&target, &[("dev.trustbridge/notary-target", "v1")]);
    let protected = envelope::protected_header(info.alg, time::OffsetDateTime::now_utc());
    let input = envelope::signing_input(&protected, &payload);
    let signer = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &key.serialize_der(),
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    let sig = signer
        .sign(&ring::rand::SystemRandom::new(), &input)
        .unwrap();
    let env = envelope::envelope(&protected, &payload, &chain, sig.as_ref(), "test");

    let now = time::OffsetDateTime::now_utc();
    let v = envelope::verify(&env, std::slice::from_ref(&root), now).unwrap();
    assert_eq!(v.digest, "sha256:ab");
    assert_eq!(v.annotations["dev.trustbridge/notary-target"], "v1");

    // Another root is not trusted.
    let (other_root, _) = ca();
    assert!(envelope::verify(&env, &[other_root], now).is_err());
    // A payload changed after signing does not verify.
    let mut tampered: serde_json::Value = serde_json::from_slice(&env).unwrap();
    let other = envelope::payload(
        &json!({"mediaType": "x", "digest": "sha256:cd", "size": 7}),
        &[],
    );
    tampered["payload"] = base64_url(&other).into();
    let tampered = serde_json::to_vec(&tampered).unwrap();
    assert!(envelope::verify(&tampered, &[root], now).is_err());
    // A TLS server certificate is no signing certificate.
    let (tls_leaf, _) = leaf(&issuer, ExtendedKeyUsagePurpose::ServerAuth);
    let e = chain::check(&[tls_leaf, chain[1].clone()], None).unwrap_err();
    assert!(e.to_string().contains("extendedKeyUsage"), "{e}");
}

fn base64_url(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}
