//! The migration verbs: `import`, `verify-both` (`migration status|usage|ready` are in
//! [`super::control`]).

use std::path::Path;

use trustbridge_client::registry::RegistryReader;
use trustbridge_client::remote::Remote;
use trustbridge_client::{Error, Result, cosign, import};

use super::{Ctx, print_json};

/// Copy one GUN's verified history from `source` into `target`.
fn import_one(
    ctx: &Ctx,
    source: &Remote,
    target: &Remote,
    gun: &str,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<import::Report> {
    let cache = ctx.cache(gun);
    let (current, files) = import::collect(source, &cache, gun, &ctx.pin(gun)?, &|done, total| {
        if let Some(b) = bar {
            b.set_length(total);
            b.set_position(done);
        }
    })?;
    import::store(target, gun, &files)?;
    let sr = &current.root.signed.roles["snapshot"];
    let local_snapshot = sr
        .keyids
        .iter()
        .any(|id| ctx.keys().entry(id).ok().flatten().is_some());
    let mut versions = std::collections::BTreeMap::new();
    for (role, v, _) in &files {
        versions.insert(role.clone(), *v);
    }
    let (targets, _) = current.targets(&["targets"]);
    Ok(import::Report {
        gun: gun.to_string(),
        versions,
        files: files.len(),
        targets: targets.len(),
        server_snapshot: !local_snapshot,
        next_steps: import::next_steps(gun, target.server(), &current, local_snapshot),
    })
}

fn files_bar(gun: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} files")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(gun.to_string());
    bar
}

/// Which GUNs a batch import copies: every live GUN of the source's global changefeed
/// (needs `*` on the source; a GUN whose last change is a deletion is left out), or the
/// lines of a file.
pub(super) enum Batch<'a> {
    All,
    File(&'a Path),
}

fn batch_guns(source: &Remote, batch: &Batch<'_>) -> Result<Vec<String>> {
    match batch {
        Batch::File(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            Ok(text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect())
        }
        Batch::All => {
            let mut live = std::collections::BTreeMap::new();
            let mut after = 0i64;
            loop {
                let body = source
                    .get(&format!("/v2/_trust/changefeed?change_id={after}&records=1000"), 64 << 20)?
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "{} serves no changefeed: --all needs `*` access on the source (or use --guns-from FILE)",
                            source.server()
                        ))
                    })?;
                let v: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| Error::Usage(format!("source changefeed: {e}")))?;
                let records = v["records"].as_array().cloned().unwrap_or_default();
                for r in &records {
                    if let Some(gun) = r["GUN"].as_str() {
                        live.insert(gun.to_string(), r["Category"] != "deletion");
                    }
                }
                let last = records
                    .last()
                    .and_then(|r| r["ID"].as_str().and_then(|i| i.parse().ok()));
                match last {
                    Some(id) if records.len() == 1000 => after = id,
                    _ => break,
                }
            }
            Ok(live
                .into_iter()
                .filter(|(_, l)| *l)
                .map(|(g, _)| g)
                .collect())
        }
    }
}

/// `import --all` / `--guns-from`: resumable (GUNs the target already has are skipped), one
/// failure does not stop the others, a final table; fails when any GUN failed.
fn import_batch(ctx: &Ctx, source: &Remote, target: &Remote, batch: &Batch<'_>) -> Result<()> {
    let guns = batch_guns(source, batch)?;
    let bar = indicatif::ProgressBar::new(guns.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "importing {bar:30} {pos}/{len} repositories {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut rows: Vec<serde_json::Value> = Vec::new();
    for gun in &guns {
        bar.set_message(gun.clone());
        let path = format!("/v2/{gun}/_trust/tuf/root.json");
        let row = match target.get(&path, 1 << 20) {
            Ok(Some(_)) => {
                serde_json::json!({"gun": gun, "result": "skipped", "reason": "already on the target"})
            }
            Ok(None) => match import_one(ctx, source, target, gun, None) {
                Ok(r) => {
                    serde_json::json!({"gun": gun, "result": "imported", "files": r.files, "targets": r.targets, "versions": r.versions})
                }
                Err(e) => {
                    serde_json::json!({"gun": gun, "result": "failed", "reason": e.to_string()})
                }
            },
            Err(e) => serde_json::json!({"gun": gun, "result": "failed", "reason": e.to_string()}),
        };
        rows.push(row);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let count = |what: &str| rows.iter().filter(|r| r["result"] == what).count();
    let (imported, skipped, failed) = (count("imported"), count("skipped"), count("failed"));
    if ctx.json {
        print_json(
            &serde_json::json!({"imported": imported, "skipped": skipped, "failed": failed, "guns": rows}),
        );
    } else {
        println!("{:<56}{:<10}DETAIL", "GUN", "RESULT");
        for r in &rows {
            let detail = match r["result"].as_str() {
                Some("imported") => format!("{} files, {} targets", r["files"], r["targets"]),
                _ => r["reason"].as_str().unwrap_or("").to_string(),
            };
            println!(
                "{:<56}{:<10}{detail}",
                r["gun"].as_str().unwrap_or(""),
                r["result"].as_str().unwrap_or("")
            );
        }
        println!("\n{imported} imported, {skipped} skipped (already there), {failed} failed");
    }
    if failed > 0 {
        return Err(Error::Usage(format!(
            "{failed} of {} repositories failed to import (see the table); run the same command again to retry them",
            guns.len()
        )));
    }
    Ok(())
}

pub(super) fn import_cmd(
    ctx: &Ctx,
    from: &str,
    from_ca: Option<&Path>,
    guns: &[String],
    batch: Option<Batch<'_>>,
) -> Result<()> {
    // The source is logged into with its own credentials when given (Docker Hub's notary and
    // the new server rarely share a login).
    let source = Remote::new(from, from_ca)?.with_auth_from("NOTARY_AUTH_FROM");
    let target = ctx.remote()?;
    if let Some(batch) = batch {
        return import_batch(ctx, &source, &target, &batch);
    }
    if guns.is_empty() {
        return Err(Error::Usage(
            "import needs --gun GUN (repeatable), --all or --guns-from FILE".into(),
        ));
    }
    let mut reports = Vec::new();
    for gun in guns {
        let bar = files_bar(gun);
        let r = import_one(ctx, &source, &target, gun, Some(&bar));
        bar.finish_and_clear();
        reports.push(r?);
    }
    if ctx.json {
        print_json(&reports);
    } else {
        for r in &reports {
            let v: Vec<String> = r
                .versions
                .iter()
                .map(|(k, v)| format!("{k} v{v}"))
                .collect();
            println!(
                "{}: copied {} files ({}), {} targets, verified",
                r.gun,
                r.files,
                v.join(", "),
                r.targets
            );
            println!("  next:");
            for s in &r.next_steps {
                println!("    {s}");
            }
        }
    }
    Ok(())
}

pub(super) fn url_query(k: &str, v: &str) -> String {
    let enc: String = v
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect();
    format!("{k}={enc}")
}

pub(super) fn verify_both(
    ctx: &Ctx,
    image: &str,
    key: Option<&Path>,
    registry_ca: Option<&Path>,
) -> Result<()> {
    let (registry, repository, tag) = cosign::split_image(image)?;
    let gun = format!("{registry}/{repository}");
    let remote = ctx.remote()?;
    let v = ctx.read(&remote, &gun)?;
    // docker's order: targets/releases first, then targets (and the rest of the tree).
    let (targets, _) = v.targets(&["targets/releases", "targets"]);
    let t = targets
        .into_iter()
        .find(|t| t.name == tag)
        .ok_or_else(|| Error::Usage(format!("{gun}: no DCT trust data for {tag}")))?;
    let pem_text = match key {
        Some(p) => std::fs::read(p).map_err(|e| Error::io(p, e))?,
        None => remote
            .get("/_trustbridge/v1/cosign.pub", 1 << 20)?
            .ok_or_else(|| {
                Error::Usage(format!("{} serves no cosign.pub; pass --key", ctx.server))
            })?,
    };
    let key = cosign::public_key(&pem_text)?;
    let reg = RegistryReader::new(&registry, &repository, registry_ca)?;
    let layers = cosign::layers(&reg, &t.sha256, &key)?;
    let bundles = cosign::bundles(&reg, &t.sha256, &key)?;
    let want = format!("sha256:{}", t.sha256);
    // Notation, where the server signs for it (it then serves its trust anchor).
    let notation = match remote.get("/_trustbridge/v1/notation-ca.crt", 1 << 20)? {
        Some(ca) => {
            let roots = trustbridge_tuf::x509::certificate_ders(&ca)
                .map_err(|e| Error::Usage(format!("{}: notation-ca.crt: {e}", ctx.server)))?;
            Some(trustbridge_client::notation::signatures(
                &reg, &t.sha256, &roots,
            )?)
        }
        None => None,
    };
    let notation_agrees = notation.as_ref().map(|sigs| {
        sigs.iter().any(|n| {
            n.verified && n.signed_digest == want && n.target.as_deref() == Some(tag.as_str())
        })
    });
    let agree = layers.iter().any(|l| l.verified && l.signed_digest == want);
    let bundle_agrees = bundles
        .iter()
        .any(|b| b.verified && b.signed_digests.contains(&want));
    if ctx.json {
        print_json(
            &serde_json::json!({"image": image, "dct": {"digest": want, "role": t.role}, "cosign": layers, "bundles": bundles, "notation": notation, "agree": agree, "bundle_agrees": bundle_agrees, "notation_agrees": notation_agrees}),
        );
    } else {
        println!("DCT:    {image} -> {want} (signed in {})", t.role);
        for l in &layers {
            println!(
                "Cosign: layer {} signs {} ({}) {}",
                &l.digest[..l.digest.len().min(19)],
                l.signed_digest,
                l.docker_reference,
                if l.verified {
                    "verified with the bridge key"
                } else {
                    "not signed by this key"
                }
            );
        }
        for b in &bundles {
            println!(
                "Bundle: referrer {} signs {} {}",
                &b.manifest[..b.manifest.len().min(19)],
                b.signed_digests.join(", "),
                if b.verified {
                    "verified with the bridge key (cosign v3 layout)"
                } else {
                    "not signed by this key"
                }
            );
        }
    }
    if !ctx.json {
        for n in notation.iter().flatten() {
            println!(
                "Notation: signature {} {}",
                &n.manifest[..n.manifest.len().min(19)],
                if n.verified {
                    format!(
                        "signs {} (tag {}) verified with the server's Notation CA",
                        n.signed_digest,
                        n.target.as_deref().unwrap_or("-")
                    )
                } else {
                    format!(
                        "does not verify with the server's Notation CA: {}",
                        n.error.as_deref().unwrap_or("")
                    )
                }
            );
        }
    }
    if !agree {
        return Err(Error::Usage(format!(
            "{image}: no Cosign signature by this key for {want}; check `trustbridge migration status --gun {gun}`"
        )));
    }
    if notation_agrees == Some(false) {
        return Err(Error::Usage(format!(
            "{image}: the server signs for Notation but no signature of its CA covers {want} for tag {tag}; check `trustbridge migration status --gun {gun}`"
        )));
    }
    if !ctx.json {
        println!("OK: DCT and Cosign agree on {want}");
        if bundle_agrees {
            println!("OK: the Sigstore bundle (cosign v3) agrees too");
        }
        if notation_agrees == Some(true) {
            println!("OK: DCT and Notation agree on {want}");
        }
    }
    Ok(())
}
