//! docker CLI 28 (`docker trust`, no daemon) against trustbridge-server. The server is reached
//! by the name `notary-server` (mapped to 127.0.0.1 in /etc/hosts), so docker checks TLS for
//! real against `$DOCKER_CONFIG/tls/<host:port>/ca.crt` instead of treating it as loopback.

use std::process::Command;

use trustbridge_e2e::server::{CLIENT_PASS, docker_trust, notary_cmd, start_stack};
use trustbridge_e2e::{init, require_bin, run_ok};

const HOST: &str = "notary-server";
const REPO: &str = "registry.example:5000/team/app";

#[test]
fn docker_trust_signs_and_revokes_through_trustbridge() {
    init();
    use std::net::ToSocketAddrs;
    let resolved: Vec<_> = (HOST, 443)
        .to_socket_addrs()
        .map(|a| a.collect())
        .unwrap_or_default();
    assert!(
        resolved
            .iter()
            .any(|a: &std::net::SocketAddr| a.ip().is_loopback()),
        "{HOST} must resolve to 127.0.0.1: add `127.0.0.1 {HOST}` to /etc/hosts (scripts/test.sh does this as root)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let s = start_stack(tmp.path());
    let server = format!("https://{HOST}:{}", s.port);
    let cfg = tmp.path().join("docker");
    let tls = cfg.join("tls").join(format!("{HOST}:{}", s.port));
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(&s.ca, tls.join("ca.crt")).unwrap();
    let d = |args: &[&str]| docker_trust(&cfg, &server, args);

    let out = d(&[
        "trust",
        "key",
        "generate",
        "alice",
        "--dir",
        cfg.to_str().unwrap(),
    ]);
    assert!(out.contains("Successfully generated"), "{out}");
    let out = d(&[
        "trust",
        "signer",
        "add",
        "--key",
        cfg.join("alice.pub").to_str().unwrap(),
        "alice",
        REPO,
    ]);
    assert!(
        out.contains("Successfully initialized")
            && out.contains("Successfully added signer: alice"),
        "{out}"
    );
    let out = d(&["trust", "inspect", "--pretty", REPO]);
    assert!(
        out.contains("No signatures") && out.contains("alice"),
        "{out}"
    );

    // A tag in trust data (published by the notary client with the same trust dir).
    let manifest = cfg.join("manifest.json");
    std::fs::write(&manifest, br#"{"schemaVersion":2}"#).unwrap();
    let n = |args: &[&str]| {
        let mut cmd = notary_cmd(&server, &s.ca, &cfg.join("trust"), args);
        run_ok(&format!("notary {}", args.join(" ")), &mut cmd);
    };
    n(&[
        "add",
        REPO,
        "v1",
        manifest.to_str().unwrap(),
        "--roles",
        "targets/releases",
    ]);
    n(&["publish", REPO]);

    d(&[
        "trust",
        "key",
        "generate",
        "bob",
        "--dir",
        cfg.to_str().unwrap(),
    ]);
    d(&[
        "trust",
        "signer",
        "add",
        "--key",
        cfg.join("bob.pub").to_str().unwrap(),
        "bob",
        REPO,
    ]);
    let out = d(&["trust", "sign", &format!("{REPO}:v1")]);
    assert!(out.contains("Successfully signed"), "{out}");

    // A docker config with no cached trust data reads and verifies it from the server.
    let other = tmp.path().join("docker-reader");
    let other_tls = other.join("tls").join(format!("{HOST}:{}", s.port));
    std::fs::create_dir_all(&other_tls).unwrap();
    std::fs::copy(&s.ca, other_tls.join("ca.crt")).unwrap();
    let out = docker_trust(&other, &server, &["trust", "inspect", REPO]);
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let tags = v[0]["SignedTags"].as_array().unwrap();
    assert_eq!(tags.len(), 1, "{out}");
    assert_eq!(tags[0]["SignedTag"], "v1");
    let mut signers: Vec<&str> = tags[0]["Signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    signers.sort();
    assert_eq!(signers, ["alice", "bob"], "{out}");
    let pretty = docker_trust(&other, &server, &["trust", "inspect", "--pretty", REPO]);
    assert!(
        pretty.contains("v1") && pretty.contains("alice, bob"),
        "{pretty}"
    );

    // `signer remove`: docker CLI 28.2.2 removes a signer only when it is the last one to have
    // signed releases and the user confirms (its `maybePromptForSignerRemoval` returns false
    // otherwise, even with -f, silently). So: a second repository with alice alone.
    let repo2 = "registry.example:5000/team/solo";
    d(&[
        "trust",
        "signer",
        "add",
        "--key",
        cfg.join("alice.pub").to_str().unwrap(),
        "alice",
        repo2,
    ]);
    n(&[
        "add",
        repo2,
        "v1",
        manifest.to_str().unwrap(),
        "--roles",
        "targets/releases",
    ]);
    n(&["publish", repo2]);
    let mut rm = Command::new(require_bin("docker"));
    rm.args(["trust", "signer", "remove", "alice", repo2])
        .env("DOCKER_CONFIG", &cfg)
        .env("DOCKER_CONTENT_TRUST_SERVER", &server)
        .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", CLIENT_PASS)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = rm.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"y\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Successfully removed alice"),
        "{text}"
    );
    let pretty = docker_trust(&other, &server, &["trust", "inspect", "--pretty", repo2]);
    assert!(!pretty.contains("alice"), "{pretty}");

    let out = d(&["trust", "revoke", "-y", &format!("{REPO}:v1")]);
    assert!(out.contains("Successfully deleted signature"), "{out}");
    let pretty = docker_trust(&other, &server, &["trust", "inspect", "--pretty", REPO]);
    assert!(pretty.contains("No signatures"), "{pretty}");
}
