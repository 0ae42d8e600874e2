//! Token auth (reference §7) on trustbridge-server, next to Go notary-server 0.7.0 configured
//! with the same `auth.options` and root bundle: every refusal must get the same status and
//! error code from both, and the challenge must carry the same `error` parameter. Tokens for
//! the negative cases are made here (ES256 with ring, an `x5c` chain from a test CA in the
//! bundle); the positive flows use trustbridge's built-in issuer with the real notary client
//! and docker CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use trustbridge_e2e::server::{CLIENT_PASS, notary_cmd, start_server, write_server_config};
use trustbridge_e2e::signer::{start_ours, token_key_generate, write_config};
use trustbridge_e2e::{Proc, free_port, init, require_bin, run_ok};

const SERVICE: &str = "trustbridge-test";
const ISSUER: &str = "trustbridge-test-issuer";

/// A CA whose leaf signs test tokens.
struct TokenCa {
    ca_pem: String,
    leaf_der: Vec<u8>,
    leaf_key: ring::signature::EcdsaKeyPair,
}

fn token_ca() -> TokenCa {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "test token CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "test token signer");
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &leaf_key.serialize_der(),
        &rng,
    )
    .unwrap();
    TokenCa {
        ca_pem: ca_cert.pem(),
        leaf_der: leaf_cert.der().to_vec(),
        leaf_key: key,
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl TokenCa {
    fn token(&self, header: Value, claims: Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .leaf_key
            .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    fn header(&self) -> Value {
        json!({"typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(&self.leaf_der)]})
    }

    /// A valid token granting `actions` on `gun`.
    fn grant(&self, gun: &str, actions: &[&str]) -> String {
        self.token(self.header(), claims(gun, actions))
    }
}

fn claims(gun: &str, actions: &[&str]) -> Value {
    json!({"iss": ISSUER, "sub": "tester", "aud": SERVICE, "exp": now() + 300, "nbf": now() - 10, "iat": now(),
           "jti": "x", "access": [{"type": "repository", "name": gun, "actions": actions}]})
}

/// trustbridge-server and Go notary-server with the same token auth, both using our signer.
struct Pair {
    _dir: tempfile::TempDir,
    _signer: Proc,
    _ours: Proc,
    _go: Proc,
    ours: String,
    go: String,
    ca: PathBuf,
    tca: TokenCa,
    dir: PathBuf,
}

fn auth_json(realm: &str) -> String {
    format!(
        r#""auth":{{"type":"token","options":{{"realm":"{realm}","service":"{SERVICE}","issuer":"{ISSUER}","rootcertbundle":"token-roots.pem"}}}}"#
    )
}

fn start_pair(issuer: Option<&str>) -> Pair {
    start_pair_with(issuer, "")
}

/// As [`start_pair`], with `extra` config (same for both servers, e.g. a GUN allow-list).
fn start_pair_with(issuer: Option<&str>, extra_both: &str) -> Pair {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let signer_port = free_port();
    let sc = write_config(&dir, signer_port, "sqlite3");
    // The built-in issuer's key, made offline in the signer's store.
    let key_id = token_key_generate(&sc, &dir.join("issuer.crt"));
    let tca = token_ca();
    std::fs::write(
        dir.join("token-roots.pem"),
        tca.ca_pem.clone() + &std::fs::read_to_string(dir.join("issuer.crt")).unwrap(),
    )
    .unwrap();
    let mut signer = start_ours("trustbridge-signer", &sc, &certs, signer_port);
    let port = free_port();
    let realm = format!("https://127.0.0.1:{port}/_trustbridge/v1/token");
    let mut extra = format!(",{}{extra_both}", auth_json(&realm));
    if let Some(rules) = issuer {
        let h = |p: &str| bcrypt::hash(p, 4).unwrap();
        std::fs::write(
            dir.join("users.htpasswd"),
            format!("alice:{}\nbob:{}\n", h("alice-pw"), h("bob-pw")),
        )
        .unwrap();
        extra.push_str(&format!(
            r#","trustbridge":{{"token_issuer":{{"key_id":"{key_id}","htpasswd":"users.htpasswd","admins":["alice"],"rules":{rules}}}}}"#
        ));
    }
    let config = write_server_config(&dir, port, signer_port, &extra);
    let ours = start_server(
        "trustbridge-server",
        &dir,
        &config,
        port,
        &mut [&mut signer],
    );
    // Go notary-server, same auth options, same root bundle, same signer.
    let go_port = free_port();
    let go = trustbridge_e2e::peers::go_server(
        &dir,
        go_port,
        signer_port,
        &format!(",{}{extra_both}", auth_json(&realm)),
    );
    let ca = certs.join("root-ca.crt");
    Pair {
        _dir: tmp,
        _signer: signer,
        _ours: ours,
        _go: go,
        ours: format!("https://127.0.0.1:{port}"),
        go: format!("https://127.0.0.1:{go_port}"),
        ca,
        tca,
        dir,
    }
}

/// (status, error code, `error=` of the challenge) of a request.
fn ask(
    base: &str,
    ca: &Path,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String, String) {
    let mut cmd = Command::new(require_bin("curl"));
    cmd.args([
        "-sS",
        "--max-time",
        "20",
        "-D",
        "-",
        "-o",
        "-",
        "-X",
        method,
        "--cacert",
    ])
    .arg(ca);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if method == "POST" {
        cmd.args(["-F", "files=@/dev/null;filename=targets"]);
    }
    cmd.arg(format!("{base}{path}"));
    let out = String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned();
    let status = out
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let challenge = out
        .lines()
        .find(|l| l.to_lowercase().starts_with("www-authenticate:"))
        .unwrap_or("")
        .to_string();
    let error = challenge
        .split("error=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or("")
        .to_string();
    let body = out.rsplit("\r\n\r\n").next().unwrap_or("");
    let code = serde_json::from_str::<Value>(body.trim())
        .ok()
        .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_string))
        .unwrap_or_default();
    (status, code, error)
}

/// The same request to both servers: identical status, code and challenge error.
fn same(p: &Pair, method: &str, path: &str, token: Option<&str>, want: (u16, &str, &str)) {
    let ours = ask(&p.ours, &p.ca, method, path, token);
    let go = ask(&p.go, &p.ca, method, path, token);
    assert_eq!(ours, go, "trustbridge vs notary-server for {method} {path}");
    assert_eq!(
        (ours.0, ours.1.as_str(), ours.2.as_str()),
        want,
        "{method} {path}"
    );
}

const GUN: &str = "example.com/team/app";
fn root_json(gun: &str) -> String {
    format!("/v2/{gun}/_trust/tuf/root.json")
}

#[test]
fn no_token_gets_the_challenge() {
    let p = start_pair(None);
    same(&p, "GET", &root_json(GUN), None, (401, "UNAUTHORIZED", ""));
    // The challenge names realm, service and scope.
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(&p.ca)
        .arg(format!("{}{}", p.ours, root_json(GUN)))
        .output()
        .unwrap();
    let h = String::from_utf8_lossy(&out.stdout);
    assert!(
        h.contains(&format!(
            "service=\"{SERVICE}\",scope=\"repository:{GUN}:pull\""
        )),
        "{h}"
    );
}

#[test]
fn a_valid_token_is_accepted_by_both() {
    let p = start_pair(None);
    let t = p.tca.grant(GUN, &["pull"]);
    same(
        &p,
        "GET",
        &root_json(GUN),
        Some(&t),
        (404, "METADATA_NOT_FOUND", ""),
    );
}

#[test]
fn expired_token() {
    let p = start_pair(None);
    let mut c = claims(GUN, &["pull"]);
    c["exp"] = json!(now() - 120);
    c["nbf"] = json!(now() - 600);
    same(
        &p,
        "GET",
        &root_json(GUN),
        Some(&p.tca.token(p.tca.header(), c)),
        (401, "UNAUTHORIZED", "invalid_token"),
    );
}

#[test]
fn not_yet_valid_token() {
    let p = start_pair(None);
    let mut c = claims(GUN, &["pull"]);
    c["nbf"] = json!(now() + 600);
    same(
        &p,
        "GET",
        &root_json(GUN),
        Some(&p.tca.token(p.tca.header(), c)),
        (401, "UNAUTHORIZED", "invalid_token"),
    );
}

#[test]
fn wrong_audience() {
    let p = start_pair(None);
    let mut c = claims(GUN, &["pull"]);
    c["aud"] = json!("another-service");
    same(
        &p,
        "GET",
        &root_json(GUN),
        Some(&p.tca.token(p.tca.header(), c)),
        (401, "UNAUTHORIZED", "invalid_token"),
    );
}

#[test]
fn wrong_issuer() {
    let p = start_pair(None);
    let mut c = claims(GUN, &["pull"]);
    c["iss"] = json!("someone-else");
    same(
        &p,
        "GET",
        &root_json(GUN),
        Some(&p.tca.token(p.tca.header(), c)),
        (401, "UNAUTHORIZED", "invalid_token"),
    );
}

#[test]
fn key_outside_the_bundle() {
    let p = start_pair(None);
    let stranger = token_ca();
    let t = stranger.grant(GUN, &["pull"]);
    same(
        &p,
        "GET",
        &root_json(GUN),
        Some(&t),
        (401, "UNAUTHORIZED", "invalid_token"),
    );
}

#[test]
fn alg_none() {
    let p = start_pair(None);
    let t = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"typ":"JWT","alg":"none"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims(GUN, &["pull"]).to_string())
    );
    same(
        &p,
        "GET",
        &root_json(GUN),
        Some(&t),
        (401, "UNAUTHORIZED", "invalid_token"),
    );
}

#[test]
fn token_for_another_gun() {
    let p = start_pair(None);
    let t = p.tca.grant("example.com/team/other", &["pull", "push"]);
    same(
        &p,
        "GET",
        &root_json(GUN),
        Some(&t),
        (401, "UNAUTHORIZED", "insufficient_scope"),
    );
}

#[test]
fn pull_only_token_cannot_publish() {
    let p = start_pair(None);
    let t = p.tca.grant(GUN, &["pull"]);
    same(
        &p,
        "POST",
        &format!("/v2/{GUN}/_trust/tuf/"),
        Some(&t),
        (401, "UNAUTHORIZED", "insufficient_scope"),
    );
}

#[test]
fn non_admin_token_on_the_global_changefeed() {
    let p = start_pair(None);
    let t = p.tca.grant(GUN, &["*"]);
    same(
        &p,
        "GET",
        "/v2/_trust/changefeed?records=0",
        Some(&t),
        (401, "UNAUTHORIZED", "insufficient_scope"),
    );
    let admin = p.tca.token(
        p.tca.header(),
        json!({"iss": ISSUER, "aud": SERVICE, "exp": now() + 300, "nbf": now() - 10,
        "access": [{"type": "registry", "name": "catalog", "actions": ["*"]}]}),
    );
    same(
        &p,
        "GET",
        "/v2/_trust/changefeed?records=0",
        Some(&admin),
        (200, "", ""),
    );
}

/// The control room (ours alone): the page and its JSON need `registry:catalog:*`, as the
/// global changefeed does; the read-only switch needs `*` on its GUN.
#[test]
fn the_control_room_needs_catalog_access() {
    let p = start_pair(None);
    let repo_admin = p.tca.grant(GUN, &["*"]);
    let catalog = p.tca.token(
        p.tca.header(),
        json!({"iss": ISSUER, "aud": SERVICE, "exp": now() + 300, "nbf": now() - 10,
        "access": [{"type": "registry", "name": "catalog", "actions": ["*"]}]}),
    );
    for path in [
        "/_trustbridge/",
        "/_trustbridge/v1/migration",
        "/_trustbridge/v1/migration/guns?prefix=example.com/",
        "/_trustbridge/v1/migration/usage",
    ] {
        let (status, _, error) = ask(&p.ours, &p.ca, "GET", path, None);
        assert_eq!(
            (status, error.as_str()),
            (401, ""),
            "{path} without a token"
        );
        let (status, _, error) = ask(&p.ours, &p.ca, "GET", path, Some(&repo_admin));
        assert_eq!(
            (status, error.as_str()),
            (401, "insufficient_scope"),
            "{path} with a repository token"
        );
        let (status, _, _) = ask(&p.ours, &p.ca, "GET", path, Some(&catalog));
        assert_eq!(status, 200, "{path} with catalog access");
    }
    let switch = format!("/_trustbridge/v1/read-only/{GUN}");
    let pull = p.tca.grant(GUN, &["pull", "push"]);
    let (status, _, error) = ask(&p.ours, &p.ca, "DELETE", &switch, Some(&pull));
    assert_eq!((status, error.as_str()), (401, "insufficient_scope"));
    let (status, _, _) = ask(&p.ours, &p.ca, "DELETE", &switch, Some(&repo_admin));
    assert_eq!(status, 200, "the read-only switch with * on the GUN");
}

#[test]
fn built_in_issuer_serves_notary_and_docker() {
    let rules = r#"[{"gun_prefix":"","users":["alice"],"actions":["*"]},{"gun_prefix":"registry.example:5000/","users":["bob"],"actions":["pull"]}]"#;
    let p = start_pair(Some(rules));
    let gun = "registry.example:5000/team/app";
    let file = p.dir.join("f.bin");
    std::fs::write(&file, b"f").unwrap();
    let as_user = |user: &str, pass: &str, trust: &str, args: &[&str]| {
        let mut cmd = notary_cmd(&p.ours, &p.ca, &p.dir.join(trust), args);
        cmd.env("NOTARY_AUTH", STANDARD.encode(format!("{user}:{pass}")));
        cmd.output().unwrap()
    };
    let ok = |o: std::process::Output| {
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    ok(as_user("alice", "alice-pw", "alice", &["init", gun, "-p"]));
    ok(as_user(
        "alice",
        "alice-pw",
        "alice",
        &["add", gun, "v1", file.to_str().unwrap()],
    ));
    ok(as_user("alice", "alice-pw", "alice", &["publish", gun]));
    let list = ok(as_user("bob", "bob-pw", "bob", &["list", gun]));
    assert!(list.contains("v1"), "{list}");
    // bob may only pull: his publish is refused.
    ok(as_user(
        "bob",
        "bob-pw",
        "bob",
        &["add", gun, "v2", file.to_str().unwrap()],
    ));
    assert!(
        !as_user("bob", "bob-pw", "bob", &["publish", gun])
            .status
            .success()
    );

    // docker CLI: credentials for the registry the GUN names, in $DOCKER_CONFIG/config.json.
    let cfg = p.dir.join("docker");
    let port = p.ours.rsplit(':').next().unwrap();
    let tls = cfg.join("tls").join(format!("notary-server:{port}"));
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(&p.ca, tls.join("ca.crt")).unwrap();
    std::fs::write(
        cfg.join("config.json"),
        json!({"auths": {"registry.example:5000": {"auth": STANDARD.encode("alice:alice-pw")}}})
            .to_string(),
    )
    .unwrap();
    let docker = |args: &[&str]| {
        let out = run_ok(
            &format!("docker {}", args.join(" ")),
            Command::new(require_bin("docker"))
                .args(args)
                .env("DOCKER_CONFIG", &cfg)
                .env(
                    "DOCKER_CONTENT_TRUST_SERVER",
                    format!("https://notary-server:{port}"),
                )
                .env("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", CLIENT_PASS)
                .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", CLIENT_PASS),
        );
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    docker(&[
        "trust",
        "key",
        "generate",
        "carol",
        "--dir",
        cfg.to_str().unwrap(),
    ]);
    let repo = "registry.example:5000/team/docker";
    let out = docker(&[
        "trust",
        "signer",
        "add",
        "--key",
        cfg.join("carol.pub").to_str().unwrap(),
        "carol",
        repo,
    ]);
    assert!(out.contains("Successfully added signer: carol"), "{out}");
    let out = docker(&["trust", "inspect", "--pretty", repo]);
    assert!(out.contains("carol"), "{out}");
}

#[test]
fn wrong_password_is_refused_then_rate_limited() {
    let rules = r#"[{"gun_prefix":"","users":["bob"],"actions":["pull"]}]"#;
    let p = start_pair(Some(rules));
    let gun = "registry.example:5000/team/app";
    let (status, body, token) = token_request(&p, "bob", "bob-pw", gun);
    assert_eq!(status, 200, "{body}");
    assert!(!token.is_empty());
    let (status, body, _) = token_request(&p, "bob", "nope", gun);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("UNAUTHORIZED"));
    let (status, _, _) = token_request(&p, "mallory", "x", gun);
    assert_eq!(status, 401, "unknown user");
    for _ in 0..4 {
        token_request(&p, "bob", "nope", gun);
    }
    // Five failures for (bob, this address): even the right password waits out the window.
    let (status, body, _) = token_request(&p, "bob", "bob-pw", gun);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("TOOMANYREQUESTS"), "{body}");
    // Nothing about the password reaches the log.
    let log = std::fs::read_to_string(p.dir.join("trustbridge-server.log")).unwrap();
    assert!(!log.contains("bob-pw") && !log.contains("nope"), "{log}");
}

#[test]
fn gun_outside_the_allow_list() {
    let p = start_pair_with(
        None,
        r#","repositories":{"gun_prefixes":["example.com/team/"]}"#,
    );
    let t = p.tca.grant("other.org/app", &["pull", "push"]);
    same(
        &p,
        "GET",
        &root_json("other.org/app"),
        Some(&t),
        (404, "METADATA_NOT_FOUND", ""),
    );
    same(
        &p,
        "POST",
        "/v2/other.org/app/_trust/tuf/",
        Some(&t),
        (400, "INVALID_GUN", ""),
    );
    let inside = p.tca.grant(GUN, &["pull"]);
    same(
        &p,
        "GET",
        &root_json(GUN),
        Some(&inside),
        (404, "METADATA_NOT_FOUND", ""),
    );
}

/// GET the built-in issuer with Basic credentials; (status, body, token).
fn token_request(p: &Pair, user: &str, pass: &str, gun: &str) -> (u16, String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-u",
            &format!("{user}:{pass}"),
            "--cacert",
        ])
        .arg(&p.ca)
        .arg(format!(
            "{}/_trustbridge/v1/token?service={SERVICE}&scope=repository:{gun}:pull",
            p.ours
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let token = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_string))
        .unwrap_or_default();
    (code.parse().unwrap_or(0), body.to_string(), token)
}

/// Our client answers the token challenge with `NOTARY_AUTH`, against trustbridge-server and
/// Go notary-server (both trusting the built-in issuer): alice publishes, bob (pull only)
/// reads and is refused a publish, and a wrong password gets one line saying what to set.
#[test]
fn our_client_logs_in_with_notary_auth() {
    let rules = r#"[{"gun_prefix":"","users":["alice"],"actions":["*"]},{"gun_prefix":"","users":["bob"],"actions":["pull"]}]"#;
    let p = start_pair(Some(rules));
    let file = p.dir.join("f.bin");
    std::fs::write(&file, b"f").unwrap();
    let file = file.to_str().unwrap();
    for (server, gun) in [
        (&p.ours, "registry.example:5000/client/ours"),
        (&p.go, "registry.example:5000/client/go"),
    ] {
        let as_user = |user: &str, pass: &str, trust: &str, args: &[&str]| {
            let mut cmd = trustbridge_e2e::server::trustbridge_cmd(
                server,
                &p.ca,
                &p.dir.join(format!("{trust}-{}", gun.len())),
                args,
            );
            cmd.env("NOTARY_AUTH", STANDARD.encode(format!("{user}:{pass}")));
            cmd.output().unwrap()
        };
        let ok = |o: std::process::Output| {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        ok(as_user("alice", "alice-pw", "alice", &["init", gun, "-p"]));
        ok(as_user(
            "alice",
            "alice-pw",
            "alice",
            &["add", gun, "v1", file, "-p"],
        ));
        ok(as_user(
            "alice",
            "alice-pw",
            "alice",
            &["key", "rotate", gun, "snapshot", "-r"],
        ));
        let list = ok(as_user("bob", "bob-pw", "bob", &["list", gun]));
        assert!(list.contains("v1"), "{server}: {list}");
        // bob, with alice's keys but his own credentials: the server refuses the push.
        let out = as_user("bob", "bob-pw", "alice", &["add", gun, "v2", file, "-p"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("401") && err.contains("push"),
            "{server}: {err}"
        );
        ok(as_user(
            "alice",
            "alice-pw",
            "alice",
            &["reset", gun, "--all"],
        ));
        let out = as_user("bob", "wrong", "bob2", &["list", gun]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("401") && err.contains("NOTARY_AUTH"),
            "{server}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// `trustbridge import` between two servers with different logins: the source's own
/// credentials come from `NOTARY_AUTH_FROM`, the target's from `NOTARY_AUTH`, and each refusal
/// names its variable.
#[test]
fn import_logs_into_each_server_with_its_own_credentials() {
    let rules = r#"[{"gun_prefix":"","users":["alice"],"actions":["*"]},{"gun_prefix":"","users":["bob"],"actions":["pull"]}]"#;
    let p = start_pair(Some(rules));
    let gun = "registry.example:5000/import/creds";
    let login = |u: &str, pw: &str| STANDARD.encode(format!("{u}:{pw}"));
    let file = p.dir.join("f.bin");
    std::fs::write(&file, b"f").unwrap();
    for args in [
        vec!["init", gun, "-p"],
        vec!["add", gun, "v1", file.to_str().unwrap(), "-p"],
    ] {
        let out =
            trustbridge_e2e::server::trustbridge_cmd(&p.go, &p.ca, &p.dir.join("owner"), &args)
                .env("NOTARY_AUTH", login("alice", "alice-pw"))
                .output()
                .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ca = p.ca.to_str().unwrap().to_string();
    let import = |from: Option<String>, to: String, trust: &str| {
        let mut cmd = trustbridge_e2e::server::trustbridge_cmd(
            &p.ours,
            &p.ca,
            &p.dir.join(trust),
            &[
                "import",
                "--from",
                &p.go,
                "--from-tlscacert",
                &ca,
                "--gun",
                gun,
            ],
        );
        cmd.env("NOTARY_AUTH", to);
        if let Some(f) = from {
            cmd.env("NOTARY_AUTH_FROM", f);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A wrong source login: refused by the source, in one line naming NOTARY_AUTH_FROM.
    let (ok, err) = import(
        Some(login("bob", "wrong")),
        login("alice", "alice-pw"),
        "t1",
    );
    assert!(
        !ok && err.contains("401") && err.contains("NOTARY_AUTH_FROM"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // bob alone may read the source but not import into the target.
    let (ok, err) = import(None, login("bob", "bob-pw"), "t2");
    assert!(
        !ok && err.contains("401") && err.contains("set NOTARY_AUTH "),
        "{err}"
    );
    // Each server its own login: bob reads the source, alice imports.
    let (ok, err) = import(
        Some(login("bob", "bob-pw")),
        login("alice", "alice-pw"),
        "t3",
    );
    assert!(ok, "{err}");
    let out = trustbridge_e2e::server::trustbridge_cmd(
        &p.ours,
        &p.ca,
        &p.dir.join("reader"),
        &["list", gun],
    )
    .env("NOTARY_AUTH", login("bob", "bob-pw"))
    .output()
    .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("v1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
