//! Harness for end-to-end tests across real processes: peer binaries, loopback ports, child
//! processes that are always stopped, and HTTP(S) through curl.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Install ring as the process-wide rustls provider (every test process does this first).
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Path of a peer binary. A missing peer fails the test (never skips): the README's test
/// command installs them (`apt-get install notary ...`).
pub fn require_bin(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("peer binary `{name}` not found on PATH: run the README's test command (scripts/test.sh) as root to install it"))
}

/// A peer that scripts/test.sh installs under `$TRUSTBRIDGE_PEERS` (default
/// /usr/local/lib/peers): `<suite>/<tool>` from Debian's newer suites (debian-extra.sh), or
/// `crates/bin/<tool>` from crates.io. Missing fails the test.
pub fn peer(sub: &str, name: &str) -> PathBuf {
    let dir = std::env::var_os("TRUSTBRIDGE_PEERS")
        .map_or_else(|| PathBuf::from("/usr/local/lib/peers"), PathBuf::from);
    let p = dir.join(sub).join(name);
    assert!(
        p.is_file(),
        "{} is missing: run the README's test command (scripts/test.sh) as root to install it",
        p.display()
    );
    p
}

/// A free TCP port on 127.0.0.1, for peers that cannot bind port 0 and report it. Picked at
/// random below the kernel's ephemeral range (32768+), so a client connection's source port
/// cannot take it between this check and the peer's bind; never the same twice per process.
///
/// nextest runs every test in a process of its own, several at once, so a port is also reserved
/// across processes: an exclusive lock on `<tmp>/trustbridge-e2e-ports/<port>`, held until this
/// process exits (the kernel drops it even on a crash). Without it, another test could take a
/// port that is free only for a moment: between the check and the peer's bind, or while a test
/// has stopped the server, PostgreSQL or signer it is about to restart on the same port.
pub fn free_port() -> u16 {
    use ring::rand::SecureRandom;
    static GIVEN: std::sync::Mutex<Vec<(u16, std::fs::File)>> = std::sync::Mutex::new(Vec::new());
    let rng = ring::rand::SystemRandom::new();
    let dir = port_lock_dir();
    loop {
        let mut b = [0u8; 2];
        rng.fill(&mut b).unwrap();
        let port = 15000 + u16::from_be_bytes(b) % 17000;
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if given.iter().any(|(p, _)| *p == port) {
            continue;
        }
        let Some(lock) = reserve(&dir, port) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push((port, lock));
            return port;
        }
    }
}

/// The directory of port locks, shared by every test process on the machine.
pub fn port_lock_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("trustbridge-e2e-ports");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// The lock on `port`, or None when another process holds it.
fn reserve(dir: &Path, port: u16) -> Option<std::fs::File> {
    let path = dir.join(port.to_string());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    match file.try_lock() {
        Ok(()) => Some(file),
        Err(std::fs::TryLockError::WouldBlock) => None,
        Err(std::fs::TryLockError::Error(e)) => panic!("locking {}: {e}", path.display()),
    }
}

/// A child process killed (and reaped) when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Start `cmd` with stdout/stderr to `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let f = std::fs::File::create(&log).unwrap();
        cmd.stdout(f.try_clone().unwrap())
            .stderr(f)
            .stdin(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            name: name.into(),
            child,
            log,
        }
    }

    /// Kill the process now and reap it (it can then be replaced by a new one).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send SIGTERM and wait up to `timeout` for the exit status (None if it had to be killed).
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The OS process ID.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panic with the log tail if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited with {status}:\n{}", self.name, self.log());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Run a command to completion, panicking with its output on failure.
pub fn run_ok(what: &str, cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A running trustbridge-server as a test reaches it: its base URL and the CA it is served
/// under (both kinds of test stack, with and without the bridge).
pub trait Endpoint {
    fn url(&self) -> &str;
    fn ca(&self) -> &Path;
}

/// The control room's document of `gun` (`/_trustbridge/v1/migration/gun`) once it satisfies
/// `ok`, polled for 60 s at most (then a panic naming `what` it never became).
pub fn wait_gun(
    st: &impl Endpoint,
    gun: &str,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    let q: String = form_urlencoded::byte_serialize(gun.as_bytes()).collect();
    loop {
        let (code, body) = https_get(
            &format!("{}/_trustbridge/v1/migration/gun?gun={q}", st.url()),
            st.ca(),
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if code == 200 && ok(&v) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{gun}: never {what}: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET `url` with curl trusting `ca`; returns (status, body).
pub fn https_get(url: &str, ca: &Path) -> (u16, Vec<u8>) {
    curl_get(url, &["--cacert", &ca.to_string_lossy()])
}

/// GET `url` with curl and `extra` arguments (CA, credentials, headers); (status, body).
pub fn curl_get(url: &str, extra: &[&str]) -> (u16, Vec<u8>) {
    let out = Command::new(require_bin("curl"))
        .arg("-sS")
        .args(extra)
        .args(["-o", "-", "-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let mut body = out.stdout;
    let nl = body.iter().rposition(|b| *b == b'\n').unwrap_or(0);
    let code = String::from_utf8_lossy(&body[nl + 1..])
        .trim()
        .parse()
        .unwrap_or(0);
    body.truncate(nl);
    (code, body)
}

/// Poll `url` until it answers 200, or panic after `timeout` naming `proc`'s log.
pub fn wait_ok(url: &str, ca: &Path, timeout: Duration, procs: &mut [&mut Proc]) {
    let start = Instant::now();
    loop {
        if https_get(url, ca).0 == 200 {
            return;
        }
        for p in procs.iter_mut() {
            p.assert_running();
        }
        if start.elapsed() > timeout {
            let logs: Vec<String> = procs
                .iter()
                .map(|p| format!("--- {}\n{}", p.name, p.log()))
                .collect();
            panic!("{url} not healthy after {timeout:?}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub mod bridge;
pub mod load;
pub mod mysql;
pub mod notation;
pub mod peers;
pub mod pg;
pub mod server;
pub mod signer;

/// Path of one of our own binaries, built on first use with the cargo that builds the tests
/// (a test package cannot depend on another package's binary), into the same target dir.
pub fn our_bin(package: &str, bin: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test-exe>
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap();
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.iter().any(|b| b == bin) {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "--quiet",
            "-p",
            package,
            "--bin",
            bin,
            "--target-dir",
        ])
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        // cargo sets CARGO_MANIFEST_DIR, CARGO_PKG_* ... for the test process; ring's build
        // script reruns when CARGO_MANIFEST_DIR changes, so passing them on would rebuild
        // half the graph on every test run.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("CARGO_") && k != "CARGO_HOME" && !k.starts_with("CARGO_NET") {
                cmd.env_remove(k);
            }
        }
        run_ok(&format!("cargo build --bin {bin}"), &mut cmd);
        built.push(bin.to_string());
    }
    profile_dir.join(bin)
}

/// The workplace's shared material (reference peers, fixtures): `$TRUSTBRIDGE_SHARED`, else
/// `../shared` beside the checkout. scripts/test.sh sets the variable when it finds it.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("TRUSTBRIDGE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// notary 0.7.0's golden vectors: `$TRUSTBRIDGE_FIXTURES`, else under [`shared_dir`].
/// Missing fixtures fail the test: they are part of the checkout's environment.
pub fn fixtures_dir() -> PathBuf {
    let d = std::env::var_os("TRUSTBRIDGE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared_dir().join("fixtures/notary-0.7.0"));
    assert!(
        d.join("metadata/root.json").is_file(),
        "golden fixtures not found at {} (set TRUSTBRIDGE_FIXTURES or TRUSTBRIDGE_SHARED)",
        d.display()
    );
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another process (util-linux `flock`, as another test process would) cannot take a port
    /// this one was given, for as long as this process runs.
    #[test]
    fn a_given_port_is_reserved_for_other_processes() {
        let port = free_port();
        let lock = port_lock_dir().join(port.to_string());
        let other = Command::new(require_bin("flock"))
            .args(["--nonblock", "--conflict-exit-code", "7"])
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap();
        assert_eq!(other.code(), Some(7), "port {port} was not reserved");
    }
}
