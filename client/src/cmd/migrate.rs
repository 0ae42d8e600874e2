//! The migration verbs: `import`, `verify-both` (`migration status|usage|ready` are in
//! [`super::control`]).

use std::path::Path;

use trustbridge_client::registry::RegistryReader;
use trustbridge_client::remote::Remote;
use trustbridge_client::{Error, Result, cosign, import};

use super::{Ctx, print_json};

pub(super) fn import_cmd(
    ctx: &Ctx,
    from: &str,
    from_ca: Option<&Path>,
    guns: &[String],
) -> Result<()> {
    // The source is logged into with its own credentials when given (Docker Hub's notary and
    // the new server rarely share a login).
    let source = Remote::new(from, from_ca)?.with_auth_from("NOTARY_AUTH_FROM");
    let target = ctx.remote()?;
    let mut reports = Vec::new();
    for gun in guns {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} files")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(gun.clone());
        let cache = ctx.cache(gun);
        let (current, files) =
            import::collect(&source, &cache, gun, &ctx.pin(gun)?, &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })?;
        bar.finish_and_clear();
        import::store(&target, gun, &files)?;
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
        reports.push(import::Report {
            gun: gun.clone(),
            versions,
            files: files.len(),
            targets: targets.len(),
            server_snapshot: !local_snapshot,
            next_steps: import::next_steps(gun, target.server(), &current, local_snapshot),
        });
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
    let agree = layers.iter().any(|l| l.verified && l.signed_digest == want);
    let bundle_agrees = bundles
        .iter()
        .any(|b| b.verified && b.signed_digests.contains(&want));
    if ctx.json {
        print_json(
            &serde_json::json!({"image": image, "dct": {"digest": want, "role": t.role}, "cosign": layers, "bundles": bundles, "agree": agree, "bundle_agrees": bundle_agrees}),
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
    if !agree {
        return Err(Error::Usage(format!(
            "{image}: no Cosign signature by this key for {want}; check `trustbridge migration status --gun {gun}`"
        )));
    }
    if !ctx.json {
        println!("OK: DCT and Cosign agree on {want}");
        if bundle_agrees {
            println!("OK: the Sigstore bundle (cosign v3) agrees too");
        }
    }
    Ok(())
}
