//! API details of trustbridge-server that notary clients and operators rely on, checked over
//! HTTPS: changefeed paging with notary's rules, the GUN prefix filter, caching set to 0,
//! server-managed key routes.

use trustbridge_e2e::server::{notary, start_server, start_stack, write_server_config};
use trustbridge_e2e::{Proc, https_get, init};

fn feed(url: &str, ca: &std::path::Path, q: &str) -> (u16, serde_json::Value) {
    let (code, body) = https_get(&format!("{url}{q}"), ca);
    (
        code,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn ids(v: &serde_json::Value) -> Vec<i64> {
    v["records"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["ID"].as_str().unwrap().parse().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn changefeed_paging_prefix_filter_caching_and_keys() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let mut s = start_stack(tmp.path());
    let file = tmp.path().join("f.bin");
    std::fs::write(&file, b"f").unwrap();
    let f = file.to_str().unwrap();
    let trust = tmp.path().join("trust");
    for gun in ["allowed/a", "allowed/b"] {
        notary(&s.url, &s.ca, &trust, &["init", gun, "-p"]);
        notary(&s.url, &s.ca, &trust, &["add", gun, "v1", f]);
        notary(&s.url, &s.ca, &trust, &["publish", gun]);
    }
    // Four timestamps: ids 1..4 (a, a, b, b).
    let all = format!("{}/v2/_trust/changefeed", s.url);
    let (code, v) = feed(&all, &s.ca, "?records=0");
    assert_eq!(code, 200);
    assert_eq!((v["count"].as_i64(), ids(&v)), (Some(4), vec![1, 2, 3, 4]));
    assert_eq!(
        ids(&feed(&all, &s.ca, "?change_id=1&records=2").1),
        vec![2, 3],
        "after id 1, exclusive"
    );
    assert_eq!(
        ids(&feed(&all, &s.ca, "?change_id=4&records=-2").1),
        vec![2, 3],
        "two before id 4, oldest first"
    );
    assert_eq!(
        ids(&feed(&all, &s.ca, "?change_id=-1&records=2").1),
        vec![3, 4],
        "latest two"
    );
    let gun_feed = format!("{}/v2/allowed/b/_trust/changefeed", s.url);
    let (_, v) = feed(&gun_feed, &s.ca, "?records=0");
    assert_eq!(ids(&v), vec![3, 4]);
    assert!(
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["GUN"] == "allowed/b" && r["Category"] == "update")
    );
    // notary's parameter rules: records is required, int32.
    for q in [
        "",
        "?change_id=0",
        "?records=x",
        "?change_id=abc&records=1",
        "?records=99999999999",
    ] {
        let (code, v) = feed(&all, &s.ca, q);
        assert_eq!(
            (code, v["errors"][0]["code"].as_str()),
            (400, Some("INVALID_PARAMETERS")),
            "{q}"
        );
    }

    // Server-managed keys: GET returns the key root lists; POST rotates to an unused one.
    let key_url = format!("{}/v2/allowed/a/_trust/tuf/timestamp.key", s.url);
    let (code, k1) = https_get(&key_url, &s.ca);
    assert_eq!(code, 200);
    let k1: trustbridge_tuf::PublicKey = serde_json::from_slice(&k1).unwrap();
    let root: trustbridge_tuf::Signed<trustbridge_tuf::Root> = trustbridge_tuf::Signed::from_bytes(
        "root",
        &https_get(
            &format!("{}/v2/allowed/a/_trust/tuf/root.json", s.url),
            &s.ca,
        )
        .1,
    )
    .unwrap();
    assert_eq!(root.signed.roles["timestamp"].keyids, vec![k1.id()]);

    // Restart with a GUN prefix filter and caching switched off.
    let config = write_server_config(
        tmp.path(),
        s.port,
        s.signer_port,
        r#","repositories":{"gun_prefixes":["allowed/"]},"caching":{"max_age":{"current_metadata":0,"consistent_metadata":0}}"#,
    );
    s.server.stop();
    s.server = start_server(
        "trustbridge-server-2",
        tmp.path(),
        &config,
        s.port,
        &mut [&mut s.signer],
    );
    let (code, body) = https_get(&format!("{}/v2/other/x/_trust/tuf/root.json", s.url), &s.ca);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (code, v["errors"][0]["code"].as_str()),
        (404, Some("METADATA_NOT_FOUND"))
    );
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            "-F",
            "files=@/dev/null;filename=root",
            "--cacert",
        ])
        .arg(&s.ca)
        .arg(format!("{}/v2/other/x/_trust/tuf/", s.url))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("400") && text.contains("INVALID_GUN") && text.contains("allowed/"),
        "{text}"
    );
    let out = std::process::Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(&s.ca)
        .arg(format!("{}/v2/allowed/a/_trust/tuf/root.json", s.url))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        headers.contains("cache-control: max-age=0, no-cache, no-store")
            && headers.contains("pragma: no-cache"),
        "{headers}"
    );
    let list = notary(
        &s.url,
        &s.ca,
        &tmp.path().join("fresh"),
        &["list", "allowed/a"],
    );
    assert!(list.contains("v1"), "{list}");
}

/// `server.client_ca_file` (here through its env override, `NOTARY_SERVER_SERVER_CLIENT_CA_FILE`):
/// the API refuses clients without a certificate from that CA at the handshake.
#[test]
fn client_certificates_are_required_when_client_ca_file_is_set() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let mut s = start_stack(tmp.path());
    let config = tmp.path().join("server.json");
    s.server.stop();
    let mut cmd = std::process::Command::new(trustbridge_e2e::our_bin(
        "trustbridge-server",
        "trustbridge-server",
    ));
    cmd.arg("--config")
        .arg(&config)
        .env("NOTARY_SERVER_SERVER_CLIENT_CA_FILE", "certs/root-ca.crt");
    s.server = Proc::spawn("trustbridge-server-mtls", cmd, tmp.path());
    let certs = tmp.path().join("certs");
    let curl = |with_cert: bool| {
        let mut c = std::process::Command::new("curl");
        c.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&s.ca);
        if with_cert {
            c.arg("--cert")
                .arg(certs.join("signer-client.crt"))
                .arg("--key")
                .arg(certs.join("signer-client.key"));
        }
        let out = c
            .arg(format!("{}/_notary_server/health", s.url))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let start = std::time::Instant::now();
    while curl(true) != "200" {
        s.server.assert_running();
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{}",
            s.server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_ne!(curl(false), "200", "no client certificate must be refused");
    let other = trustbridge_certs::generate(30).unwrap();
    let d = tmp.path().join("other");
    other.write(&d).unwrap();
    let mut c = std::process::Command::new("curl");
    c.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&s.ca)
        .arg("--cert")
        .arg(d.join("signer-client.crt"))
        .arg("--key")
        .arg(d.join("signer-client.key"))
        .arg(format!("{}/_notary_server/health", s.url));
    assert_ne!(
        String::from_utf8_lossy(&c.output().unwrap().stdout),
        "200",
        "a certificate from another CA must be refused"
    );
}
