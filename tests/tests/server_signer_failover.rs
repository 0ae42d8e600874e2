//! Several signers behind one server (`trust_service.endpoints`): two trustbridge-signer
//! processes on one key database serve the same keys; one is killed with SIGKILL in the middle
//! of a 16-writer publish storm and no publish fails (the link tries the other signer within
//! the request), `/metrics` shows the dead endpoint down, and it rejoins when restarted.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use trustbridge_e2e::mysql::MyDb;
use trustbridge_e2e::server::{start_server, write_server_config};
use trustbridge_e2e::signer::{start_ours, write_config};
use trustbridge_e2e::{free_port, https_get, init, our_bin};

/// `trustbridge_signer_up{endpoint="127.0.0.1:<port>"}` as `/metrics` shows it.
fn up(url: &str, ca: &Path, port: u16) -> Option<String> {
    let (_, body) = https_get(&format!("{url}/metrics"), ca);
    let text = String::from_utf8_lossy(&body).into_owned();
    let needle = format!("trustbridge_signer_up{{endpoint=\"127.0.0.1:{port}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map(str::to_string)
}

fn wait_up(url: &str, ca: &Path, port: u16, want: &str) {
    let start = Instant::now();
    while up(url, ca, port).as_deref() != Some(want) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "signer 127.0.0.1:{port} never showed up={want} in /metrics"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_signer_killed_mid_storm_fails_no_publish_and_rejoins() {
    storm("sqlite3");
}

/// The deployment notary users ran: the key database is MySQL/MariaDB, shared by both signers.
#[test]
fn two_signers_on_one_mariadb_database_survive_a_kill_mid_storm() {
    let db = MyDb::new("signers");
    storm(&format!(
        r#"{{"backend":"mysql","db_url":"{}","default_alias":"alias1"}}"#,
        db.dsn()
    ));
}

/// Two signers on one key database (`backend`, as [`write_config`] takes it), one killed.
fn storm(backend: &str) {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let certs = dir.join("certs");
    trustbridge_certs::generate(30)
        .unwrap()
        .write(&certs)
        .unwrap();
    // Two signers, one key database (keys.db beside both configs, or a SQL database).
    let (pa, pb) = (free_port(), free_port());
    let config_a = write_config(dir, pa, backend);
    let config_b = dir.join("signer-b.json");
    std::fs::write(
        &config_b,
        std::fs::read_to_string(&config_a)
            .unwrap()
            .replace(&format!("127.0.0.1:{pa}"), &format!("127.0.0.1:{pb}")),
    )
    .unwrap();
    let mut a = start_ours("signer-a", &config_a, &certs, pa);
    let mut b = start_ours("signer-b", &config_b, &certs, pb);

    // notary's single hostname/port names signer A; the second endpoint is ours.
    let port = free_port();
    let server_config = write_server_config(dir, port, pa, "");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&server_config).unwrap()).unwrap();
    json["trust_service"]["endpoints"] = serde_json::json!([format!("127.0.0.1:{pb}")]);
    std::fs::write(&server_config, json.to_string()).unwrap();
    let server = start_server("server", dir, &server_config, port, &mut [&mut a, &mut b]);
    let (url, ca) = (
        format!("https://127.0.0.1:{port}"),
        certs.join("root-ca.crt"),
    );
    assert_eq!(up(&url, &ca, pa).as_deref(), Some("1"));
    assert_eq!(up(&url, &ca, pb).as_deref(), Some("1"));

    // The storm: 16 publishers (each its own GUN, server-held snapshot and timestamp, so
    // every publish needs the signer) for 8 seconds; signer A is killed after 3.
    let load = Command::new(our_bin("trustbridge-e2e", "publish-load"))
        .arg(&url)
        .arg(&ca)
        .args(["16", "8"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let killed = Command::new("kill")
        .args(["-KILL", &a.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = load.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(" 0 failed"),
        "a publish failed while one signer was left: {said}\n{}",
        server.log()
    );
    let acked: u64 = said
        .split(" publishes, ")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(acked > 16, "the storm hardly ran: {said}");
    eprintln!("storm with signer A killed after 3 s: {said}");

    // The dead endpoint is shown down; reads and publishes go on through B.
    wait_up(&url, &ca, pa, "0");
    assert_eq!(up(&url, &ca, pb).as_deref(), Some("1"));
    let (code, _) = https_get(&format!("{url}/_notary_server/health"), &ca);
    assert_eq!(code, 200, "one signer serving is Trust operational");

    // Signer A restarted on its port: it rejoins without a server restart.
    drop(a);
    let _a = start_ours("signer-a-again", &config_a, &certs, pa);
    wait_up(&url, &ca, pa, "1");
}
