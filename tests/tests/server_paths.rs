//! Paths as notary's router takes them: `..`, `.` and doubled slashes are cleaned and the
//! request answered with a 301 to the clean path (gorilla/mux), on every method, before any
//! route sees it — so `a/../b` never becomes a repository. Compared with Go notary-server 0.7.0.

use std::process::Command;

use trustbridge_e2e::peers::go_notary;
use trustbridge_e2e::server::start_stack;
use trustbridge_e2e::{https_get, init, require_bin};

/// (status, Location) of a request sent with the path exactly as written.
fn ask(base: &str, ca: &std::path::Path, method: &str, path: &str) -> (u16, String) {
    let mut cmd = Command::new(require_bin("curl"));
    cmd.args([
        "-sS",
        "--path-as-is",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "-X",
        method,
        "--cacert",
    ])
    .arg(ca);
    if method == "POST" {
        cmd.args(["-F", "files=@/dev/null;filename=targets"]);
    }
    let out = cmd.arg(format!("{base}{path}")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .unwrap_or("")
        .trim()
        .to_string();
    (status, location)
}

#[test]
fn unclean_paths_are_redirected_as_notary_does() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let ours = start_stack(tmp.path());
    let reference = go_notary(tmp.path());
    let go = reference.url.clone();
    for (method, path, clean) in [
        (
            "GET",
            "/v2/example.com/a/../b/_trust/tuf/root.json",
            "/v2/example.com/b/_trust/tuf/root.json",
        ),
        (
            "POST",
            "/v2/example.com/a/../b/_trust/tuf/",
            "/v2/example.com/b/_trust/tuf/",
        ),
        (
            "POST",
            "/v2/example.com/./c//_trust/tuf/",
            "/v2/example.com/c/_trust/tuf/",
        ),
        (
            "DELETE",
            "/v2/example.com/x/../../_trust/tuf/",
            "/v2/_trust/tuf/",
        ),
        (
            "GET",
            "/v2/example.com/b/_trust/tuf/root.json?x=1&y=..",
            "/v2/example.com/b/_trust/tuf/root.json?x=1&y=..",
        ),
        (
            "GET",
            "/v2/../_notary_server/health",
            "/_notary_server/health",
        ),
    ] {
        let want = if path.contains("?x=1") {
            (404, String::new())
        } else {
            (301, clean.to_string())
        };
        let a = ask(&ours.url, &ours.ca, method, path);
        let b = ask(&go, &ours.ca, method, path);
        assert_eq!(a, b, "trustbridge vs notary-server for {method} {path}");
        assert_eq!(a, want, "{method} {path}");
    }
    for gun in ["example.com/b", "example.com/c", "example.com/a/../b"] {
        let (code, _) = https_get(
            &format!("{}/v2/{gun}/_trust/tuf/root.json", ours.url),
            &ours.ca,
        );
        assert_eq!(code, 404, "{gun} must not exist");
    }
}
