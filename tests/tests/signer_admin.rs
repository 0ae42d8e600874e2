//! trustbridge-signer's offline admin CLI and start-up checks, run as a user would: the
//! binary against a config and a SQLite store, no server running; where signing matters, the
//! store is then served and signed through over gRPC with mutual TLS.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tonic::Code;
use trustbridge_e2e::signer::{ALIAS1_PASS, ClientTls, connect, rt, start_ours, write_config};
use trustbridge_e2e::{free_port, init, our_bin};
use trustbridge_signer::proto::{KeyId, SignatureRequest};
use trustbridge_tuf::PublicKey;

struct Store {
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
}

impl Store {
    fn new() -> Store {
        init();
        let dir = tempfile::tempdir().unwrap();
        trustbridge_certs::generate(30)
            .unwrap()
            .write(&dir.path().join("certs"))
            .unwrap();
        let port = free_port();
        let config = write_config(dir.path(), port, "sqlite3");
        Store { dir, config, port }
    }

    fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// Run the signer binary with `args` and extra env (NOTARY_SIGNER_ALIAS1 set unless overridden).
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(our_bin("trustbridge-signer", "trustbridge-signer"));
        cmd.args(args).arg("--config").arg(&self.config);
        cmd.env("NOTARY_SIGNER_ALIAS1", ALIAS1_PASS);
        for (k, v) in env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        cmd.output().unwrap()
    }

    fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(args, env);
        assert!(
            out.status.success(),
            "{args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(args, env);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("keys.db")).unwrap()
    }
}

fn sign(port: u16, certs: &Path, key_id: &str, msg: &[u8]) -> Result<Vec<u8>, tonic::Status> {
    rt().block_on(async {
        let (_, mut sg) = connect(port, &ClientTls::dev(certs)).await.unwrap();
        sg.sign(SignatureRequest {
            key_id: Some(KeyId { id: key_id.into() }),
            content: msg.to_vec(),
        })
        .await
        .map(|r| r.into_inner().content)
    })
}

fn public_of(store: &Store, key_id: &str) -> PublicKey {
    serde_json::from_str(&store.ok(&["keys", "export-public", key_id], &[])).unwrap()
}

#[test]
fn start_up_names_a_missing_or_wrong_passphrase() {
    let s = Store::new();
    let e = s.fails(&["serve"], &[("NOTARY_SIGNER_ALIAS1", "")]);
    assert!(
        e.contains("\"alias1\"") && e.contains("NOTARY_SIGNER_ALIAS1"),
        "{e}"
    );
    let id = s.ok(
        &["keys", "generate", "--role", "timestamp", "--gun", "g"],
        &[],
    );
    let e = s.fails(
        &["serve"],
        &[("NOTARY_SIGNER_ALIAS1", "not-the-passphrase")],
    );
    assert!(
        e.contains("wrong") && e.contains("NOTARY_SIGNER_ALIAS1") && e.contains(id.trim()),
        "{e}"
    );
    let last = e.trim().lines().last().unwrap();
    assert!(
        last.starts_with("trustbridge-signer: passphrase for alias \"alias1\""),
        "{e}"
    );
}

#[test]
fn keys_are_managed_offline() {
    let s = Store::new();
    let ec = s.ok(
        &[
            "keys",
            "generate",
            "--role",
            "timestamp",
            "--gun",
            "example.com/a",
        ],
        &[],
    );
    let ed = s.ok(
        &[
            "keys",
            "generate",
            "--role",
            "snapshot",
            "--gun",
            "example.com/a",
            "--algorithm",
            "ed25519",
        ],
        &[],
    );
    let (ec, ed) = (ec.trim(), ed.trim());
    let list = s.ok(&["keys", "list"], &[]);
    assert!(
        list.contains(ec) && list.contains(ed) && list.contains("2 key(s)"),
        "{list}"
    );
    let show = s.ok(&["keys", "show", ec], &[]);
    assert!(
        show.contains("role:       timestamp") && show.contains("alias:      alias1"),
        "{show}"
    );
    assert_eq!(public_of(&s, ec).id(), ec);
    assert_eq!(public_of(&s, ed).id(), ed);
    let pem = s.ok(&["keys", "export-public", ec, "--pem"], &[]);
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let e = s.fails(&["keys", "export-public", ed, "--pem"], &[]);
    assert!(e.contains("drop --pem"), "{e}");
    let e = s.fails(
        &[
            "keys",
            "generate",
            "--role",
            "timestamp",
            "--algorithm",
            "rsa",
        ],
        &[],
    );
    assert!(e.contains("algorithm rsa not supported"), "{e}");
    s.ok(&["keys", "delete", ec], &[]);
    let list = s.ok(&["keys", "list"], &[]);
    assert!(!list.contains(ec) && list.contains("1 key(s)"), "{list}");
    let e = s.fails(&["keys", "delete", ec], &[]);
    assert!(e.contains("not found"), "{e}");
    // The row is soft-deleted, as gorm does in notary-signer.
    let deleted: Option<String> = s
        .db()
        .query_row(
            "SELECT deleted_at FROM private_keys WHERE key_id = ?1",
            [ec],
            |r| r.get(0),
        )
        .unwrap();
    assert!(deleted.is_some());
}

#[test]
fn re_encrypt_moves_every_key_or_none() {
    let s = Store::new();
    let a = s.ok(&["keys", "generate", "--role", "timestamp"], &[]);
    let b = s.ok(
        &[
            "keys",
            "generate",
            "--role",
            "snapshot",
            "--algorithm",
            "ed25519",
        ],
        &[],
    );
    let (a, b) = (a.trim().to_string(), b.trim().to_string());
    let alias2 = [("NOTARY_SIGNER_ALIAS2", "second-passphrase")];

    // A corrupt row makes the whole re-encryption fail, naming the key; nothing changes.
    let db = s.db();
    let good: Vec<u8> = db
        .query_row(
            "SELECT private FROM private_keys WHERE key_id = ?1",
            [&b],
            |r| r.get(0),
        )
        .unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 30] = if bad[n - 30] == b'A' { b'B' } else { b'A' };
    db.execute(
        "UPDATE private_keys SET private = ?1 WHERE key_id = ?2",
        rusqlite::params![bad, b],
    )
    .unwrap();
    let e = s.fails(&["keys", "re-encrypt", "--alias", "alias2"], &alias2);
    assert!(e.contains(&b) && e.contains("corrupt"), "{e}");
    let aliases: Vec<String> = db
        .prepare("SELECT passphrase_alias FROM private_keys")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(aliases, ["alias1", "alias1"], "no row moved");

    // Repaired, it moves both; the store then signs with alias2's passphrase only.
    db.execute(
        "UPDATE private_keys SET private = ?1 WHERE key_id = ?2",
        rusqlite::params![good, b],
    )
    .unwrap();
    let out = s.ok(&["keys", "re-encrypt", "--alias", "alias2"], &alias2);
    assert!(out.contains("re-encrypted 2 key(s)"), "{out}");
    let list = s.ok(&["keys", "list"], &[]);
    assert_eq!(list.matches("alias2").count(), 2, "{list}");
    let pa = public_of(&s, &a);
    let pb = public_of(&s, &b);
    let mut cmd = Command::new(our_bin("trustbridge-signer", "trustbridge-signer"));
    cmd.arg("--config").arg(&s.config);
    // alias1 (still the default alias for new keys) no longer decrypts anything stored.
    cmd.env("NOTARY_SIGNER_ALIAS1", "unrelated")
        .env("NOTARY_SIGNER_ALIAS2", "second-passphrase");
    let mut p = trustbridge_e2e::Proc::spawn("signer-alias2", cmd, s.dir.path());
    trustbridge_e2e::signer::wait_grpc(&mut p, s.port, &s.certs());
    for (id, public) in [(&a, &pa), (&b, &pb)] {
        let sig = sign(s.port, &s.certs(), id, b"after re-encrypt").unwrap();
        public
            .verify(
                public.key_type.signature_method(),
                b"after re-encrypt",
                &sig,
            )
            .unwrap();
    }
}

#[test]
fn a_corrupt_row_is_reported_by_key_id_and_the_rest_keep_signing() {
    let s = Store::new();
    let good = s
        .ok(&["keys", "generate", "--role", "timestamp"], &[])
        .trim()
        .to_string();
    let bad = s
        .ok(&["keys", "generate", "--role", "snapshot"], &[])
        .trim()
        .to_string();
    s.db()
        .execute(
            "UPDATE private_keys SET private = 'garbage.not.a.jwe.at-all' WHERE key_id = ?1",
            [&bad],
        )
        .unwrap();
    let _p = start_ours("signer", &s.config, &s.certs(), s.port);
    let e = sign(s.port, &s.certs(), &bad, b"m").unwrap_err();
    assert_eq!(e.code(), Code::Internal);
    assert!(
        e.message().contains(&bad) && e.message().contains("corrupt"),
        "{e:?}"
    );
    let public = public_of(&s, &good);
    let sig = sign(s.port, &s.certs(), &good, b"m").unwrap();
    public.verify("ecdsa", b"m", &sig).unwrap();
}

#[test]
fn backup_restores_into_a_store_with_another_alias() {
    let src = Store::new();
    let a = src
        .ok(
            &["keys", "generate", "--role", "timestamp", "--gun", "g/1"],
            &[],
        )
        .trim()
        .to_string();
    let b = src
        .ok(
            &[
                "keys",
                "generate",
                "--role",
                "snapshot",
                "--gun",
                "g/1",
                "--algorithm",
                "ed25519",
            ],
            &[],
        )
        .trim()
        .to_string();
    let bundle = src.dir.path().join("signer.backup");
    let bp = [("TRUSTBRIDGE_BACKUP_PASSPHRASE", "backup-pass")];
    let e = src.fails(&["backup", "--out", bundle.to_str().unwrap()], &[]);
    assert!(e.contains("TRUSTBRIDGE_BACKUP_PASSPHRASE"), "{e}");
    src.ok(&["backup", "--out", bundle.to_str().unwrap()], &bp);
    let text = std::fs::read_to_string(&bundle).unwrap();
    assert!(text.starts_with("-----BEGIN TRUSTBRIDGE SIGNER BACKUP-----"));

    // Another store, whose default alias is "vault".
    let dst = Store::new();
    let cfg = std::fs::read_to_string(&dst.config)
        .unwrap()
        .replace("\"alias1\"", "\"vault\"");
    std::fs::write(&dst.config, cfg).unwrap();
    let vault = ("NOTARY_SIGNER_VAULT", "vault-pass");
    let e = dst.fails(
        &["restore", bundle.to_str().unwrap()],
        &[vault, ("TRUSTBRIDGE_BACKUP_PASSPHRASE", "wrong")],
    );
    assert!(e.contains("wrong backup passphrase"), "{e}");
    let out = dst.ok(&["restore", bundle.to_str().unwrap()], &[vault, bp[0]]);
    assert!(out.contains("restored 2 key(s)"), "{out}");
    let out = dst.ok(&["restore", bundle.to_str().unwrap()], &[vault, bp[0]]);
    assert!(
        out.contains("restored 0 key(s) (2 already present)"),
        "{out}"
    );
    let list = dst.ok(&["keys", "list"], &[vault]);
    assert!(
        list.contains(&a) && list.contains(&b) && list.matches("vault").count() == 2,
        "{list}"
    );

    let mut cmd = Command::new(our_bin("trustbridge-signer", "trustbridge-signer"));
    cmd.arg("--config")
        .arg(&dst.config)
        .env("NOTARY_SIGNER_VAULT", "vault-pass");
    let mut p = trustbridge_e2e::Proc::spawn("restored", cmd, dst.dir.path());
    trustbridge_e2e::signer::wait_grpc(&mut p, dst.port, &dst.certs());
    for id in [&a, &b] {
        let public = public_of(&src, id);
        let sig = sign(dst.port, &dst.certs(), id, b"restored").unwrap();
        public
            .verify(public.key_type.signature_method(), b"restored", &sig)
            .unwrap();
    }
}

/// A backup holds the Notation keys and their certificate chain: a restored store signs for
/// Notation with the same chain (same thumbprints, same trust anchor) and can renew its leaf.
#[test]
fn a_backup_carries_the_notation_key_and_its_chain() {
    let src = Store::new();
    src.ok(
        &[
            "notation-key",
            "generate",
            "--subject",
            "CN=backup test,O=trustbridge tests,ST=Berlin,C=DE",
        ],
        &[],
    );
    let shown = src.ok(&["notation-key", "show"], &[]);
    let ca = src.ok(&["notation-key", "export-ca"], &[]);
    let bundle = src.dir.path().join("signer.backup");
    let bp = ("TRUSTBRIDGE_BACKUP_PASSPHRASE", "backup-pass");
    src.ok(&["backup", "--out", bundle.to_str().unwrap()], &[bp]);

    let dst = Store::new();
    let out = dst.ok(&["restore", bundle.to_str().unwrap()], &[bp]);
    assert!(
        out.contains("restored 2 key(s)") && out.contains("1 certificate chain(s)"),
        "{out}"
    );
    assert_eq!(dst.ok(&["notation-key", "show"], &[]), shown);
    assert_eq!(dst.ok(&["notation-key", "export-ca"], &[]), ca);
    let out = dst.ok(&["restore", bundle.to_str().unwrap()], &[bp]);
    assert!(
        out.contains("restored 0 key(s) (2 already present)"),
        "{out}"
    );
    // The CA key came along: the restored store renews its leaf itself.
    dst.ok(&["notation-key", "renew"], &[]);
    assert_ne!(dst.ok(&["notation-key", "show"], &[]), shown);
}

#[test]
fn cosign_bridge_key_signs_through_the_sign_rpc() {
    let s = Store::new();
    let id = s.ok(&["cosign-key", "generate"], &[]).trim().to_string();
    let e = s.fails(&["cosign-key", "generate"], &[]);
    assert!(e.contains("already exists") && e.contains(&id), "{e}");
    let pem_text = s.ok(&["cosign-key", "export-public"], &[]);
    let block = pem::parse(&pem_text).unwrap();
    assert_eq!(block.tag(), "PUBLIC KEY");
    let _p = start_ours("signer", &s.config, &s.certs(), s.port);
    let payload = br#"{"critical":{"type":"cosign container image signature"}}"#;
    let sig = sign(s.port, &s.certs(), &id, payload).unwrap();
    // Verified with ring straight from cosign.pub's SPKI (raw r||s, as notary's ecdsa method).
    let spki = block.contents();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &spki[26..])
        .verify(payload, &sig)
        .unwrap();

    // Import: a cosign.key file (written here by our encoder) into a fresh store.
    let other = Store::new();
    let key = trustbridge_tuf::PrivateKey::generate(trustbridge_tuf::KeyType::Ecdsa).unwrap();
    let file = other.dir.path().join("cosign.key");
    std::fs::write(
        &file,
        trustbridge_signer::cosign::encrypt(&key, "cosign-pw").unwrap(),
    )
    .unwrap();
    let e = other.fails(
        &["cosign-key", "import", file.to_str().unwrap()],
        &[("COSIGN_PASSWORD", "nope")],
    );
    assert!(e.contains("COSIGN_PASSWORD"), "{e}");
    let imported = other.ok(
        &["cosign-key", "import", file.to_str().unwrap()],
        &[("COSIGN_PASSWORD", "cosign-pw")],
    );
    assert_eq!(imported.trim(), key.id());
}
