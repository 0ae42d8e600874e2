//! The built-in token issuer under attack (issue: hardening): password guesses sent at once
//! are counted before bcrypt runs, a name that does not exist costs as much as one that does,
//! and failures are limited per user name and per client address separately. Clients come
//! from several loopback addresses (curl `--interface 127.0.0.N`), as people behind different
//! hosts would.

use std::path::PathBuf;
use std::process::Command;

use trustbridge_e2e::server::{start_server, write_server_config};
use trustbridge_e2e::signer::{start_ours, token_key_generate, write_config};
use trustbridge_e2e::{Proc, free_port, init, require_bin};

const SERVICE: &str = "trustbridge-test";
/// carol's password is hashed at a production bcrypt cost, so a check takes real time.
const CAROL_COST: u32 = 10;

struct Issuer {
    _tmp: tempfile::TempDir,
    _signer: Proc,
    _server: Proc,
    dir: PathBuf,
    url: String,
    ca: PathBuf,
}

fn start_issuer() -> Issuer {
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
    let key_id = token_key_generate(&sc, &dir.join("issuer.crt"));
    std::fs::copy(dir.join("issuer.crt"), dir.join("token-roots.pem")).unwrap();
    std::fs::write(
        dir.join("users.htpasswd"),
        format!(
            "alice:{}\nbob:{}\ncarol:{}\n",
            bcrypt::hash("alice-pw", 4).unwrap(),
            bcrypt::hash("bob-pw", 4).unwrap(),
            bcrypt::hash("carol-pw", CAROL_COST).unwrap()
        ),
    )
    .unwrap();
    let mut signer = start_ours("trustbridge-signer", &sc, &certs, signer_port);
    let port = free_port();
    let realm = format!("https://127.0.0.1:{port}/_trustbridge/v1/token");
    let extra = format!(
        r#","auth":{{"type":"token","options":{{"realm":"{realm}","service":"{SERVICE}","issuer":"test-issuer","rootcertbundle":"token-roots.pem"}}}},"trustbridge":{{"token_issuer":{{"key_id":"{key_id}","htpasswd":"users.htpasswd","rules":[{{"gun_prefix":"","users":["*"],"actions":["pull"]}}]}}}}"#
    );
    let config = write_server_config(&dir, port, signer_port, &extra);
    let server = start_server(
        "trustbridge-server",
        &dir,
        &config,
        port,
        &mut [&mut signer],
    );
    Issuer {
        _tmp: tmp,
        _signer: signer,
        _server: server,
        dir,
        url: format!("https://127.0.0.1:{port}"),
        ca: certs.join("root-ca.crt"),
    }
}

/// A token request with Basic credentials from loopback address `from`: (status, seconds the
/// server took from the request's first byte to its answer's).
fn login(i: &Issuer, from: &str, user: &str, pass: &str) -> (u16, f64) {
    let out = login_cmd(i, from, user, pass).output().unwrap();
    parse(&String::from_utf8_lossy(&out.stdout))
}

fn login_cmd(i: &Issuer, from: &str, user: &str, pass: &str) -> Command {
    let mut cmd = Command::new(require_bin("curl"));
    cmd.args([
        "-sS",
        "--max-time",
        "30",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{time_pretransfer} %{time_starttransfer}",
        "--interface",
        from,
        "-u",
        &format!("{user}:{pass}"),
        "--cacert",
    ])
    .arg(&i.ca)
    .arg(format!(
        "{}/_trustbridge/v1/token?service={SERVICE}&scope=repository:example.com/app:pull",
        i.url
    ));
    cmd
}

fn parse(out: &str) -> (u16, f64) {
    let f: Vec<&str> = out.split_whitespace().collect();
    let code = f.first().and_then(|c| c.parse().ok()).unwrap_or(0);
    let pre: f64 = f.get(1).and_then(|c| c.parse().ok()).unwrap_or(0.0);
    let start: f64 = f.get(2).and_then(|c| c.parse().ok()).unwrap_or(0.0);
    (code, start - pre)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn logins_are_limited_before_bcrypt_per_user_and_per_address() {
    let i = start_issuer();
    let ok = login(&i, "127.0.0.1", "bob", "bob-pw");
    assert_eq!(ok.0, 200, "bob logs in");

    // Timing: a name that does not exist is answered no faster than a wrong password for
    // one that does (a dummy bcrypt at the file's highest cost), so names cannot be probed.
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for n in 0..3 {
        let (code, t) = login(&i, "127.0.0.9", "carol", "wrong");
        assert_eq!(code, 401);
        known.push(t);
        let (code, t) = login(&i, "127.0.0.9", &format!("ghost{n}"), "wrong");
        assert_eq!(code, 401);
        unknown.push(t);
    }
    let (known, unknown) = (median(known), median(unknown));
    assert!(
        unknown >= known * 0.5,
        "an unknown name took {unknown:.4}s, a wrong password for carol {known:.4}s: timing tells which names exist"
    );

    // Sixteen guesses for carol at once (2 failures left for her): each is counted before
    // bcrypt runs, so at most two are checked and the rest are refused with 429.
    let guesses: Vec<_> = (0..16)
        .map(|n| {
            login_cmd(&i, &format!("127.0.1.{}", n + 1), "carol", "guess-7q")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<u16> = guesses
        .into_iter()
        .map(|c| {
            parse(&String::from_utf8_lossy(
                &c.wait_with_output().unwrap().stdout,
            ))
            .0
        })
        .collect();
    let checked = codes.iter().filter(|c| **c == 401).count();
    let refused = codes.iter().filter(|c| **c == 429).count();
    assert_eq!(checked + refused, 16, "{codes:?}");
    assert!(
        checked <= 2,
        "{checked} concurrent guesses were checked after 3 failures (limit 5): {codes:?}"
    );
    // carol is locked out from everywhere, even with her password.
    assert_eq!(login(&i, "127.0.0.20", "carol", "carol-pw").0, 429);

    // One user name from many addresses: alice's five failures come from five hosts; then
    // her right password is refused wherever it comes from.
    for n in 0..5 {
        assert_eq!(
            login(&i, &format!("127.0.2.{}", n + 1), "alice", "x").0,
            401
        );
    }
    assert_eq!(login(&i, "127.0.2.9", "alice", "alice-pw").0, 429);

    // Spraying: one address tries one password on many names. After 30 failures that
    // address is refused, whoever it names, while bob logs in from another address.
    let mut refused_at = None;
    for n in 0..40 {
        let (code, _) = login(&i, "127.0.3.1", &format!("user{n}"), "Summer2026!");
        if code == 429 {
            refused_at = Some(n);
            break;
        }
        assert_eq!(code, 401);
    }
    assert_eq!(refused_at, Some(30), "the address limit");
    assert_eq!(login(&i, "127.0.3.1", "bob", "bob-pw").0, 429);
    assert_eq!(login(&i, "127.0.3.2", "bob", "bob-pw").0, 200);

    // No password reaches the log.
    let log = std::fs::read_to_string(i.dir.join("trustbridge-server.log")).unwrap();
    for secret in ["bob-pw", "carol-pw", "Summer2026!", "guess-7q"] {
        assert!(!log.contains(secret), "{secret} logged");
    }
}
