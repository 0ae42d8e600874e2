//! `trustbridge migration status|usage|ready`: the server's migration control room
//! (`/_trustbridge/v1/migration/...`) as tables, or its JSON with `--json`.

use serde_json::Value;
use trustbridge_client::remote::Remote;
use trustbridge_client::{Error, Result};

use super::migrate::url_query;
use super::{Ctx, print_json};

fn get(ctx: &Ctx, remote: &Remote, path: &str) -> Result<Value> {
    let body = remote.get(path, 64 << 20)?.ok_or_else(|| {
        Error::Usage(format!(
            "{} has no such migration data ({path}): is it a trustbridge server, and the GUN stored there?",
            ctx.server
        ))
    })?;
    serde_json::from_slice(&body).map_err(|e| Error::Usage(format!("{path}: {e}")))
}

/// One GUN, tag by tag (`/_trustbridge/v1/migration/gun`).
fn gun_doc(ctx: &Ctx, remote: &Remote, gun: &str) -> Result<Value> {
    get(
        ctx,
        remote,
        &format!("/_trustbridge/v1/migration/gun?{}", url_query("gun", gun)),
    )
}

/// Every GUN summary under `prefix` (walking the pages), optionally only ready / not ready.
fn all_guns(ctx: &Ctx, remote: &Remote, prefix: &str, ready: Option<bool>) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut after = String::new();
    let ready = ready.map_or(String::new(), |r| format!("&ready={r}"));
    loop {
        let page = get(
            ctx,
            remote,
            &format!(
                "/_trustbridge/v1/migration/guns?limit=500&{}&{}{ready}",
                url_query("prefix", prefix),
                url_query("after", &after)
            ),
        )?;
        out.extend(page["guns"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(n) => after = n.to_string(),
            None => return Ok(out),
        }
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

/// `migration status [--prefix P]` (overview and one row per GUN) or `--gun G` (tag by tag).
pub(super) fn status(ctx: &Ctx, gun: Option<&str>, prefix: &str) -> Result<()> {
    let remote = ctx.remote()?;
    if let Some(gun) = gun {
        let d = gun_doc(ctx, &remote, gun)?;
        if ctx.json {
            print_json(&d);
            return Ok(());
        }
        println!(
            "{:<24}{:<20}{:<20}{:<16}{:<32}LAST ERROR",
            "TAG", "DIGEST", "ROLE", "COSIGN", "EXPIRES"
        );
        for t in d["tags"].as_array().cloned().unwrap_or_default() {
            let c = &t["cosign"];
            let digest = s(&t, "digest");
            let err = [s(c, "check_error"), s(c, "last_error")]
                .into_iter()
                .find(|e| !e.is_empty())
                .unwrap_or("");
            println!(
                "{:<24}{:<20}{:<20}{:<16}{:<32}{err}",
                s(&t, "tag"),
                &digest[..digest.len().min(19)],
                s(&t, "role"),
                s(c, "state"),
                s(&t, "expires"),
            );
        }
        let sm = &d["summary"];
        println!(
            "\n{gun}: {} of {} tag(s) verified in the registry, {} mirrored, {} drifted; {}",
            sm["verified"],
            sm["tags"],
            sm["mirrored"],
            sm["drift"],
            if sm["ready"] == true {
                "ready to switch off DCT"
            } else {
                "not ready to switch off DCT"
            }
        );
        return Ok(());
    }
    let ov = get(ctx, &remote, "/_trustbridge/v1/migration")?;
    let guns = all_guns(ctx, &remote, prefix, None)?;
    if ctx.json {
        print_json(&serde_json::json!({"overview": ov, "guns": guns}));
        return Ok(());
    }
    println!(
        "{:<48}{:>6}{:>10}{:>10}{:>8}{:>6}{:>7}  {:<12}READY",
        "GUN", "TAGS", "MIRRORED", "VERIFIED", "QUEUED", "DEAD", "DRIFT", "LAST READ"
    );
    let (mut tags, mut mirrored, mut verified) = (0, 0, 0);
    for g in &guns {
        let n = |k: &str| g[k].as_i64().unwrap_or(0);
        tags += n("tags");
        mirrored += n("mirrored");
        verified += n("verified");
        println!(
            "{:<48}{:>6}{:>10}{:>10}{:>8}{:>6}{:>7}  {:<12}{}",
            s(g, "gun"),
            n("tags"),
            n("mirrored"),
            n("verified"),
            n("queued"),
            n("dead"),
            n("drift"),
            g["last_read"].as_str().unwrap_or("never"),
            if g["ready"] == true { "yes" } else { "no" }
        );
    }
    let t = &ov["totals"];
    println!(
        "\n{verified} of {tags} tag(s) verified in the registry, {mirrored} mirrored, in {} repositories{}",
        guns.len(),
        if prefix.is_empty() {
            String::new()
        } else {
            format!(" under {prefix}")
        }
    );
    println!(
        "server-wide: {} of {} repositories ready to switch off DCT; {} read through DCT in 7 days; {} role(s) expired, {} expiring within {} days",
        t["ready_guns"],
        t["guns"],
        t["read_7d"],
        t["expired_roles"],
        t["expiring_roles"],
        ov["horizon_days"]
    );
    Ok(())
}

/// `migration usage [--prefix P] [--days N]`: DCT reads by GUN, day and client.
pub(super) fn usage(ctx: &Ctx, prefix: &str, days: u32) -> Result<()> {
    let remote = ctx.remote()?;
    let v = get(
        ctx,
        &remote,
        &format!(
            "/_trustbridge/v1/migration/usage?{}&days={days}&limit=10000",
            url_query("prefix", prefix)
        ),
    )?;
    if ctx.json {
        print_json(&v);
        return Ok(());
    }
    println!(
        "{:<12}{:<48}{:<34}{:<16}{:>8}  LAST SEEN",
        "DAY", "GUN", "CLIENT", "VERSION", "READS"
    );
    for u in v["usage"].as_array().cloned().unwrap_or_default() {
        println!(
            "{:<12}{:<48}{:<34}{:<16}{:>8}  {}",
            s(&u, "day"),
            s(&u, "gun"),
            s(&u, "client_name"),
            s(&u, "version"),
            u["reads"],
            s(&u, "last_seen")
        );
    }
    Ok(())
}

/// `migration ready [--gun G | --prefix P]`: whether DCT can be switched off — every trusted
/// tag verified in the registry and none drifted. Exits non-zero when any is not ready.
pub(super) fn ready(ctx: &Ctx, gun: Option<&str>, prefix: &str) -> Result<()> {
    let remote = ctx.remote()?;
    let guns = match gun {
        Some(g) => {
            vec![gun_doc(ctx, &remote, g)?["summary"].clone()]
        }
        None => all_guns(ctx, &remote, prefix, None)?,
    };
    let not_ready: Vec<&Value> = guns.iter().filter(|g| g["ready"] != true).collect();
    if ctx.json {
        print_json(&serde_json::json!({"ready": not_ready.is_empty(), "guns": guns}));
    } else {
        for g in &guns {
            let why = if g["ready"] == true {
                "ready: every tag DCT trusts is verified in the registry".to_string()
            } else if g["drift"].as_i64() > Some(0) {
                format!(
                    "not ready: {} tag(s) drifted (the registry's tag points elsewhere)",
                    g["drift"]
                )
            } else {
                format!(
                    "not ready: {} of {} tag(s) verified ({} queued, {} dead)",
                    g["verified"], g["tags"], g["queued"], g["dead"]
                )
            };
            println!("{:<48}{why}", s(g, "gun"));
        }
    }
    if not_ready.is_empty() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{} of {} repositories are not ready to switch off DCT (see `trustbridge migration status --gun GUN`)",
            not_ready.len(),
            guns.len()
        )))
    }
}

/// `migration read-only GUN [--off]`: refuse (or allow again) DCT publishes to GUN.
pub(super) fn read_only(ctx: &Ctx, gun: &str, on: bool) -> Result<()> {
    let remote = ctx.remote()?;
    let path = format!("/_trustbridge/v1/read-only/{gun}");
    let v = if on {
        remote.post_json(&path, &serde_json::json!({}))?
    } else {
        remote.delete_json(&path)?
    };
    if ctx.json {
        print_json(&v);
    } else if v["read_only"] == true && !on {
        println!(
            "{gun}: still read-only: the server's config lists it (trustbridge.migration.read_only)"
        );
    } else if v["read_only"] == true {
        println!(
            "{gun}: DCT publishing is switched off; DCT reads go on (see brownouts to switch those off)"
        );
    } else {
        println!("{gun}: DCT publishing is switched on again");
    }
    Ok(())
}
