//! Hostile registries on loopback: one that never answers, one that sends a 1 GiB body, one
//! that refuses, one the config does not name. Each delays only its own jobs.

use trustbridge_e2e::bridge::{Registry, sign_tag};
use trustbridge_e2e::{https_get, init};

/// A registry on loopback that misbehaves in one way, until dropped.
struct Hostile {
    port: u16,
    _thread: std::thread::JoinHandle<()>,
}

#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Accepts connections and never answers.
    Silent,
    /// Answers every request with a 1 GiB body.
    Huge,
    /// Answers every request 403 DENIED.
    Forbidden,
}

impl Hostile {
    fn start(how: Misbehaviour) -> Hostile {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                match how {
                    Misbehaviour::Silent => held.push(conn),
                    Misbehaviour::Huge | Misbehaviour::Forbidden => {
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 16384];
                            // One request per connection: read its head, answer, close.
                            let _ = conn.read(&mut buf);
                            let _ = match how {
                                Misbehaviour::Forbidden => {
                                    let body = r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
                                    conn.write_all(format!("HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
                                }
                                _ => {
                                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 1073741824\r\nConnection: close\r\n\r\n");
                                    let zeros = vec![b' '; 1 << 20];
                                    (0..1024).try_for_each(|_| conn.write_all(&zeros))
                                }
                            };
                        });
                    }
                }
            }
        });
        Hostile {
            port,
            _thread: thread,
        }
    }
}

/// Peak resident memory of a process (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024
}

/// One registry that never answers, one that sends a 1 GiB body, one that refuses (403) and
/// one the config does not name: a good registry's tag is still mirrored at once, the refusal
/// is dead after one attempt with the registry's message, the unnamed one is `not-configured`
/// (never contacted), the huge answer is cut off, and the server's memory stays small.
#[test]
fn hostile_registries_delay_only_their_own_jobs() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start(&dir.join("registry"));
    let (digest, size) = registry.push_sample("team/good:v1");
    let silent = Hostile::start(Misbehaviour::Silent);
    let huge = Hostile::start(Misbehaviour::Huge);
    let forbidden = Hostile::start(Misbehaviour::Forbidden);
    let unnamed = Hostile::start(Misbehaviour::Forbidden);
    let plain = |port: u16| format!(r#""127.0.0.1:{port}":{{"plain_http":true}}"#);
    let st = trustbridge_e2e::bridge::start_bridge(
        dir,
        &format!(
            r#","max_backoff_seconds":1,"registries":{{{},{},{},{}}}"#,
            plain(registry.port),
            plain(silent.port),
            plain(huge.port),
            plain(forbidden.port)
        ),
    );
    let trust = dir.join("owner");
    let gun = |port: u16, name: &str| format!("127.0.0.1:{port}/team/{name}");
    // The hostile ones first: on a bridge that delivers one job at a time, they would stall
    // the good registry's job.
    for (port, name) in [
        (silent.port, "silent"),
        (huge.port, "huge"),
        (forbidden.port, "forbidden"),
        (unnamed.port, "unnamed"),
    ] {
        sign_tag(&st, &trust, &gun(port, name), "v1", size, &digest);
    }
    sign_tag(
        &st,
        &trust,
        &gun(registry.port, "good"),
        "v1",
        size,
        &digest,
    );
    let good = trustbridge_e2e::bridge::wait_status(&st, &gun(registry.port, "good"), "v1", |t| {
        t["state"] == "mirrored"
    });
    assert_eq!(good["action"], "sign");

    let refused =
        trustbridge_e2e::bridge::wait_status(&st, &gun(forbidden.port, "forbidden"), "v1", |t| {
            t["state"] != "pending"
        });
    assert_eq!(refused["state"], "dead", "a 403 is final: {refused}");
    assert_eq!(refused["attempts"], 1, "{refused}");
    assert!(
        refused["last_error"].as_str().unwrap().contains("denied"),
        "the registry's message is kept: {refused}"
    );
    let unnamed_job =
        trustbridge_e2e::bridge::wait_status(&st, &gun(unnamed.port, "unnamed"), "v1", |t| {
            t["state"] != "pending"
        });
    assert_eq!(unnamed_job["state"], "not-configured", "{unnamed_job}");
    assert!(
        unnamed_job["last_error"]
            .as_str()
            .unwrap()
            .contains("trustbridge.bridge.registries"),
        "the fix is named: {unnamed_job}"
    );
    let huge_job = trustbridge_e2e::bridge::wait_status(&st, &gun(huge.port, "huge"), "v1", |t| {
        t["state"] == "failed"
    });
    assert!(
        huge_job["last_error"]
            .as_str()
            .unwrap()
            .contains("larger than"),
        "{huge_job}"
    );
    let (_, metrics) = https_get(&format!("{}/metrics", st.url), &st.ca);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(r#"trustbridge_bridge_jobs_by_state{state="not-configured"} 1"#),
        "{metrics}"
    );
    let rss = peak_rss_mib(st.server.id());
    assert!(rss < 200, "peak RSS {rss} MiB after a 1 GiB answer");
    let silent_job =
        trustbridge_e2e::bridge::wait_status(&st, &gun(silent.port, "silent"), "v1", |_| true);
    assert_ne!(silent_job["state"], "mirrored", "{silent_job}");
}
