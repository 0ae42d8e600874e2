//! A seeded, randomized differential test of the bridge's rule: after every step, the
//! (tag → digest) set a fresh DCT client resolves (the real notary client, docker's order:
//! `targets/releases` first, then the rest) equals the set the Cosign side accepts (every layer
//! in the registry that verifies with the bridge key, for the digest it claims), per GUN.
//!
//! Steps (at least 200, over 3 GUNs, `TRUSTBRIDGE_DIFF_STEPS` / `TRUSTBRIDGE_DIFF_SEED` to
//! change): tag add, move and remove in `targets` and in `targets/releases`, delegation add and
//! remove, a delegation's key replaced (its file then verifies for nobody until re-signed),
//! witness, key rotations (targets, snapshot to the server), GUN delete and re-create. Every
//! 25 steps the real `cosign` (3.1.1) is asked about every image too. The seed is printed; a
//! failure names the step and what was done.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use trustbridge_e2e::bridge::{Registry, Stack, cosign_verify, start_stack};
use trustbridge_e2e::server::{delegation_cert, notary, notary_cmd, notary_with_input};
use trustbridge_e2e::{https_get, init};

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const TAGS: [&str; 4] = ["a", "b", "c", "d"];

struct Gun {
    name: String,
    repo: String,
    images: Vec<(String, u64)>,
    exists: bool,
    releases: bool,
    /// Whether the releases file verifies (false after its key was replaced, until signed
    /// again by witness).
    releases_valid: bool,
    /// Tags in `targets` and in `targets/releases`, as this owner published them (a remove
    /// of a tag that is not there would publish nothing).
    in_targets: BTreeSet<String>,
    in_releases: BTreeSet<String>,
    /// Whether a releases file was published (witness needs one).
    releases_published: bool,
    /// The releases delegation was removed: its stored versions stay, so a new releases v1
    /// would be refused as an old version (notary-server's rule too) until the GUN is deleted.
    releases_retired: bool,
    /// The delegation certificates made so far (the newest is the delegation's key).
    certs: usize,
}

/// (tag, digest) pairs.
type Pairs = BTreeSet<(String, String)>;

/// `notary list` of a fresh client (no trust directory): tag → (digest, role). Empty when
/// the repository does not exist.
fn list(st: &Stack, dir: &Path, gun: &str, role: Option<&str>) -> BTreeMap<String, String> {
    let fresh = tempfile::tempdir_in(dir).unwrap();
    let mut args = vec!["list", gun];
    if let Some(r) = role {
        args.extend(["--roles", r]);
    }
    let out = notary_cmd(&st.url, &st.ca, fresh.path(), &args)
        .output()
        .unwrap();
    if !out.status.success() {
        return BTreeMap::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| (f[0].to_string(), f[1].to_string()))
        })
        .collect()
}

/// What docker resolves: `targets/releases` first, then the tree from `targets`.
fn dct(st: &Stack, dir: &Path, g: &Gun) -> Pairs {
    if !g.exists {
        return Pairs::new();
    }
    let mut out: BTreeMap<String, String> = list(st, dir, &g.name, None);
    out.extend(list(st, dir, &g.name, Some("targets/releases")));
    out.into_iter().collect()
}

/// Every layer in the registry for `g`'s images that verifies with the bridge key, for the
/// digest it claims: (the payload's notary target, digest).
fn cosign_side(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    port: u16,
    g: &Gun,
    key: &trustbridge_tuf::PublicKey,
) -> Pairs {
    rt.block_on(async {
        let mut out = Pairs::new();
        for (digest, _) in &g.images {
            let base = format!("http://127.0.0.1:{port}/v2/{}", g.repo);
            let r = http
                .get(format!("{base}/manifests/sha256-{digest}.sig"))
                .header("Accept", "application/vnd.oci.image.manifest.v1+json")
                .send()
                .await
                .unwrap();
            if r.status() == 404 {
                continue;
            }
            let m: serde_json::Value = r.json().await.unwrap();
            for l in m["layers"].as_array().cloned().unwrap_or_default() {
                let payload = http
                    .get(format!("{base}/blobs/{}", l["digest"].as_str().unwrap()))
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                let sig = base64::engine::general_purpose::STANDARD
                    .decode(
                        l["annotations"]["dev.cosignproject.cosign/signature"]
                            .as_str()
                            .unwrap_or_default(),
                    )
                    .unwrap_or_default();
                let p: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                let claimed = p["critical"]["image"]["docker-manifest-digest"]
                    .as_str()
                    .unwrap_or_default();
                if key.verify_der(&payload, &sig).is_ok() && claimed == format!("sha256:{digest}") {
                    let tag = p["optional"]["dev.trustbridge/notary-target"]
                        .as_str()
                        .unwrap_or_default();
                    out.insert((tag.to_string(), digest.clone()));
                }
            }
        }
        out
    })
}

#[test]
fn cosign_and_dct_agree_after_every_step() {
    init();
    let steps: usize = std::env::var("TRUSTBRIDGE_DIFF_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("TRUSTBRIDGE_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("differential test: TRUSTBRIDGE_DIFF_SEED={seed} TRUSTBRIDGE_DIFF_STEPS={steps}");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start(&dir.join("registry"));
    let st = start_stack(dir, registry.port, "");
    let key_file = st.cosign_pub(dir);
    let key = trustbridge_tuf::PublicKey::new(
        trustbridge_tuf::KeyType::Ecdsa,
        pem::parse(std::fs::read(&key_file).unwrap())
            .unwrap()
            .into_contents(),
    );
    let rt = trustbridge_e2e::signer::rt();
    let http = reqwest::Client::new();
    let mut guns: Vec<Gun> = (0..3)
        .map(|i| {
            let repo = format!("diff/g{i}");
            let images = (0..3)
                .map(|k| registry.push_sample(&format!("{repo}:img{k}")))
                .collect();
            Gun {
                name: format!("127.0.0.1:{}/{repo}", registry.port),
                repo,
                images,
                exists: false,
                releases: false,
                releases_valid: false,
                in_targets: BTreeSet::new(),
                in_releases: BTreeSet::new(),
                releases_published: false,
                releases_retired: false,
                certs: 0,
            }
        })
        .collect();
    let trust = dir.join("owner");
    let mut log: Vec<String> = Vec::new();

    for step in 1..=steps {
        let gi = rng.below(guns.len());
        let g = &mut guns[gi];
        let gun = g.name.clone();
        let n = |args: &[&str]| {
            println!("step {step}: notary {}", args.join(" "));
            notary(&st.url, &st.ca, &trust, args)
        };
        // A new signer for targets/releases: its key imported, its certificate delegated to.
        let add_signer = |g: &mut Gun| {
            g.certs += 1;
            let (k, c) = delegation_cert(dir, &format!("g{gi}-signer{}", g.certs));
            let (k, c) = (k.to_str().unwrap(), c.to_str().unwrap());
            n(&["key", "import", k, "--role", "targets/releases"]);
            n(&[
                "delegation",
                "add",
                &gun,
                "targets/releases",
                c,
                "--all-paths",
            ]);
        };
        let (digest, size) = g.images[rng.below(g.images.len())].clone();
        let size = size.to_string();
        let tag = TAGS[rng.below(TAGS.len())];
        let op = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if !g.exists {
                n(&["init", &gun, "-p"]);
                g.exists = true;
                g.releases = false;
                g.releases_retired = false;
                g.in_targets.clear();
                g.in_releases.clear();
                "init".to_string()
            } else {
                match rng.below(100) {
                    30..=41 if g.in_targets.contains(tag) => {
                        n(&["remove", &gun, tag]);
                        n(&["publish", &gun]);
                        g.in_targets.remove(tag);
                        format!("targets: remove {tag}")
                    }
                    42..=59 if g.releases && g.releases_valid => {
                        let r = "targets/releases";
                        n(&[
                            "addhash", &gun, tag, &size, "--sha256", &digest, "--roles", r,
                        ]);
                        n(&["publish", &gun]);
                        g.in_releases.insert(tag.to_string());
                        g.releases_published = true;
                        format!("releases: {tag} -> {}", &digest[..12])
                    }
                    60..=65 if g.releases_valid && g.in_releases.contains(tag) => {
                        n(&["remove", &gun, tag, "--roles", "targets/releases"]);
                        n(&["publish", &gun]);
                        g.in_releases.remove(tag);
                        format!("releases: remove {tag}")
                    }
                    66..=73 if !g.releases && !g.releases_retired => {
                        add_signer(g);
                        n(&["publish", &gun]);
                        g.releases = true;
                        g.releases_valid = true;
                        g.releases_published = false;
                        g.in_releases.clear();
                        "delegation add targets/releases".to_string()
                    }
                    66..=73 if g.releases => {
                        // The delegation's key is replaced; its file verifies for nobody until it
                        // is signed again (witness).
                        let listed = n(&["delegation", "list", &gun]);
                        let old: Vec<String> = listed
                            .split_whitespace()
                            .filter(|w| w.len() == 64 && w.chars().all(|c| c.is_ascii_hexdigit()))
                            .map(str::to_string)
                            .collect();
                        add_signer(g);
                        let mut args =
                            vec!["delegation", "remove", gun.as_str(), "targets/releases"];
                        args.extend(old.iter().map(String::as_str));
                        notary_with_input(&st.url, &st.ca, &trust, &args, "y\n");
                        n(&["publish", &gun]);
                        g.releases_valid = false;
                        format!("delegation key replaced (old {old:?})")
                    }
                    74..=78 if g.releases => {
                        let args = ["delegation", "remove", &gun, "targets/releases"];
                        notary_with_input(&st.url, &st.ca, &trust, &args, "yes\n");
                        n(&["publish", &gun]);
                        g.releases = false;
                        g.releases_retired = true;
                        g.in_releases.clear();
                        "delegation remove targets/releases".to_string()
                    }
                    79..=84 if g.releases && g.releases_published => {
                        n(&["witness", &gun, "targets/releases"]);
                        n(&["publish", &gun]);
                        g.releases_valid = true;
                        "witness targets/releases".to_string()
                    }
                    85..=89 => {
                        n(&["key", "rotate", &gun, "targets"]);
                        "key rotate targets".to_string()
                    }
                    90..=92 => {
                        n(&["key", "rotate", &gun, "snapshot", "-r"]);
                        "key rotate snapshot -r".to_string()
                    }
                    93..=96 => {
                        n(&["delete", &gun, "--remote"]);
                        g.exists = false;
                        g.releases = false;
                        "delete --remote".to_string()
                    }
                    _ => {
                        n(&["addhash", &gun, tag, &size, "--sha256", &digest]);
                        n(&["publish", &gun]);
                        g.in_targets.insert(tag.to_string());
                        format!("targets: {tag} -> {}", &digest[..12])
                    }
                }
            }
        }));
        let what = match op {
            Ok(w) => w,
            Err(e) => {
                let server = st.server.log();
                let tail: Vec<&str> = server.lines().rev().take(15).collect();
                eprintln!(
                    "seed {seed}, step {step} on {gun} failed; steps before:\n{}\nserver log (newest first):\n{}",
                    log.join("\n"),
                    tail.join("\n")
                );
                std::panic::resume_unwind(e)
            }
        };
        log.push(format!("step {step}: {gun}: {what}"));
        let g = &guns[gi];
        let want = dct(&st, dir, g);
        // Wait for the bridge to settle on DCT's answer.
        let start = Instant::now();
        loop {
            let have = cosign_side(&rt, &http, registry.port, g, &key);
            if have == want {
                break;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let (_, status) = https_get(
                    &format!("{}/_trustbridge/v1/status?gun={gun}", st.url),
                    &st.ca,
                );
                panic!(
                    "seed {seed}, {}: DCT trusts {want:?} but the Cosign side accepts {have:?}\nsteps so far:\n{}\nstatus: {}",
                    log.last().unwrap(),
                    log.join("\n"),
                    String::from_utf8_lossy(&status)
                );
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        // Every 25 steps the real cosign, on every image of every GUN.
        if step % 25 == 0 {
            for g in &guns {
                let trusted: BTreeSet<String> =
                    dct(&st, dir, g).into_iter().map(|(_, d)| d).collect();
                for (digest, _) in &g.images {
                    let image = format!("{}@sha256:{digest}", g.name);
                    assert_eq!(
                        cosign_verify("sid", &key_file, &image, &["--new-bundle-format=false"]).0,
                        trusted.contains(digest),
                        "seed {seed}, after step {step}: cosign on {image} (DCT trusts {trusted:?})\n{}",
                        log.join("\n")
                    );
                }
            }
        }
    }
    // What the run covered, by kind of step.
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for l in &log {
        let what = l.splitn(3, ": ").nth(2).unwrap_or_default();
        let kind = match what.split_once(':') {
            Some((k, _)) => k.to_string(),
            None => what.split([' ', '(']).take(2).collect::<Vec<_>>().join(" "),
        };
        *kinds.entry(kind).or_default() += 1;
    }
    println!("seed {seed}: {steps} steps agreed: {kinds:?}");
}
