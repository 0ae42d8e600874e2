//! The notary CLI's config file with our client: a server that requires client certificates
//! (`remote_server.tls_client_*`), `trust_dir` and `root_ca` from the file, and
//! `trust_pinning` (a pinned root key ID, wrong and right; `disable_tofu`). And the passphrase
//! prompt on a real terminal (tmux), when no variable is set.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use trustbridge_e2e::server::{CLIENT_PASS, start_stack, trustbridge};
use trustbridge_e2e::{Proc, init, our_bin, require_bin};

fn ours(args: &[&str]) -> Command {
    let mut cmd = Command::new(our_bin("trustbridge-client", "trustbridge"));
    cmd.args(args);
    for role in ["ROOT", "TARGETS", "SNAPSHOT", "DELEGATION"] {
        cmd.env(format!("NOTARY_{role}_PASSPHRASE"), CLIENT_PASS);
    }
    cmd
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let o: Output = cmd.output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn write_config(path: &Path, json: serde_json::Value) -> String {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, json.to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn notary_config_file_client_certificates_and_pinning() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = start_stack(dir);
    // The API now requires a client certificate from the dev CA.
    s.server.stop();
    let mut cmd = Command::new(our_bin("trustbridge-server", "trustbridge-server"));
    cmd.arg("--config")
        .arg(dir.join("server.json"))
        .env("NOTARY_SERVER_SERVER_CLIENT_CA_FILE", "certs/root-ca.crt");
    s.server = Proc::spawn("trustbridge-server-mtls", cmd, dir);
    let cfg = dir.join("cfg/config.json");
    // Paths are relative to the config file, in DIR/<name>/.
    let remote = serde_json::json!({
        "url": s.url, "root_ca": "../certs/root-ca.crt",
        "tls_client_cert": "../certs/signer-client.crt", "tls_client_key": "../certs/signer-client.key",
    });
    let c = write_config(
        &cfg,
        serde_json::json!({"trust_dir": "trust", "remote_server": remote.clone()}),
    );
    let gun = "127.0.0.1/cfg/app";
    let start = Instant::now();
    let (okay, out, err) = loop {
        let r = run(ours(&["-c", &c, "init", gun, "-p"]).current_dir(dir));
        if r.0 || start.elapsed() > Duration::from_secs(20) {
            break r;
        }
        s.server.assert_running();
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(okay, "{err}");
    let root_id = out
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    assert!(
        dir.join("cfg/trust/private")
            .join(format!("{root_id}.key"))
            .is_file(),
        "{out}"
    );
    assert!(
        run(&mut ours(&[
            "-c",
            &c,
            "add",
            gun,
            "v1",
            "/etc/hostname",
            "-p"
        ]))
        .0
    );
    let (okay, out, err) = run(&mut ours(&["-c", &c, "list", gun]));
    assert!(okay && out.contains("v1"), "{err}");
    // Without the client certificate the server refuses us.
    let (okay, _, err) = run(
        ours(&["-s", &s.url, "--tlscacert", s.ca.to_str().unwrap(), "-d"])
            .arg(dir.join("t0"))
            .args(["list", gun]),
    );
    assert!(!okay, "{err}");

    // Pinning: a root key ID that is not this repository's is refused before anything is cached.
    let pinned = |name: &str, pinning: serde_json::Value| {
        write_config(
            &dir.join(format!("{name}/config.json")),
            serde_json::json!({"trust_dir": "trust", "remote_server": remote.clone(), "trust_pinning": pinning}),
        )
    };
    let wrong = pinned(
        "wrong",
        serde_json::json!({"certs": {gun: ["0".repeat(64)]}}),
    );
    let (okay, _, err) = run(&mut ours(&["-c", &wrong, "list", gun]));
    assert!(!okay && err.contains("none of its root keys"), "{err}");
    assert!(
        !dir.join("wrong/trust/tuf")
            .join(gun)
            .join("metadata/root.json")
            .exists()
    );
    let right = pinned(
        "right",
        serde_json::json!({"certs": {"127.0.0.1/cfg/*": [root_id]}}),
    );
    let (okay, out, err) = run(&mut ours(&["-c", &right, "list", gun]));
    assert!(okay && out.contains("v1"), "{err}");
    let no_tofu = pinned("notofu", serde_json::json!({"disable_tofu": true}));
    let (okay, _, err) = run(&mut ours(&["-c", &no_tofu, "list", gun]));
    assert!(
        !okay && err.contains("trust on first use is disabled"),
        "{err}"
    );
}

/// With no passphrase variable, the client asks on the terminal; a wrong answer is refused
/// with one line naming the variable, and the change stays staged.
#[test]
fn passphrase_prompt_on_a_terminal() {
    init();
    let tmux = require_bin("tmux");
    let tmp = tempfile::tempdir().unwrap();
    let s = start_stack(tmp.path());
    let trust = tmp.path().join("trust");
    let gun = "127.0.0.1/prompt/app";
    trustbridge(&s.url, &s.ca, &trust, &["init", gun, "-p"]);
    let bin = our_bin("trustbridge-client", "trustbridge");
    let attempt = |n: u32, answer: &str| -> String {
        let done = tmp.path().join(format!("done-{n}"));
        // A tmux server of its own per attempt: on the shared default socket, a session
        // started just after the last one was killed can reach the server while it exits
        // ("server exited unexpectedly"), and a server this user already runs there would
        // lend the client its environment (the default socket is per user, not per test).
        let tmux = Tmux {
            bin: tmux.clone(),
            socket: tmp.path().join(format!("tmux-{n}.sock")),
        };
        let script = format!(
            "NOTARY_SNAPSHOT_PASSPHRASE={CLIENT_PASS} {} -d {} -s {} --tlscacert {} add {gun} v1 /etc/hostname -p; echo EXIT=$? > {}; sleep 60",
            bin.display(),
            trust.display(),
            s.url,
            s.ca.display(),
            done.display()
        );
        let st = tmux
            .cmd()
            .args([
                "new-session",
                "-d",
                "-x",
                "200",
                "-y",
                "20",
                "sh",
                "-c",
                &script,
            ])
            .env_remove("NOTARY_TARGETS_PASSPHRASE")
            .status()
            .unwrap();
        assert!(st.success());
        let pane = || {
            let o = tmux.cmd().args(["capture-pane", "-p"]).output().unwrap();
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let start = Instant::now();
        while !pane().contains("Enter passphrase for targets key") {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no prompt: {}",
                pane()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        tmux.cmd()
            .args(["send-keys", answer, "Enter"])
            .status()
            .unwrap();
        while !done.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no exit: {}",
                pane()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let screen = pane();
        assert!(
            !screen.contains(answer),
            "the passphrase must not echo: {screen}"
        );
        screen + &std::fs::read_to_string(&done).unwrap()
    };
    let screen = attempt(1, "not-the-passphrase");
    assert!(
        screen.contains("EXIT=1") && screen.contains("wrong passphrase for the targets key"),
        "{screen}"
    );
    let screen = attempt(2, CLIENT_PASS);
    assert!(
        screen.contains("EXIT=0") && screen.contains("Successfully published"),
        "{screen}"
    );
    let list = trustbridge(&s.url, &s.ca, &tmp.path().join("reader"), &["list", gun]);
    assert!(list.contains("v1"), "{list}");
}

/// A private tmux server on its own socket, killed (with the shell and `sleep` it runs) when
/// dropped, also when an assertion fails halfway.
struct Tmux {
    bin: std::path::PathBuf,
    socket: std::path::PathBuf,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-S").arg(&self.socket);
        cmd
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}
