//! Go notary 0.7.0's recorded metadata (../shared/fixtures/notary-0.7.0), imported into
//! trustbridge-server's storage with `trustbridge-server import`, is served byte-for-byte: the
//! current files, every version, the by-checksum files, with notary's cache headers; and the
//! error bodies match notary's captured responses exactly.

use std::path::{Path, PathBuf};
use std::process::Command;

use trustbridge_e2e::server::{start_server, write_server_config};
use trustbridge_e2e::signer::{start_ours, write_config};
use trustbridge_e2e::{free_port, init, our_bin, require_bin, run_ok};

const GUN: &str = "example.com/golden/repo";

fn fixtures() -> PathBuf {
    trustbridge_e2e::fixtures_dir()
}

/// (status, headers lower-cased, body) of a request with curl.
fn request(method: &str, url: &str, ca: &Path) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new(require_bin("curl"));
    // curl -X HEAD would wait for a body; -I asks for headers only.
    let method_args: Vec<&str> = if method == "HEAD" {
        vec!["-I"]
    } else {
        vec!["-X", method]
    };
    cmd.args(["-sS", "--max-time", "20", "--http1.1"])
        .args(method_args)
        .arg("--cacert")
        .arg(ca)
        .arg("-D")
        .arg(tmp.path())
        .args(["-o", "-", url]);
    let out = cmd.output().unwrap();
    let head = std::fs::read_to_string(tmp.path()).unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, out.stdout)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The value of `name` in a captured `http/<probe>.headers` file.
fn captured(fx: &Path, probe: &str, name: &str) -> Option<String> {
    std::fs::read_to_string(fx.join("http").join(format!("{probe}.headers")))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
}

#[test]
fn imported_notary_metadata_is_served_byte_for_byte() {
    init();
    let fx = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let signer_port = free_port();
    let sc = write_config(dir, signer_port, "sqlite3");
    let mut signer = start_ours("trustbridge-signer", &sc, &certs, signer_port);
    let port = free_port();
    let config = write_server_config(dir, port, signer_port, "");
    let out = run_ok(
        "trustbridge-server import",
        Command::new(our_bin("trustbridge-server", "trustbridge-server"))
            .arg("--config")
            .arg(&config)
            .args(["import", "--gun", GUN])
            .arg(fx.join("metadata/versions")),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 23 file(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _server = start_server("trustbridge-server", dir, &config, port, &mut [&mut signer]);
    let ca = certs.join("root-ca.crt");
    let base = format!("https://127.0.0.1:{port}/v2/{GUN}/_trust/tuf");
    let get = |p: &str| request("GET", &format!("{base}/{p}"), &ca);

    // Current files, resolved timestamp → snapshot → role hash as notary's SQL store does.
    for role in ["root", "targets", "snapshot", "targets/releases"] {
        let (status, h, body) = get(&format!("{role}.json"));
        assert_eq!(status, 200, "{role}");
        assert_eq!(
            body,
            std::fs::read(fx.join(format!("metadata/{role}.json"))).unwrap(),
            "{role}.json"
        );
        assert_eq!(
            header(&h, "cache-control"),
            captured(&fx, "get-root", "Cache-Control").as_deref()
        );
        assert_eq!(
            header(&h, "content-type"),
            Some("text/plain; charset=utf-8")
        );
        let lm = header(&h, "last-modified").unwrap();
        assert!(
            lm.ends_with(" UTC") && lm.len() == 29,
            "Go's RFC1123 with UTC: {lm}"
        );
    }
    // Every version, and the consistent-download headers.
    for entry in walk(&fx.join("metadata/versions")) {
        let rel = entry.strip_prefix(fx.join("metadata/versions")).unwrap();
        let role = rel.parent().unwrap().to_string_lossy().to_string();
        let v = rel.file_stem().unwrap().to_string_lossy().to_string();
        let (status, h, body) = get(&format!("{v}.{role}.json"));
        assert_eq!(status, 200, "{v}.{role}.json");
        assert_eq!(body, std::fs::read(&entry).unwrap(), "{v}.{role}.json");
        assert_eq!(
            header(&h, "cache-control"),
            captured(&fx, "get-root-v1", "Cache-Control").as_deref()
        );
    }
    // The newest timestamp by version is the captured current one.
    assert_eq!(
        get("7.timestamp.json").2,
        std::fs::read(fx.join("metadata/timestamp.json")).unwrap()
    );
    for entry in walk(&fx.join("metadata/by-checksum")) {
        let name = entry.file_name().unwrap().to_string_lossy().to_string();
        let (status, _, body) = get(&name);
        assert_eq!(status, 200, "{name}");
        assert_eq!(body, std::fs::read(&entry).unwrap(), "{name}");
    }

    // Error bodies and statuses exactly as notary answered them.
    let zeros = "0".repeat(64);
    let host = format!("https://127.0.0.1:{port}");
    for (probe, method, url) in [
        (
            "err-unknown-gun",
            "GET",
            format!("{host}/v2/example.com/does/not/exist/_trust/tuf/root.json"),
        ),
        ("err-unknown-version", "GET", format!("{base}/99.root.json")),
        (
            "err-unknown-checksum",
            "GET",
            format!("{base}/root.{zeros}.json"),
        ),
        ("err-bad-role", "GET", format!("{base}/bogus.json")),
        (
            "err-unknown-delegation",
            "GET",
            format!("{base}/targets/nope.json"),
        ),
        ("err-empty-post", "POST", format!("{base}/")),
        ("v2-root", "GET", format!("{host}/v2/")),
        ("health", "GET", format!("{host}/_notary_server/health")),
    ] {
        let (status, h, body) = request(method, &url, &ca);
        let want_status: u16 = std::fs::read_to_string(fx.join(format!("http/{probe}.headers")))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(status, want_status, "{probe}");
        assert_eq!(
            body,
            std::fs::read(fx.join(format!("http/{probe}.body"))).unwrap(),
            "{probe} body"
        );
        assert_eq!(
            header(&h, "content-type"),
            captured(&fx, probe, "Content-Type").as_deref(),
            "{probe} content-type"
        );
    }
    let (status, _, _) = request("HEAD", &format!("{base}/root.json"), &ca);
    assert_eq!(status, 404, "HEAD is not served, as in notary");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}
