//! trustbridge-signer over real gRPC with mutual TLS: notary-signer's semantics (CreateKey
//! reuses an unused key, Sign marks it used, RSA refused with notary's message, NotFound for
//! unknown keys, the health service names), and the handshake refusals (no client
//! certificate, one from another CA, an expired one), each against a signer that accepts the
//! right certificate in the same test.

use std::path::Path;

use tonic::Code;
use trustbridge_e2e::signer::{ClientTls, channel, connect, rt, start_ours, write_config};
use trustbridge_e2e::{Proc, free_port, init};
use trustbridge_signer::proto::{CreateKeyRequest, KeyId, SignatureRequest};
use trustbridge_tuf::{KeyType, PublicKey};

struct Signer {
    _dir: tempfile::TempDir,
    proc: Proc,
    port: u16,
    certs: std::path::PathBuf,
    pki: trustbridge_certs::DevPki,
}

fn start() -> Signer {
    init();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let pki = trustbridge_certs::generate(30).unwrap();
    pki.write(&certs).unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, "sqlite3");
    let proc = start_ours("trustbridge-signer", &config, &certs, port);
    Signer {
        _dir: dir,
        proc,
        port,
        certs,
        pki,
    }
}

fn create(algorithm: &str, role: &str) -> CreateKeyRequest {
    CreateKeyRequest {
        algorithm: algorithm.into(),
        gun: "example.com/app".into(),
        role: role.into(),
    }
}

#[test]
fn notary_signer_semantics_over_mtls() {
    let s = start();
    rt().block_on(async {
        let (mut km, mut sg) = connect(s.port, &ClientTls::dev(&s.certs)).await.unwrap();
        // An unused key is handed out again (lowest key ID), as notary's SQL store does.
        let a = km
            .create_key(create("ecdsa", "timestamp"))
            .await
            .unwrap()
            .into_inner();
        let b = km
            .create_key(create("ecdsa", "timestamp"))
            .await
            .unwrap()
            .into_inner();
        let id = a
            .key_info
            .as_ref()
            .unwrap()
            .key_id
            .as_ref()
            .unwrap()
            .id
            .clone();
        assert_eq!(a, b);
        assert_eq!(
            a.key_info
                .as_ref()
                .unwrap()
                .algorithm
                .as_ref()
                .unwrap()
                .algorithm,
            "ecdsa"
        );
        let public = PublicKey::new(KeyType::Ecdsa, a.public_key.clone());
        assert_eq!(public.id(), id, "key ID is the TUF ID of the DER SPKI");

        let info = km
            .get_key_info(KeyId { id: id.clone() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.role, "timestamp");
        assert_eq!(info.public_key, a.public_key);

        // Sign: raw r||s over SHA-256 of the content, method "ecdsa".
        let msg = b"{\"signed\":\"canonical bytes\"}".to_vec();
        let sig = sg
            .sign(SignatureRequest {
                key_id: Some(KeyId { id: id.clone() }),
                content: msg.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(sig.algorithm.unwrap().algorithm, "ecdsa");
        assert_eq!(sig.content.len(), 64);
        public.verify("ecdsa", &msg, &sig.content).unwrap();
        assert!(public.verify("ecdsa", b"other", &sig.content).is_err());

        // Now used: CreateKey mints a different key.
        let c = km
            .create_key(create("ecdsa", "timestamp"))
            .await
            .unwrap()
            .into_inner();
        assert_ne!(c.key_info.unwrap().key_id.unwrap().id, id);

        // Ed25519: 32 raw public bytes, method eddsa.
        let e = km
            .create_key(create("ed25519", "snapshot"))
            .await
            .unwrap()
            .into_inner();
        let eid = e.key_info.unwrap().key_id.unwrap().id;
        let epub = PublicKey::new(KeyType::Ed25519, e.public_key);
        assert_eq!(epub.public.len(), 32);
        let esig = sg
            .sign(SignatureRequest {
                key_id: Some(KeyId { id: eid }),
                content: msg.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(esig.algorithm.unwrap().algorithm, "eddsa");
        epub.verify("eddsa", &msg, &esig.content).unwrap();

        // RSA create refused exactly as notary-signer refuses it.
        let err = km.create_key(create("rsa", "timestamp")).await.unwrap_err();
        assert_eq!(err.code(), Code::Unknown);
        assert_eq!(err.message(), "algorithm rsa not supported for create key");

        // Unknown keys: NotFound with notary's text.
        let err = sg
            .sign(SignatureRequest {
                key_id: Some(KeyId {
                    id: "deadbeef".into(),
                }),
                content: msg.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        assert_eq!(err.message(), "key deadbeef not found");

        // DeleteKey: absent is fine; a deleted key is gone for GetKeyInfo and Sign.
        km.delete_key(KeyId {
            id: "absent".into(),
        })
        .await
        .unwrap();
        km.delete_key(KeyId { id: id.clone() }).await.unwrap();
        let err = km.get_key_info(KeyId { id: id.clone() }).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        let err = sg
            .sign(SignatureRequest {
                key_id: Some(KeyId { id }),
                content: msg,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    });
}

#[test]
fn health_service_names_notary_server_checks_are_serving() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let s = start();
    rt().block_on(async {
        let ch = channel(s.port, &ClientTls::dev(&s.certs)).await.unwrap();
        let mut health = HealthClient::new(ch);
        for name in [
            "",
            "grpc.health.v1.Health.KeyManagement",
            "grpc.health.v1.Health.Signer",
        ] {
            let r = health
                .check(HealthCheckRequest {
                    service: name.into(),
                })
                .await
                .unwrap_or_else(|e| panic!("health {name:?}: {e}"))
                .into_inner();
            assert_eq!(r.status, 1, "{name:?} is SERVING");
        }
    });
}

/// A gRPC round trip with `tls` against the signer; Ok means the signer answered.
fn call_with(port: u16, tls: &ClientTls) -> Result<(), String> {
    rt().block_on(async {
        let (mut km, _) = connect(port, tls)
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        match km.get_key_info(KeyId { id: "probe".into() }).await {
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(format!("call: {s:?}")),
            Ok(_) => Ok(()),
        }
    })
}

fn write_pair(
    dir: &Path,
    name: &str,
    pair: &trustbridge_certs::Pair,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let c = dir.join(format!("{name}.crt"));
    let k = dir.join(format!("{name}.key"));
    std::fs::write(&c, &pair.cert_pem).unwrap();
    std::fs::write(&k, &pair.key_pem).unwrap();
    (c, k)
}

#[test]
fn refuses_a_client_without_a_certificate() {
    let s = start();
    call_with(s.port, &ClientTls::dev(&s.certs))
        .expect("control: the dev client certificate is accepted");
    let tls = ClientTls {
        ca: s.certs.join("root-ca.crt"),
        cert: None,
    };
    let e = call_with(s.port, &tls).expect_err("a client without a certificate must be refused");
    assert!(!e.contains("NotFound"), "{e}");
}

#[test]
fn refuses_a_client_certificate_from_another_ca() {
    let s = start();
    call_with(s.port, &ClientTls::dev(&s.certs))
        .expect("control: the dev client certificate is accepted");
    let other = trustbridge_certs::generate(30).unwrap();
    let (c, k) = write_pair(&s.certs, "foreign-client", &other.signer_client);
    let tls = ClientTls {
        ca: s.certs.join("root-ca.crt"),
        cert: Some((c, k)),
    };
    let e = call_with(s.port, &tls).expect_err("a certificate from another CA must be refused");
    assert!(!e.contains("NotFound"), "{e}");
}

#[test]
fn refuses_an_expired_client_certificate() {
    let s = start();
    let now = time::OffsetDateTime::now_utc();
    let fresh = s
        .pki
        .issue_client(
            "fresh",
            now - time::Duration::hours(1),
            now + time::Duration::days(1),
        )
        .unwrap();
    let (c, k) = write_pair(&s.certs, "fresh-client", &fresh);
    call_with(
        s.port,
        &ClientTls {
            ca: s.certs.join("root-ca.crt"),
            cert: Some((c, k)),
        },
    )
    .expect("control: a valid certificate issued the same way is accepted");
    let expired = s
        .pki
        .issue_client(
            "expired",
            now - time::Duration::days(10),
            now - time::Duration::days(1),
        )
        .unwrap();
    let (c, k) = write_pair(&s.certs, "expired-client", &expired);
    let e = call_with(
        s.port,
        &ClientTls {
            ca: s.certs.join("root-ca.crt"),
            cert: Some((c, k)),
        },
    )
    .expect_err("an expired client certificate must be refused");
    assert!(!e.contains("NotFound"), "{e}");
}

#[test]
fn the_serving_signer_allows_no_core_dumps() {
    let s = start();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.proc.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{line}");
}
