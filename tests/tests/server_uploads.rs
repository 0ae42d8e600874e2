//! Malformed and oversized uploads (issue: hardening), sent to trustbridge-server and to Go
//! notary-server 0.7.0 side by side: where notary answers, we answer with its status, code and
//! detail name; where notary's handler panics and drops the connection (an empty multipart
//! body, a boundary that never occurs), we answer notary's 400 `MALFORMED_UPLOAD` instead.
//! Nothing refused is stored.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use trustbridge_e2e::peers::go_notary;
use trustbridge_e2e::server::start_stack;
use trustbridge_e2e::{https_get, init, require_bin};

/// (status, error code, detail's `Name` or string) of a POST of `body` with `content_type`.
fn post(
    base: &str,
    ca: &Path,
    gun: &str,
    content_type: &str,
    body: &Path,
) -> (u16, String, String) {
    let out = Command::new(require_bin("curl"))
        .args([
            "-sS",
            "--max-time",
            "60",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
        ])
        .args(["-H", &format!("Content-Type: {content_type}")])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg("--cacert")
        .arg(ca)
        .arg(format!("{base}/v2/{gun}/_trust/tuf/"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    let v: Value = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
    let e = &v["errors"][0];
    let detail = match &e["detail"] {
        Value::String(s) => s.clone(),
        d => d["Name"].as_str().unwrap_or("").to_string(),
    };
    (
        status.trim().parse().unwrap_or(0),
        e["code"].as_str().unwrap_or("").to_string(),
        detail,
    )
}

fn part(filename: &[u8], content: &[u8]) -> Vec<u8> {
    let mut b = b"--XX\r\nContent-Disposition: form-data; name=\"files\"; filename=\"".to_vec();
    b.extend_from_slice(filename);
    b.extend_from_slice(b"\"\r\nContent-Type: application/octet-stream\r\n\r\n");
    b.extend_from_slice(content);
    b.extend_from_slice(b"\r\n");
    b
}

const ROOT_V1: &[u8] =
    br#"{"signed":{"_type":"Root","expires":"2030-01-01T00:00:00Z","version":1},"signatures":[]}"#;
const MP: &str = "multipart/form-data; boundary=XX";

/// (status, error code, detail's name or string) a server answers.
type Answer = (u16, &'static str, &'static str);

#[test]
fn malformed_uploads_get_notarys_codes_and_store_nothing() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let ours = start_stack(tmp.path());
    let reference = go_notary(tmp.path());
    let go = reference.url.clone();
    let file = tmp.path().join("body.bin");

    // (case, content type, body, notary's answer: None where its handler panics)
    let with_final = |mut b: Vec<u8>| {
        b.extend_from_slice(b"--XX--\r\n");
        b
    };
    let cases: Vec<(&str, &str, Vec<u8>, Option<Answer>)> = vec![
        ("empty multipart body", MP, vec![], None),
        (
            "a boundary that never occurs",
            MP,
            with_final(part(b"root", ROOT_V1))
                .iter()
                .map(|b| if *b == b'X' { b'Y' } else { *b })
                .collect(),
            None,
        ),
        (
            "no boundary parameter",
            "multipart/form-data",
            b"x".to_vec(),
            Some((400, "MALFORMED_UPLOAD", "")),
        ),
        (
            "not multipart",
            "application/json",
            b"{}".to_vec(),
            Some((400, "MALFORMED_UPLOAD", "")),
        ),
        (
            "a NUL in a part's filename",
            MP,
            with_final(part(b"ro\0ot", ROOT_V1)),
            Some((400, "INVALID_ROLE", "ro\0ot")),
        ),
        (
            "metadata without signed",
            MP,
            with_final(part(b"root", br#"{"signatures":[]}"#)),
            Some((400, "INVALID_UPDATE", "ErrBadRoot")),
        ),
        (
            "signed is null",
            MP,
            with_final(part(b"root", br#"{"signed":null,"signatures":[]}"#)),
            Some((400, "INVALID_UPDATE", "ErrBadRoot")),
        ),
        (
            "bytes that are not UTF-8 in a field notary skips",
            MP,
            with_final(part(
                b"root",
                b"{\"signed\":{\"_type\":\"Root\",\"expires\":\"2030-01-01T00:00:00Z\",\"version\":1,\"x\":\"\xdb\xdb\"},\"signatures\":[]}",
            )),
            Some((400, "INVALID_UPDATE", "ErrBadRoot")),
        ),
        (
            "a part cut short",
            MP,
            part(b"root", b"{\"sig"),
            Some((400, "MALFORMED_JSON", "")),
        ),
        (
            "no filename",
            MP,
            with_final(part(b"", ROOT_V1)),
            Some((400, "NO_FILENAME", "")),
        ),
    ];
    for (n, (case, ct, body, notary)) in cases.into_iter().enumerate() {
        std::fs::write(&file, &body).unwrap();
        let gun = format!("example.com/upload{n}");
        let a = post(&ours.url, &ours.ca, &gun, ct, &file);
        let b = post(&go, &ours.ca, &gun, ct, &file);
        let b_view = (b.0, b.1.as_str(), b.2.as_str());
        match notary {
            Some(want) => {
                assert_eq!(b_view, want, "notary-server, {case}");
                assert_eq!(
                    (a.0, a.1.as_str(), a.2.as_str()),
                    want,
                    "trustbridge, {case}"
                );
            }
            None => {
                assert_eq!(
                    b.0, 0,
                    "notary-server drops the connection on {case}: {b:?}"
                );
                assert_eq!(
                    (a.0, a.1.as_str()),
                    (400, "MALFORMED_UPLOAD"),
                    "trustbridge, {case}"
                );
            }
        }
        let (code, _) = https_get(
            &format!("{}/v2/{gun}/_trust/tuf/root.json", ours.url),
            &ours.ca,
        );
        assert_eq!(code, 404, "{case}: nothing may be stored");
    }
}

/// An update is capped at 100 MiB (notary's client never sends more): a declared length over
/// the cap is refused before any of it is read, and a chunked body is cut off at the cap.
#[test]
fn oversized_bodies_are_refused() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let ours = start_stack(tmp.path());
    let big = tmp.path().join("big.bin");
    {
        let f = std::fs::File::create(&big).unwrap();
        f.set_len((100 << 20) + 1).unwrap();
    }
    let gun = "example.com/big";
    let url = format!("{}/v2/{gun}/_trust/tuf/", ours.url);
    for chunked in [false, true] {
        let mut cmd = Command::new(require_bin("curl"));
        // HTTP/1.1, so curl's `Expect: 100-continue` lets the server refuse a declared length
        // before the body is sent.
        cmd.args([
            "--http1.1",
            "-sS",
            "--max-time",
            "120",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
        ])
        .args(["-H", &format!("Content-Type: {MP}")]);
        if chunked {
            cmd.args(["-H", "Transfer-Encoding: chunked"]);
        }
        let out = cmd
            .arg("--data-binary")
            .arg(format!("@{}", big.display()))
            .arg("--cacert")
            .arg(&ours.ca)
            .arg(&url)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // A declared length is refused before the body is sent. A chunked body is read up to
        // the cap; curl may then see the connection closed while still sending (no status),
        // which is fine only if the server said nothing else (no 200, no 5xx).
        let status = text.rsplit('\n').next().unwrap_or("").trim().to_string();
        assert!(
            status == "400" && text.contains("MALFORMED_UPLOAD")
                || (chunked && status == "000" && stderr.contains("Send failure")),
            "chunked={chunked}: {status} {text} {stderr}"
        );
    }
    // Nothing was stored, and the server still serves.
    let (code, _) = https_get(
        &format!("{}/v2/{gun}/_trust/tuf/root.json", ours.url),
        &ours.ca,
    );
    assert_eq!(code, 404);
    let (code, _) = https_get(&format!("{}/_notary_server/health", ours.url), &ours.ca);
    assert_eq!(code, 200);
}
