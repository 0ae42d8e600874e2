//! The migration control room against real peers: repositories published with the real
//! notary 0.7 client in every Cosign state (verified in the registry, drifted, failing with
//! the registry down, not configured, a hostile tag name), DCT reads by the real docker CLI 28
//! and notary client attributed by client and version, brownout windows and the read-only
//! switch as legacy clients see them, and the status page rendered by real headless Chromium
//! (numbers equal to the JSON API, search, paging, escaping; screenshots kept as artefacts).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use time::OffsetDateTime;
use trustbridge_e2e::bridge::{Registry, Stack, sign_tag, start_bridge_with};
use trustbridge_e2e::server::{CLIENT_PASS, notary_cmd, trustbridge_cmd};
use trustbridge_e2e::{free_port, https_get, init, require_bin, wait_gun};

const HOST: &str = "notary-server";

fn get(st: &Stack, path: &str) -> Value {
    let (code, body) = https_get(&format!("{}{path}", st.url), &st.ca);
    assert_eq!(code, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn q(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn tag_state(doc: &Value, tag: &str) -> String {
    doc["tags"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["tag"] == tag))
        .map(|t| t["cosign"]["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// The real notary client; (success, what it printed).
fn notary_try(st: &Stack, trust: &Path, args: &[&str]) -> (bool, String) {
    let out = notary_cmd(&st.url, &st.ca, trust, args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// docker CLI 28 (no daemon) with its own config, reaching the server as `notary-server`.
fn docker(st: &Stack, cfg: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(require_bin("docker"))
        .args(args)
        .env("DOCKER_CONFIG", cfg)
        .env(
            "DOCKER_CONTENT_TRUST_SERVER",
            format!("https://{HOST}:{}", st.port),
        )
        .env("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", CLIENT_PASS)
        .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", CLIENT_PASS)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Where screenshots go (kept after the test).
fn artefacts() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("control-room");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Real headless Chromium: the page's DOM after rendering, and a screenshot.
fn chromium(url: &str, profile: &Path, shot: &str) -> String {
    let bin = require_bin("chromium");
    let common = |c: &mut Command| {
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--ignore-certificate-errors",
            "--window-size=1400,1800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    };
    let mut c = Command::new(&bin);
    common(&mut c);
    let out = c.arg("--dump-dom").arg(url).output().unwrap();
    assert!(
        out.status.success(),
        "chromium {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = Command::new(&bin);
    common(&mut c);
    let png = artefacts().join(shot);
    let shot_out = c
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        shot_out.status.success() && png.is_file(),
        "chromium screenshot {url}: {}",
        String::from_utf8_lossy(&shot_out.stderr)
    );
    eprintln!("screenshot: {}", png.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of the element after `marker` up to the next `<`.
fn text_after<'a>(dom: &'a str, marker: &str) -> &'a str {
    let at = dom
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in page"))
        + marker.len();
    let rest = &dom[at..];
    &rest[..rest.find('<').unwrap_or(rest.len())]
}

#[test]
fn control_room_shows_every_state_attributes_reads_and_switches_dct_off() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start(&tmp.path().join("registry"));
    let r = format!("127.0.0.1:{}", reg.port);
    let down = format!("127.0.0.1:{}", free_port());
    let now = OffsetDateTime::now_utc();
    let rfc = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let hour = time::Duration::hours(1);
    let st = start_bridge_with(
        tmp.path(),
        &format!(
            r#","registries":{{"{r}":{{"plain_http":true}},"{down}":{{"plain_http":true}}}},"reconcile_seconds":2,"max_backoff_seconds":1,"max_attempts":0"#
        ),
        &format!(
            r#","migration":{{"horizon_days":1100,"usage_flush_seconds":1,"watchdog_seconds":2,
                "brownouts":[
                  {{"prefix":"{r}/brown/","start":"{}","end":"{}","message":"brown is moving to Sigstore: verify with cosign"}},
                  {{"prefix":"{r}/brown503/","start":"{}","end":"{}","status":503,"message":"brown503 is moving to Sigstore"}},
                  {{"prefix":"{r}/past/","start":"{}","end":"{}"}}],
                "read_only":["{r}/team/moved"]}}"#,
            rfc(now - hour),
            rfc(now + hour),
            rfc(now - hour),
            rfc(now + hour),
            rfc(now - hour - hour),
            rfc(now - hour)
        ),
    );
    let trust = tmp.path().join("trust");

    // Verified in the registry: a pushed image, signed with notary.
    let mirrored = format!("{r}/team/mirrored");
    let (digest, size) = reg.push_sample("team/mirrored:v1");
    sign_tag(&st, &trust, &mirrored, "v1", size, &digest);
    // Drift: DCT trusts a digest the registry's tag does not point at.
    let drift = format!("{r}/team/drift");
    reg.push_sample("team/drift:v1");
    sign_tag(&st, &trust, &drift, "v1", 100, &"ab".repeat(32));
    // Failing: its registry is allowed but not running.
    let pending = format!("{down}/team/pending");
    sign_tag(&st, &trust, &pending, "v1", size, &digest);
    // Not configured (counted dead), and read by docker below.
    let read = "registry.example:5000/team/read".to_string();
    sign_tag(&st, &trust, &read, "v1", size, &digest);
    // A hostile tag name, shown as text.
    let hostile = format!("{r}/team/hostile");
    let evil = "<script>alert(1)</script>";
    sign_tag(&st, &trust, &hostile, evil, size, &digest);
    // A repository behind a brownout that is over.
    let past = format!("{r}/past/app");
    sign_tag(&st, &trust, &past, "v1", size, &digest);

    let doc = wait_gun(&st, &mirrored, "verified", |d| {
        tag_state(d, "v1") == "verified" && d["summary"]["ready"] == true
    });
    assert_eq!(doc["summary"]["ready"], true, "{doc}");
    assert_eq!(doc["tags"][0]["digest"], format!("sha256:{digest}"));
    assert!(
        doc["tags"][0]["signers"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );
    let d = wait_gun(&st, &drift, "drifted", |d| {
        tag_state(d, "v1") == "drift" && d["summary"]["drift"] == 1
    });
    assert_eq!(d["summary"]["ready"], false);
    assert_eq!(d["summary"]["drift"], 1);
    let p = wait_gun(&st, &pending, "failing", |d| {
        tag_state(d, "v1") == "failed" && d["summary"]["queued"] == 1
    });
    assert!(
        p["tags"][0]["cosign"]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{p}"
    );
    assert_eq!(p["summary"]["queued"], 1);
    let n = wait_gun(&st, &read, "not configured", |d| {
        tag_state(d, "v1") == "not-configured" && d["summary"]["dead"] == 1
    });
    assert_eq!(n["summary"]["dead"], 1);
    // The watchdog's horizon (1100 days) takes in notary's 3-year targets, not its 10-year root.
    let roles: Vec<&str> = doc["roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["soon"] == true)
        .map(|r| r["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["targets"], "{doc}");
    assert!(
        doc["roles"][0]["renew"]
            .as_str()
            .unwrap()
            .contains("notary")
    );

    // DCT reads: the real docker CLI and the notary client, attributed by kind and version.
    let cfg = tmp.path().join("docker");
    let tls = cfg.join("tls").join(format!("{HOST}:{}", st.port));
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(&st.ca, tls.join("ca.crt")).unwrap();
    let (ok, out) = docker(&st, &cfg, &["trust", "inspect", &read]);
    assert!(ok && out.contains(&digest), "docker trust inspect: {out}");
    let (ok, out) = notary_try(&st, &tmp.path().join("fresh"), &["list", &mirrored]);
    assert!(ok && out.contains(&digest), "notary list: {out}");
    let u = wait_gun(&st, &read, "read by docker", |d| {
        d["usage"].as_array().is_some_and(|u| {
            u.iter().any(|r| {
                r["client"] == "docker"
                    && r["version"].as_str().is_some_and(|v| v.starts_with("28."))
            })
        })
    });
    assert!(u["summary"]["last_read"].is_string(), "{u}");
    // Everything the registry can take is verified before the numbers are compared.
    for g in [&hostile, &past] {
        wait_gun(&st, g, "verified", |d| d["summary"]["ready"] == true);
    }
    wait_gun(&st, &mirrored, "read by notary", |d| {
        d["usage"].as_array().is_some_and(|u| {
            u.iter()
                .any(|r| r["client"] == "go" && r["reads"].as_i64() > Some(0))
        })
    });
    let usage = get(
        &st,
        &format!("/_trustbridge/v1/migration/usage?prefix={}", q(&read)),
    );
    assert!(
        usage["usage"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["gun"] == read.as_str())
    );
    let (_, metrics) = https_get(&format!("{}/metrics", st.url), &st.ca);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(r#"trustbridge_dct_reads_total{client="docker",major="28"}"#)
            && metrics.contains(r#"trustbridge_dct_reads_total{client="go",major="1"}"#)
            && !metrics.contains("team/read"),
        "{metrics}"
    );

    // Brownout: legacy clients fail with our message during the window (notary prints a 400's
    // validation detail; on a 503 only the status), and work once it is over.
    let fresh = tmp.path().join("fresh");
    let brown = format!("{r}/brown/app");
    let (ok, out) = notary_try(&st, &fresh, &["list", &brown]);
    assert!(
        !ok && out.contains("brown is moving to Sigstore: verify with cosign"),
        "notary list during a brownout: {out}"
    );
    let (ok, out) = docker(&st, &cfg, &["trust", "inspect", &brown]);
    assert!(
        !ok && out.contains("cannot access"),
        "docker trust inspect during a brownout: {out}"
    );
    let brown503 = format!("{r}/brown503/app");
    let (ok, out) = notary_try(&st, &fresh, &["list", &brown503]);
    assert!(
        !ok && out.contains("503"),
        "notary list during a 503 brownout: {out}"
    );
    let (code, body) = https_get(
        &format!("{}/v2/{brown503}/_trust/tuf/root.json", st.url),
        &st.ca,
    );
    assert_eq!(code, 503);
    assert!(String::from_utf8_lossy(&body).contains("brown503 is moving to Sigstore"));
    let (ok, out) = notary_try(&st, &tmp.path().join("fresh"), &["list", &past]);
    assert!(
        ok && out.contains("v1"),
        "notary list after its brownout: {out}"
    );

    // Read-only: DCT publishes are refused with a message naming the move.
    let moved = format!("{r}/team/moved");
    let (ok, out) = notary_try(&st, &trust, &["init", &moved, "-p"]);
    assert!(
        !ok && out.contains("moved to Cosign"),
        "publish to a read-only GUN: {out}"
    );

    // The per-GUN switch: DCT publishing to a GUN goes off and on again, by the CLI.
    let ro = format!("{r}/ro/app");
    sign_tag(&st, &trust, &ro, "v1", size, &digest);
    let switch = |args: &[&str]| {
        let out = trustbridge_cmd(&st.url, &st.ca, &trust, args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let size_s = size.to_string();
    let add_later = ["addhash", &ro, "later", &size_s, "--sha256", &digest];
    let (ok, out) = notary_try(&st, &trust, &add_later);
    assert!(ok, "{out}");
    let out = switch(&["migration", "read-only", &ro]);
    assert!(out.contains("switched off"), "{out}");
    let (ok, out) = notary_try(&st, &trust, &["publish", &ro]);
    assert!(
        !ok && out.contains("moved to Cosign"),
        "publish while read-only: {out}"
    );
    assert_eq!(
        get(
            &st,
            &format!("/_trustbridge/v1/migration/gun?gun={}", q(&ro))
        )["read_only"],
        true
    );
    let out = switch(&["migration", "read-only", &ro, "--off"]);
    assert!(out.contains("switched on again"), "{out}");
    let (ok, out) = notary_try(&st, &trust, &["publish", &ro]);
    assert!(ok, "publish after the switch is back on: {out}");
    wait_gun(&st, &ro, "verified both tags", |d| {
        d["summary"]["tags"] == 2 && d["summary"]["verified"] == 2
    });

    // The overview's numbers are the sums of every page; paging and prefix search.
    let ov = get(&st, "/_trustbridge/v1/migration");
    let t = &ov["totals"];
    let mut rows = Vec::new();
    let mut after = String::new();
    loop {
        let page = get(
            &st,
            &format!(
                "/_trustbridge/v1/migration/guns?limit=2&after={}",
                q(&after)
            ),
        );
        let got = page["guns"].as_array().unwrap();
        assert!(got.len() <= 2);
        rows.extend(got.iter().cloned());
        match page["next"].as_str() {
            Some(n) => after = n.to_string(),
            None => break,
        }
    }
    assert_eq!(rows.len() as i64, t["guns"].as_i64().unwrap(), "{ov}");
    for k in ["tags", "mirrored", "verified", "queued", "dead", "drift"] {
        let sum: i64 = rows.iter().map(|g| g[k].as_i64().unwrap()).sum();
        assert_eq!(sum, t[k].as_i64().unwrap(), "{k}: {ov}");
    }
    let ready = rows.iter().filter(|g| g["ready"] == true).count() as i64;
    assert_eq!(ready, t["ready_guns"].as_i64().unwrap());
    assert!(t["read_7d"].as_i64().unwrap() >= 2, "{ov}");
    assert!(t["expiring_roles"].as_i64().unwrap() >= 6, "{ov}");
    let team = get(
        &st,
        &format!(
            "/_trustbridge/v1/migration/guns?prefix={}",
            q(&format!("{r}/team/"))
        ),
    );
    let names: Vec<&str> = team["guns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["gun"].as_str().unwrap())
        .collect();
    assert_eq!(names, [drift.as_str(), hostile.as_str(), mirrored.as_str()]);
    let not_ready = get(&st, "/_trustbridge/v1/migration/guns?ready=false");
    assert!(
        not_ready["guns"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["ready"] == false)
    );

    // The CLI: status, usage, ready (exit 1 while any repository is not ready).
    let cli = |args: &[&str]| {
        let out = trustbridge_cmd(&st.url, &st.ca, &trust, args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = cli(&["migration", "status", "--prefix", &format!("{r}/team/")]);
    assert!(
        ok && out.contains("2 of 3 tag(s) verified in the registry, 3 mirrored, in 3 repositories"),
        "{out}"
    );
    let (ok, out) = cli(&["migration", "status", "--gun", &drift]);
    assert!(
        ok && out.contains("drift") && out.contains("not ready"),
        "{out}"
    );
    let (ok, out) = cli(&["migration", "usage", "--prefix", &read]);
    assert!(
        ok && out.contains("docker CLI") && out.contains("28."),
        "{out}"
    );
    let (ok, out) = cli(&["migration", "ready", "--gun", &mirrored]);
    assert!(ok && out.contains("ready: every tag"), "{out}");
    let (ok, out) = cli(&["migration", "ready", "--prefix", &format!("{r}/team/")]);
    assert!(
        !ok && out.contains("1 tag(s) drifted")
            && out.contains("1 of 3 repositories are not ready"),
        "{out}"
    );
    let out = trustbridge_cmd(
        &st.url,
        &st.ca,
        &trust,
        &["--json", "migration", "ready", "--gun", &read],
    )
    .output()
    .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(!out.status.success() && v["ready"] == false, "{v}");

    // The page in real Chromium: the same numbers, each state, search, paging, escaping.
    let profile = tmp.path().join("chromium");
    let page = format!("https://127.0.0.1:{}/_trustbridge/", st.port);
    let dom = chromium(&page, &profile, "overview.png");
    for k in [
        "guns",
        "tags",
        "mirrored",
        "verified",
        "queued",
        "dead",
        "drift",
        "ready_guns",
        "expiring_roles",
        "read_7d",
        "read_30d",
    ] {
        assert_eq!(
            text_after(&dom, &format!("id=\"total-{k}\">")),
            t[k].as_i64().unwrap().to_string(),
            "total {k}"
        );
    }
    for g in [&mirrored, &drift, &pending, &read, &hostile, &past] {
        assert!(dom.contains(&format!("data-gun=\"{g}\"")), "{g} not listed");
    }
    let dom = chromium(
        &format!("{page}?prefix={}", q(&format!("{r}/team/"))),
        &profile,
        "search.png",
    );
    assert!(
        dom.contains(&format!("data-gun=\"{mirrored}\""))
            && !dom.contains(&format!("data-gun=\"{read}\""))
    );
    let dom = chromium(&format!("{page}?limit=2"), &profile, "page1.png");
    let next = text_after(&dom, "id=\"next\" href=\"")
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert_eq!(dom.matches("data-gun=").count(), 2);
    let dom2 = chromium(&format!("{page}{next}&limit=2"), &profile, "page2.png");
    assert_eq!(dom2.matches("data-gun=").count(), 2);
    let first = text_after(&dom, "data-gun=\"").to_string();
    assert!(!dom2.contains(&format!("data-gun=\"{}", first.split('"').next().unwrap())));
    for (gun, state) in [
        (&mirrored, "verified"),
        (&drift, "drift"),
        (&pending, "failed"),
        (&read, "not-configured"),
    ] {
        let dom = chromium(
            &format!("{page}gun?gun={}", q(gun)),
            &profile,
            &format!("{}.png", gun.rsplit('/').next().unwrap()),
        );
        assert!(
            dom.contains(&format!("class=\"st {state}\">{state}<")),
            "{gun} page does not show {state}"
        );
    }
    let dom = chromium(
        &format!("{page}gun?gun={}", q(&hostile)),
        &profile,
        "hostile.png",
    );
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !dom.contains("<script"),
        "the hostile tag is not shown as text"
    );
    let dom = chromium(
        &format!("{page}gun?gun={}", q(&read)),
        &profile,
        "usage.png",
    );
    assert!(
        dom.contains("data-client=\"docker\""),
        "docker reads not shown"
    );

    // A store written before the status tables (here: dropped while the server is down) is
    // adopted on the next start.
    let mut st = st;
    st.server.stop();
    let db = rusqlite::Connection::open(tmp.path().join("server.db")).unwrap();
    db.execute_batch(
        "DROP TABLE migration_guns; DROP TABLE trust_tags; DROP TABLE trust_roles; DROP TABLE migration_totals;",
    )
    .unwrap();
    drop(db);
    st.start_server_again();
    let again = wait_gun(&st, &mirrored, "adopted", |d| {
        tag_state(d, "v1") == "verified" && d["summary"]["ready"] == true
    });
    assert_eq!(again["tags"][0]["digest"], format!("sha256:{digest}"));
    let ov = get(&st, "/_trustbridge/v1/migration");
    for k in [
        "guns",
        "tags",
        "mirrored",
        "verified",
        "drift",
        "ready_guns",
    ] {
        assert_eq!(ov["totals"][k], t[k], "{k} after adoption: {ov}");
    }
}
