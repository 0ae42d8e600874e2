//! Crash safety (issue: hardening): what answered 200 survives SIGKILL. Sixteen writers
//! publish targets versions into their own repositories (server-held snapshot and timestamp,
//! the Cosign bridge on) while the server is killed with SIGKILL at random moments, twenty
//! times, on SQLite and on PostgreSQL. After each restart: every update answered 200 is served
//! byte for byte, no version of targets, snapshot or timestamp is missing below the current
//! one, each repository's current metadata verifies end to end (root → timestamp → snapshot →
//! targets, signatures and hashes), and every tag of every acknowledged version has its
//! bridge job.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use trustbridge_e2e::bridge::{Registry, Stack, server_key, start_stack};
use trustbridge_e2e::init;
use trustbridge_tuf::metadata::FileMeta;
use trustbridge_tuf::{
    GoTime, KeyType, PrivateKey, Root, Signed, Snapshot, Targets, Timestamp, x509,
};

const WRITERS: usize = 16;
const KILLS: usize = 20;

/// One writer's repository and what the server acknowledged for it.
struct Writer {
    gun: String,
    targets_key: PrivateKey,
    /// targets version → SHA-256 of the bytes the server answered 200 for.
    acked: BTreeMap<i64, String>,
    /// Tags of every acknowledged version (each version adds one).
    acked_tags: BTreeSet<String>,
    /// What earlier rounds checked: the newest acknowledged targets version, and the top
    /// versions of targets, snapshot and timestamp found without gaps.
    checked: (i64, [i64; 3]),
}

fn sha(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b))
}

fn targets_file(key: &PrivateKey, version: i64, digest: &[u8], size: i64) -> Vec<u8> {
    let meta = FileMeta {
        custom: None,
        hashes: [("sha256".to_string(), digest.to_vec())].into(),
        length: size,
    };
    let body = Targets {
        type_: "Targets".into(),
        delegations: Default::default(),
        expires: GoTime::now().plus_years(3),
        targets: (1..=version)
            .map(|v| (format!("t{v}"), meta.clone()))
            .collect(),
        version,
    };
    Signed::sign(body, &[key]).unwrap().raw().to_vec()
}

fn client(st: &Stack) -> reqwest::Client {
    let ca = std::fs::read(&st.ca).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn get(c: &reqwest::Client, url: &str) -> Option<Vec<u8>> {
    let r = c.get(url).send().await.ok()?;
    if r.status() != 200 {
        return None;
    }
    r.bytes().await.ok().map(|b| b.to_vec())
}

async fn post(
    c: &reqwest::Client,
    url: &str,
    parts: Vec<(&str, Vec<u8>)>,
) -> Result<(u16, String), String> {
    let mut form = reqwest::multipart::Form::new();
    for (role, data) in parts {
        form = form.part(
            "files",
            reqwest::multipart::Part::bytes(data).file_name(role.to_string()),
        );
    }
    let r = c
        .post(url)
        .multipart(form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let code = r.status().as_u16();
    Ok((code, r.text().await.unwrap_or_default()))
}

/// Publish versions into `w`'s repository until `stop`; a version answered 200 is recorded.
/// After a failed request the writer starts again from the version the server serves. A
/// refusal (notary's error envelope) is allowed only while a part the server needs is down
/// (`n.tolerate`), and counted.
async fn storm(
    c: reqwest::Client,
    base: String,
    w: &mut Writer,
    digest: Vec<u8>,
    size: i64,
    stop: Arc<AtomicBool>,
    n: Arc<Counters>,
) {
    let url = format!("{base}/v2/{}/_trust/tuf/", w.gun);
    while !stop.load(Ordering::SeqCst) {
        let current = match get(&c, &format!("{url}targets.json")).await {
            Some(b) => {
                Signed::<Targets>::from_bytes("targets", &b)
                    .unwrap()
                    .signed
                    .version
            }
            None => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        loop {
            let v = current.max(w.acked.keys().last().copied().unwrap_or(0)) + 1;
            let file = targets_file(&w.targets_key, v, &digest, size);
            let h = sha(&file);
            match post(&c, &url, vec![("targets", file)]).await {
                Ok((200, _)) => {
                    n.acks.fetch_add(1, Ordering::SeqCst);
                    w.acked.insert(v, h);
                    w.acked_tags.insert(format!("t{v}"));
                }
                Ok((code, body)) => {
                    assert!(n.tolerate, "{}: version {v} answered {code}: {body}", w.gun);
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    assert!(
                        v["errors"][0]["code"].is_string(),
                        "a refusal in notary's envelope: {code} {body}"
                    );
                    n.refusals.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    break;
                }
                Err(e) => {
                    if std::env::var_os("CRASH_DEBUG").is_some() {
                        eprintln!("{}: {e}", w.gun);
                    }
                    break;
                }
            }
            if stop.load(Ordering::SeqCst) {
                return;
            }
        }
    }
}

/// The file of `role` that `parent`'s meta names by hash, checked against that hash and length.
async fn named(
    c: &reqwest::Client,
    url: &str,
    meta: &BTreeMap<String, FileMeta>,
    parent: &str,
    role: &str,
) -> Vec<u8> {
    let m = &meta[role];
    let b = get(
        c,
        &format!("{url}{role}.{}.json", hex::encode(m.sha256().unwrap())),
    )
    .await
    .unwrap_or_else(|| panic!("{url}: the {role} {parent} names is missing"));
    m.check(parent, role, &b).unwrap();
    b
}

/// Everything the server serves for `w` holds together and keeps every acknowledged version.
///
/// Versions checked in an earlier round are checked again only at the end (`full`): each round
/// checks what was acknowledged or added since.
async fn check(c: &reqwest::Client, base: &str, w: &mut Writer, round: usize, full: bool) {
    let url = format!("{base}/v2/{}/_trust/tuf/", w.gun);
    let at = |what: &str| format!("round {round}, {}: {what}", w.gun);
    let from = if full { 0 } else { w.checked.0 };
    for (v, h) in w.acked.range(from + 1..) {
        let b = get(c, &format!("{url}{v}.targets.json"))
            .await
            .unwrap_or_else(|| panic!("{}", at(&format!("acknowledged targets v{v} is gone"))));
        assert_eq!(&sha(&b), h, "{}", at(&format!("targets v{v} bytes")));
    }
    let root_b = get(c, &format!("{url}root.json")).await.expect("root");
    let ts_b = get(c, &format!("{url}timestamp.json"))
        .await
        .expect("timestamp");
    let root = Signed::<Root>::from_bytes("root", &root_b).unwrap();
    let keys = &root.signed.keys;
    let role = |r: &str| root.signed.roles[r].clone();
    root.verify("root", keys, &role("root").keyids, 1, 1, false)
        .unwrap();
    let ts = Signed::<Timestamp>::from_bytes("timestamp", &ts_b).unwrap();
    ts.verify("timestamp", keys, &role("timestamp").keyids, 1, 1, false)
        .unwrap_or_else(|e| panic!("{}", at(&format!("timestamp: {e}"))));
    let snap_b = named(c, &url, &ts.signed.meta, "timestamp", "snapshot").await;
    let snap = Signed::<Snapshot>::from_bytes("snapshot", &snap_b).unwrap();
    snap.verify("snapshot", keys, &role("snapshot").keyids, 1, 1, false)
        .unwrap();
    let t_b = named(c, &url, &snap.signed.meta, "snapshot", "targets").await;
    let targets = Signed::<Targets>::from_bytes("targets", &t_b).unwrap();
    targets
        .verify("targets", keys, &role("targets").keyids, 1, 1, false)
        .unwrap();
    // The current targets is at least the newest acknowledged one, and no version below is
    // missing, nor below the current snapshot and timestamp.
    let newest = w.acked.keys().last().copied().unwrap_or(1);
    assert!(
        targets.signed.version >= newest,
        "{}",
        at("current targets older than acknowledged")
    );
    let tops = [
        ("targets", targets.signed.version),
        ("snapshot", snap.signed.version),
        ("timestamp", ts.signed.version),
    ];
    for (i, (r, top)) in tops.into_iter().enumerate() {
        let below = if full { 0 } else { w.checked.1[i] };
        for v in below + 1..=top {
            assert!(
                get(c, &format!("{url}{v}.{r}.json")).await.is_some(),
                "{}",
                at(&format!("{r} v{v} missing below v{top}"))
            );
        }
    }
    w.checked = (newest, tops.map(|(_, v)| v));
    // Every tag of every acknowledged version has its bridge job.
    let status: serde_json::Value = serde_json::from_slice(
        &get(c, &format!("{base}/_trustbridge/v1/status?gun={}", w.gun))
            .await
            .expect("bridge status"),
    )
    .unwrap();
    let jobs: BTreeSet<String> = status["targets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["tag"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let missing: Vec<_> = w.acked_tags.difference(&jobs).collect();
    assert!(
        missing.is_empty(),
        "{}",
        at(&format!("tags without a bridge job: {missing:?}"))
    );
}

/// Updates answered 200, and refused, across all writers; whether refusals are allowed.
#[derive(Default)]
struct Counters {
    acks: AtomicUsize,
    refusals: AtomicUsize,
    tolerate: bool,
}

/// What goes wrong in each round of a storm.
enum Fault {
    /// SIGKILL the server, then start it again.
    KillServer,
    /// SIGKILL the signer for a while: updates are refused, then succeed again.
    KillSigner,
    /// Crash-stop the server's PostgreSQL (`pg_ctl stop -m immediate`) and start it again,
    /// the server running on.
    RestartPostgres(trustbridge_e2e::pg::PrivatePg),
}

fn crash_storm(dir: &Path, storage: &str, fault: Fault) {
    init();
    let registry = Registry::start(&dir.join("registry"));
    let (digest, size) = registry.push_sample("crash/app:v1");
    let digest = hex::decode(&digest).unwrap();
    let mut st = start_stack(dir, registry.port, "");
    let storage = match &fault {
        Fault::RestartPostgres(pg) => pg.storage(),
        _ => storage.to_string(),
    };
    if !storage.is_empty() {
        // Restart on the asked-for storage (the stack starts on SQLite).
        st.server.stop();
        let text = std::fs::read_to_string(&st.config).unwrap();
        let mut cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
        cfg["storage"] = serde_json::from_str(&storage).unwrap();
        std::fs::write(&st.config, cfg.to_string()).unwrap();
        st.start_server_again();
    }
    let signer_port: u16 = {
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&st.config).unwrap()).unwrap();
        cfg["trust_service"]["port"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let mut writers: Vec<Writer> = (0..WRITERS)
        .map(|i| {
            let gun = format!("example.com/crash/w{i}");
            let targets_key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
            let root_key = PrivateKey::generate(KeyType::Ecdsa).unwrap();
            let cert = x509::generate_root_certificate(&gun, &root_key, 10).unwrap();
            let root = Root::initial([
                ("root", cert.clone()),
                ("targets", targets_key.public_key().clone()),
                ("snapshot", server_key(&st, &gun, "snapshot")),
                ("timestamp", server_key(&st, &gun, "timestamp")),
            ]);
            let root = Signed::sign_with_ids(root, vec![(cert.id(), &root_key)]).unwrap();
            let t1 = targets_file(&targets_key, 1, &digest, size as i64);
            let (code, body) = trustbridge_e2e::bridge::post(
                &st,
                &gun,
                &[("root", root.raw().to_vec()), ("targets", t1.clone())],
            );
            assert_eq!(code, 200, "{body}");
            Writer {
                gun,
                targets_key,
                acked: [(1, sha(&t1))].into(),
                acked_tags: ["t1".to_string()].into(),
                checked: (0, [0; 3]),
            }
        })
        .collect();
    // The writers run on worker threads while this thread strikes the fault.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut seed = u64::from_le_bytes(
        ring::digest::digest(&ring::digest::SHA256, dir.to_string_lossy().as_bytes()).as_ref()[..8]
            .try_into()
            .unwrap(),
    );
    let counters = Arc::new(Counters {
        tolerate: !matches!(fault, Fault::KillServer),
        ..Default::default()
    });
    // Rounds in which some update was acknowledged before the fault struck: a fault that only
    // ever hits an idle server proves nothing.
    let mut busy_rounds = 0;
    for round in 0..KILLS {
        let acks_at_start = counters.acks.load(Ordering::SeqCst);
        let stop = Arc::new(AtomicBool::new(false));
        let c = client(&st);
        let handles: Vec<_> = writers
            .drain(..)
            .map(|mut w| {
                let (c, base, stop, d, t) = (
                    c.clone(),
                    st.url.clone(),
                    stop.clone(),
                    digest.clone(),
                    counters.clone(),
                );
                rt.spawn(async move {
                    storm(c, base, &mut w, d, size as i64, stop, t).await;
                    w
                })
            })
            .collect();
        // The fault strikes at a random moment 200–1000 ms into the storm.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(200 + (seed >> 33) % 800));
        if counters.acks.load(Ordering::SeqCst) > acks_at_start {
            busy_rounds += 1;
        }
        match &fault {
            Fault::KillServer => st.server.stop(),
            Fault::KillSigner => {
                st.signer.stop();
                std::thread::sleep(Duration::from_millis(800));
                st.signer = trustbridge_e2e::signer::start_ours(
                    "trustbridge-signer",
                    &dir.join("signer.json"),
                    &dir.join("certs"),
                    signer_port,
                );
            }
            Fault::RestartPostgres(pg) => {
                pg.crash();
                std::thread::sleep(Duration::from_millis(300));
                pg.start();
            }
        }
        if !matches!(fault, Fault::KillServer) {
            // The part is back: writes succeed again while the storm runs on.
            let before = counters.acks.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1500));
            let after = counters.acks.load(Ordering::SeqCst);
            assert!(
                after > before,
                "round {round}: no update succeeded after the fault was repaired"
            );
        }
        stop.store(true, Ordering::SeqCst);
        writers = rt.block_on(async {
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.unwrap());
            }
            out
        });
        if matches!(fault, Fault::KillServer) {
            st.start_server_again();
        }
        rt.block_on(async {
            for w in &mut writers {
                check(&c, &st.url, w, round, round + 1 == KILLS).await;
            }
        });
    }
    let total: usize = writers.iter().map(|w| w.acked.len()).sum();
    assert!(
        busy_rounds >= KILLS / 2,
        "the fault struck a busy server in only {busy_rounds} of {KILLS} rounds ({total} versions)"
    );
    let refused = counters.refusals.load(Ordering::SeqCst);
    if counters.tolerate {
        assert!(refused > 0, "the fault never reached a writer");
    }
    eprintln!("{total} acknowledged versions, {refused} refused, across {KILLS} faults");
}

#[test]
fn acknowledged_updates_survive_sigkill_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    crash_storm(tmp.path(), "", Fault::KillServer);
}

#[test]
fn acknowledged_updates_survive_sigkill_on_postgres() {
    let tmp = tempfile::tempdir().unwrap();
    let db = trustbridge_e2e::pg::PgDb::new("crash");
    crash_storm(tmp.path(), &db.storage(), Fault::KillServer);
}

/// The signer killed mid-storm: updates are refused in notary's envelope, nothing partial is
/// stored, and publishing works again once it is back.
#[test]
fn updates_recover_when_the_signer_returns() {
    let tmp = tempfile::tempdir().unwrap();
    crash_storm(tmp.path(), "", Fault::KillSigner);
}

/// The server's PostgreSQL crash-stopped and started again mid-storm: the server rides
/// through, nothing acknowledged is lost, and publishing works again.
#[test]
fn updates_recover_when_postgres_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    crash_storm(
        tmp.path(),
        "",
        Fault::RestartPostgres(trustbridge_e2e::pg::PrivatePg::start_new()),
    );
}
