//! trustbridge-server with either signer, and without one for a while:
//! * Go notary-signer 0.7.0 behind trustbridge-server serves the real notary client;
//! * with trustbridge-signer stopped, reads keep serving the same bytes, a publish fails with
//!   an error naming the signer, health says so, and once the signer is back publishing works
//!   again without restarting the server;
//! * `trustbridge-server dev` (README command 1) runs the whole stack and stops it on SIGTERM.

use std::process::Command;
use std::time::{Duration, Instant};

use trustbridge_e2e::server::{
    notary, notary_cmd, start_server, start_stack, trustbridge, write_server_config,
};
use trustbridge_e2e::signer::start_ours;
use trustbridge_e2e::{Proc, free_port, https_get, init, our_bin, wait_ok};

#[test]
fn serves_the_notary_client_with_go_notary_signer() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    let signer_port = free_port();
    let mut go = trustbridge_e2e::peers::go_signer(dir, signer_port, r#"{"backend":"memory"}"#);
    let port = free_port();
    let config = write_server_config(dir, port, signer_port, "");
    let _server = start_server("trustbridge-server", dir, &config, port, &mut [&mut go]);
    let url = format!("https://127.0.0.1:{port}");
    let ca = certs.join("root-ca.crt");
    let gun = "127.0.0.1/e2e/go-signer";
    let trust = dir.join("trust");
    let file = dir.join("f.bin");
    std::fs::write(&file, b"f").unwrap();
    notary(&url, &ca, &trust, &["init", gun, "-p"]);
    notary(
        &url,
        &ca,
        &trust,
        &["add", gun, "v1", file.to_str().unwrap()],
    );
    notary(&url, &ca, &trust, &["publish", gun]);
    notary(&url, &ca, &trust, &["key", "rotate", gun, "snapshot", "-r"]);
    notary(
        &url,
        &ca,
        &trust,
        &["add", gun, "v2", file.to_str().unwrap()],
    );
    notary(&url, &ca, &trust, &["publish", gun]);
    let list = notary(&url, &ca, &dir.join("fresh"), &["list", gun]);
    assert!(list.contains("v1") && list.contains("v2"), "{list}");
}

#[test]
fn signer_outage_keeps_reads_and_recovers_writes() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let mut s = start_stack(tmp.path());
    let gun = "127.0.0.1/e2e/outage";
    let trust = tmp.path().join("trust");
    let file = tmp.path().join("f.bin");
    std::fs::write(&file, b"f").unwrap();
    let f = file.to_str().unwrap();
    notary(&s.url, &s.ca, &trust, &["init", gun, "-p"]);
    notary(&s.url, &s.ca, &trust, &["add", gun, "v1", f]);
    notary(&s.url, &s.ca, &trust, &["publish", gun]);
    let read = |name: &str| https_get(&format!("{}/v2/{gun}/_trust/tuf/{name}", s.url), &s.ca);
    let before: Vec<_> = [
        "root.json",
        "targets.json",
        "snapshot.json",
        "timestamp.json",
    ]
    .iter()
    .map(|n| read(n))
    .collect();

    // Stop the signer.
    let signer_config = tmp.path().join("signer.json");
    s.signer.stop();
    let after: Vec<_> = [
        "root.json",
        "targets.json",
        "snapshot.json",
        "timestamp.json",
    ]
    .iter()
    .map(|n| read(n))
    .collect();
    assert_eq!(before, after, "reads keep serving the stored bytes");
    let list = notary(&s.url, &s.ca, &tmp.path().join("reader"), &["list", gun]);
    assert!(list.contains("v1"), "{list}");
    let (code, body) = https_get(&format!("{}/_notary_server/health", s.url), &s.ca);
    assert_eq!(code, 503);
    assert!(String::from_utf8_lossy(&body).contains("Trust operational"));

    notary(&s.url, &s.ca, &trust, &["add", gun, "v2", f]);
    let start = Instant::now();
    let out = notary_cmd(&s.url, &s.ca, &trust, &["publish", gun])
        .output()
        .unwrap();
    let took = start.elapsed();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "publish must fail while the signer is down"
    );
    assert!(
        text.contains("signer") && text.contains("unavailable"),
        "{text}"
    );
    eprintln!("publish with the signer down failed after {took:?}");

    // Signer back on the same port: the server's channel reconnects by itself.
    s.signer = start_ours(
        "trustbridge-signer-2",
        &signer_config,
        &tmp.path().join("certs"),
        s.signer_port,
    );
    wait_ok(
        &format!("{}/_notary_server/health", s.url),
        &s.ca,
        Duration::from_secs(20),
        &mut [&mut s.server],
    );
    notary(&s.url, &s.ca, &trust, &["publish", gun]);
    let list = notary(&s.url, &s.ca, &tmp.path().join("reader2"), &["list", gun]);
    assert!(list.contains("v2"), "{list}");
}

#[test]
fn dev_mode_runs_the_stack_and_stops_on_sigterm() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("dev-data");
    let port = free_port();
    // dev mode finds trustbridge-signer next to trustbridge-server.
    our_bin("trustbridge-signer", "trustbridge-signer");
    let mut cmd = Command::new(our_bin("trustbridge-server", "trustbridge-server"));
    cmd.args(["dev", "--data"])
        .arg(&data)
        .args(["--addr", &format!("127.0.0.1:{port}")]);
    let mut p = Proc::spawn("dev", cmd, tmp.path());
    let url = format!("https://127.0.0.1:{port}");
    let ca = data.join("certs/root-ca.crt");
    let start = Instant::now();
    while !ca.exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_ok(
        &format!("{url}/_notary_server/health"),
        &ca,
        Duration::from_secs(30),
        &mut [&mut p],
    );
    assert!(data.join("certs/server.crt").exists() && data.join("certs/server.key").exists());
    assert!(
        p.log().contains("DOCKER_CONTENT_TRUST_SERVER"),
        "{}",
        p.log()
    );
    let gun = "127.0.0.1/e2e/dev";
    let trust = tmp.path().join("trust");
    notary(&url, &ca, &trust, &["init", gun, "-p"]);
    let list = notary(&url, &ca, &tmp.path().join("fresh"), &["list", gun]);
    assert!(list.contains("No targets"), "{list}");
    assert!(data.join("server.db").exists() && data.join("signer-keys.db").exists());
    // The Cosign bridge is on in dev mode: its public key is served, and a tag signed for an
    // image in a loopback registry is mirrored there (plain HTTP), as our client confirms.
    let (code, pem) = https_get(&format!("{url}/_trustbridge/v1/cosign.pub"), &ca);
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&pem).starts_with("-----BEGIN PUBLIC KEY-----"));
    // (Notation, also on in dev mode, signs only images the registry holds: it refers to the
    // image's manifest.)
    let registry = trustbridge_e2e::bridge::Registry::start(&tmp.path().join("registry"));
    let image = format!("127.0.0.1:{}/e2e/dev", registry.port);
    let (digest, size) = registry.push_sample("e2e/dev:v1");
    let size = size.to_string();
    let ours = |args: &[&str]| trustbridge(&url, &ca, &trust, args);
    ours(&["init", &image, "-p"]);
    ours(&["addhash", &image, "v1", &size, "--sha256", &digest, "-p"]);
    let start = Instant::now();
    loop {
        let out = trustbridge_e2e::server::trustbridge_cmd(
            &url,
            &ca,
            &trust,
            &["verify-both", &format!("{image}:v1")],
        )
        .output()
        .unwrap();
        if out.status.success() {
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(
                said.contains(&format!("DCT and Cosign agree on sha256:{digest}")),
                "{said}"
            );
            assert!(
                said.contains(&format!("DCT and Notation agree on sha256:{digest}")),
                "{said}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not mirrored in dev mode: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // SIGTERM: the server stops, and stops its signer child.
    let signer_port: u16 = {
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(data.join("signer.json")).unwrap()).unwrap();
        cfg["server"]["grpc_addr"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(std::net::TcpStream::connect(("127.0.0.1", signer_port)).is_ok());
    let status = p.terminate(Duration::from_secs(15));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", p.log());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", signer_port)).is_err(),
        "signer child still listening"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server still listening"
    );
}

#[test]
fn server_signed_metadata_is_renewed_before_it_expires() {
    use trustbridge_tuf::{Root, Signed, Snapshot, Timestamp};
    init();
    let tmp = tempfile::tempdir().unwrap();
    let mut s = start_stack(tmp.path());
    let gun = "127.0.0.1/e2e/renewal";
    let trust = tmp.path().join("trust");
    let file = tmp.path().join("f.bin");
    std::fs::write(&file, b"f").unwrap();
    notary(&s.url, &s.ca, &trust, &["init", gun]);
    notary(
        &s.url,
        &s.ca,
        &trust,
        &["key", "rotate", gun, "snapshot", "-r"],
    );
    notary(
        &s.url,
        &s.ca,
        &trust,
        &["add", gun, "v1", file.to_str().unwrap()],
    );
    notary(&s.url, &s.ca, &trust, &["publish", gun]);
    let read = |name: &str| {
        let (code, body) = https_get(&format!("{}/v2/{gun}/_trust/tuf/{name}", s.url), &s.ca);
        assert_eq!(code, 200, "{name}");
        body
    };
    let ts1 = Signed::<Timestamp>::from_bytes("timestamp", &read("timestamp.json")).unwrap();
    let sn1 = Signed::<Snapshot>::from_bytes("snapshot", &read("snapshot.json")).unwrap();
    let left = |t: &trustbridge_tuf::GoTime| {
        (t.as_offset_datetime() - time::OffsetDateTime::now_utc()).whole_seconds()
    };

    // Restart the server with renewal windows that open 3 s from now.
    let config = write_server_config(
        tmp.path(),
        s.port,
        s.signer_port,
        &format!(
            r#","trustbridge":{{"renew":{{"timestamp_before_seconds":{},"snapshot_before_seconds":{}}}}}"#,
            left(&ts1.signed.expires) - 3,
            left(&sn1.signed.expires) - 3
        ),
    );
    s.server.stop();
    s.server = start_server(
        "trustbridge-server-2",
        tmp.path(),
        &config,
        s.port,
        &mut [&mut s.signer],
    );
    assert_eq!(
        read("timestamp.json"),
        ts1.raw(),
        "not due yet: served as stored"
    );
    std::thread::sleep(Duration::from_secs(4));

    let ts2 = Signed::<Timestamp>::from_bytes("timestamp", &read("timestamp.json")).unwrap();
    assert_eq!(
        ts2.signed.version,
        ts1.signed.version + 1,
        "timestamp renewed ahead of expiry"
    );
    assert_eq!(
        read("timestamp.json"),
        ts2.raw(),
        "renewed once, then served from memory"
    );
    let sn2_bytes = read("snapshot.json");
    let sn2 = Signed::<Snapshot>::from_bytes("snapshot", &sn2_bytes).unwrap();
    assert_eq!(
        sn2.signed.version,
        sn1.signed.version + 1,
        "server-held snapshot renewed too"
    );
    ts2.signed.meta["snapshot"]
        .check("timestamp", "snapshot", &sn2_bytes)
        .unwrap();
    let root = Signed::<Root>::from_bytes("root", &read("root.json")).unwrap();
    for (role, doc_ok) in [
        ("timestamp", {
            let r = &root.signed.roles["timestamp"];
            ts2.verify(
                "timestamp",
                &root.signed.keys,
                &r.keyids,
                r.threshold,
                1,
                false,
            )
            .is_ok()
        }),
        ("snapshot", {
            let r = &root.signed.roles["snapshot"];
            sn2.verify(
                "snapshot",
                &root.signed.keys,
                &r.keyids,
                r.threshold,
                1,
                false,
            )
            .is_ok()
        }),
    ] {
        assert!(doc_ok, "renewed {role} verifies against root");
    }
    let list = notary(&s.url, &s.ca, &tmp.path().join("fresh"), &["list", gun]);
    assert!(list.contains("v1"), "{list}");

    // The renewal shows in the changefeed and the metrics.
    let (_, feed) = https_get(
        &format!("{}/v2/{gun}/_trust/changefeed?records=0", s.url),
        &s.ca,
    );
    let feed: serde_json::Value = serde_json::from_slice(&feed).unwrap();
    assert_eq!(
        feed["records"].as_array().unwrap().last().unwrap()["Version"],
        ts2.signed.version
    );
    let (_, metrics) = https_get(&format!("{}/metrics", s.url), &s.ca);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(r#"trustbridge_signer_calls_total{rpc="Sign",outcome="ok"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"trustbridge_http_requests_total{route="get_current",method="GET",status="200"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("trustbridge_http_request_duration_seconds_bucket"),
        "{metrics}"
    );

    // A repository nobody reads: the background sweep renews it (checked through the
    // changefeed, which never triggers a renewal itself).
    let config = write_server_config(
        tmp.path(),
        s.port,
        s.signer_port,
        &format!(
            r#","trustbridge":{{"renew":{{"timestamp_before_seconds":{},"snapshot_before_seconds":{},"sweep_seconds":1}}}}"#,
            left(&ts2.signed.expires) - 2,
            left(&sn2.signed.expires) - 2
        ),
    );
    s.server.stop();
    s.server = start_server(
        "trustbridge-server-3",
        tmp.path(),
        &config,
        s.port,
        &mut [&mut s.signer],
    );
    let last_version = || {
        let (_, feed) = https_get(
            &format!("{}/v2/{gun}/_trust/changefeed?records=0", s.url),
            &s.ca,
        );
        let feed: serde_json::Value = serde_json::from_slice(&feed).unwrap();
        feed["records"].as_array().unwrap().last().unwrap()["Version"]
            .as_i64()
            .unwrap()
    };
    let start = std::time::Instant::now();
    while last_version() == ts2.signed.version && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        last_version(),
        ts2.signed.version + 1,
        "the sweep renewed the timestamp"
    );
    assert!(
        s.server.log().contains("renewal sweep"),
        "{}",
        s.server.log()
    );
}
