//! cosign v3's layout (`trustbridge.bridge.new_bundle_format`): beside the legacy `.sig` layer,
//! a Sigstore bundle attached to the image through OCI referrers. Debian's docker-registry
//! (distribution 2.8) has no referrers API, so the bridge keeps the `sha256-<hex>` fallback
//! index. Everything written is read back by code nobody here wrote: oci-client's referrers
//! client (API, then the tag schema) finds the bundle, sigstore-js (`@sigstore/verify`, run by
//! node from `sigstore-tests/js`) verifies it with the key from `/_trustbridge/v1/cosign.pub`,
//! and sigstore-rs still verifies the legacy layer with the bundle present.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use std::process::Command;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use trustbridge_e2e::server::{notary, trustbridge};
use trustbridge_e2e::{https_get, init, our_bin, require_bin, run_ok};
use trustbridge_sigstore_tests::{Registry, sig_layers, sign_tag, start_stack, verify, wait_job};

const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

fn client() -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    })
}

/// The referrers of `digest` as oci-client lists them: (digest, artifactType, annotations).
async fn referrers(
    port: u16,
    repo: &str,
    digest: &str,
) -> Vec<(String, String, serde_json::Value)> {
    let r = Reference::with_digest(
        format!("127.0.0.1:{port}"),
        repo.into(),
        format!("sha256:{digest}"),
    );
    let index = client().pull_referrers(&r, None).await.expect("referrers");
    index
        .manifests
        .into_iter()
        .map(|e| {
            (
                e.digest,
                e.artifact_type.unwrap_or_default(),
                serde_json::to_value(e.annotations.unwrap_or_default()).unwrap(),
            )
        })
        .collect()
}

/// The bundle layer of the referrer manifest `manifest_digest`, pulled by oci-client.
async fn pull_bundle(port: u16, repo: &str, manifest_digest: &str) -> Vec<u8> {
    let r = Reference::with_digest(
        format!("127.0.0.1:{port}"),
        repo.into(),
        manifest_digest.into(),
    );
    let data = client()
        .pull(&r, &RegistryAuth::Anonymous, vec![BUNDLE_TYPE])
        .await
        .expect("pull the bundle manifest");
    assert_eq!(data.layers.len(), 1, "one bundle layer");
    data.layers[0].data.to_vec()
}

/// node and the verifier's packages; under CI a missing one fails the test (scripts/test.sh
/// installs them with `npm ci`).
fn verifier() -> PathBuf {
    require_bin("node");
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    assert!(
        js.join("node_modules/@sigstore/verify").is_dir(),
        "sigstore-js is not installed: run `npm ci --prefix {}` (scripts/test.sh does)",
        js.display()
    );
    js.join("verify-bundle.js")
}

/// `node verify-bundle.js BUNDLE KEY sha256:DIGEST`: Ok(statement) or Err(stderr).
fn js_verify(
    bundle: &[u8],
    key: &Path,
    digest: &str,
    dir: &Path,
) -> Result<serde_json::Value, String> {
    let file = dir.join("bundle.json");
    std::fs::write(&file, bundle).unwrap();
    let out = Command::new("node")
        .arg(verifier())
        .arg(&file)
        .arg(key)
        .arg(format!("sha256:{digest}"))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("the statement"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// An SBOM-style referrer from another tool on the same image, listed in the fallback index.
async fn push_foreign_referrer(port: u16, repo: &str, digest: &str, size: u64) -> String {
    let c = client();
    let host = format!("127.0.0.1:{port}");
    let tag_ref = Reference::with_tag(host.clone(), repo.into(), format!("sha256-{digest}"));
    let blob = br#"{"spdxVersion":"SPDX-2.3"}"#.to_vec();
    let sha = |b: &[u8]| {
        format!(
            "sha256:{}",
            hex(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
        )
    };
    c.push_blob(&tag_ref, blob.clone(), &sha(&blob))
        .await
        .unwrap();
    c.push_blob(&tag_ref, b"{}".to_vec(), &sha(b"{}"))
        .await
        .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": sha(&blob), "size": blob.len()}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{digest}"), "size": size},
    }))
    .unwrap();
    let md = sha(&manifest);
    let by_digest = Reference::with_digest(host.clone(), repo.into(), md.clone());
    c.push_manifest_raw(
        &by_digest,
        manifest.clone(),
        http_value("application/vnd.oci.image.manifest.v1+json"),
    )
    .await
    .unwrap();
    let (raw, _) = c
        .pull_manifest_raw(
            &tag_ref,
            &RegistryAuth::Anonymous,
            &["application/vnd.oci.image.index.v1+json"],
        )
        .await
        .expect("the fallback index exists");
    let mut index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    index["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(),
        "artifactType": "application/spdx+json",
    }));
    c.push_manifest_raw(
        &tag_ref,
        serde_json::to_vec(&index).unwrap(),
        http_value("application/vnd.oci.image.index.v1+json"),
    )
    .await
    .unwrap();
    md
}

fn http_value(v: &'static str) -> http::HeaderValue {
    http::HeaderValue::from_static(v)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// HTTP status of `GET /v2/<repo>/manifests/<reference>` on the registry.
fn manifest_status(port: u16, repo: &str, reference: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg("Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json")
        .arg(format!("http://127.0.0.1:{port}/v2/{repo}/manifests/{reference}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn v3_bundle_is_attached_verified_by_sigstore_js_kept_once_and_revoked() {
    init();
    let script = verifier();
    assert!(script.is_file());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start(&dir.join("registry"));
    let port = registry.port;
    let repo = "sample/bundle";
    let gun = format!("127.0.0.1:{port}/{repo}");
    let (digest, size) = registry.push_sample(&format!("{repo}:v1"));
    let st = start_stack(dir, port, r#","new_bundle_format":true"#);
    let trust = dir.join("trust");
    sign_tag(&st, &trust, &gun, "v1", size, &digest);
    wait_job(&st, &gun, "v1", "sign");
    let (code, pem) = https_get(&format!("{}/_trustbridge/v1/cosign.pub", st.url), &st.ca);
    assert_eq!(code, 200);
    let key = dir.join("cosign.pub");
    std::fs::write(&key, &pem).unwrap();
    let rt = trustbridge_e2e::signer::rt();

    // oci-client finds exactly one bundle referrer, through the fallback tag.
    let refs = rt.block_on(referrers(port, repo, &digest));
    assert_eq!(refs.len(), 1, "{refs:?}");
    let (bundle_manifest, artifact_type, annotations) = refs[0].clone();
    assert_eq!(artifact_type, BUNDLE_TYPE);
    assert_eq!(annotations["dev.sigstore.bundle.content"], "dsse-envelope");
    assert_eq!(
        annotations["dev.sigstore.bundle.predicateType"],
        "https://sigstore.dev/cosign/sign/v1"
    );
    assert_eq!(
        manifest_status(port, repo, &format!("sha256-{digest}")),
        "200"
    );

    // sigstore-js verifies it with the bridge key; the statement names the tag and role.
    let bundle = rt.block_on(pull_bundle(port, repo, &bundle_manifest));
    let statement =
        js_verify(&bundle, &key, &digest, dir).expect("sigstore-js verifies the bundle");
    let subject = &statement["subject"][0];
    assert_eq!(subject["digest"]["sha256"], digest.as_str());
    assert_eq!(
        subject["annotations"]["docker-reference"],
        format!("{gun}:v1")
    );
    assert_eq!(
        subject["annotations"]["dev.trustbridge/notary-role"],
        "targets"
    );

    // Another key, a statement for another image, another digest asked for: all refused.
    let other = dir.join("other.pub");
    let other_key = sigstore::crypto::signing_key::ecdsa::ECDSAKeys::new(
        sigstore::crypto::signing_key::ecdsa::EllipticCurve::P256,
    )
    .unwrap();
    std::fs::write(
        &other,
        sigstore::crypto::signing_key::SigStoreKeyPair::ECDSA(other_key)
            .public_key_to_pem()
            .unwrap(),
    )
    .unwrap();
    let e = js_verify(&bundle, &other, &digest, dir).unwrap_err();
    assert!(
        e.contains("key not found") || e.contains("signature"),
        "{e}"
    );
    let mut tampered: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
    let forged = String::from_utf8(serde_json::to_vec(&statement).unwrap())
        .unwrap()
        .replace(&digest, &"0".repeat(64));
    tampered["dsseEnvelope"]["payload"] = base64::engine::general_purpose::STANDARD
        .encode(forged.as_bytes())
        .into();
    let e = js_verify(
        &serde_json::to_vec(&tampered).unwrap(),
        &key,
        &"0".repeat(64),
        dir,
    )
    .unwrap_err();
    assert!(e.contains("signature verification failed"), "{e}");
    let e = js_verify(&bundle, &key, &"1".repeat(64), dir).unwrap_err();
    assert!(e.contains("no subject names"), "{e}");

    // Our client's verify-both checks both layouts.
    let out = trustbridge(
        &st.url,
        &st.ca,
        &trust,
        &["verify-both", &format!("{gun}:v1")],
    );
    assert!(
        out.contains(&format!("OK: DCT and Cosign agree on sha256:{digest}"))
            && out.contains("OK: the Sigstore bundle (cosign v3) agrees too"),
        "{out}"
    );

    // The legacy layer is still there, and sigstore-rs verifies it with the bundle present.
    rt.block_on(verify(port, &format!("{gun}:v1"), &pem))
        .expect("sigstore-rs verifies the .sig layer beside the bundle");

    // Delivered again (`backfill --redeliver`, as after turning the layout on): nothing new is
    // attached, in either layout.
    let out = run_ok(
        "bridge backfill --redeliver",
        Command::new(our_bin("trustbridge-server", "trustbridge-server"))
            .arg("--config")
            .arg(&st.config)
            .args(["bridge", "backfill", "--redeliver", "--gun", &gun]),
    );
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("1 new job(s), 1 mirrored, 0 failed"), "{out}");
    assert_eq!(rt.block_on(referrers(port, repo, &digest)).len(), 1);
    assert_eq!(sig_layers(port, repo, &digest), 1);

    // Another tool's referrer on the same image survives our revocation.
    let foreign = rt.block_on(push_foreign_referrer(port, repo, &digest, size));
    assert_eq!(rt.block_on(referrers(port, repo, &digest)).len(), 2);
    let out = trustbridge(
        &st.url,
        &st.ca,
        &trust,
        &["--json", "verify-both", &format!("{gun}:v1")],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["bundles"].as_array().unwrap().len(),
        1,
        "the SBOM is no bundle: {v}"
    );
    assert_eq!(v["bundle_agrees"], true, "{v}");
    notary(&st.url, &st.ca, &trust, &["remove", &gun, "v1"]);
    notary(&st.url, &st.ca, &trust, &["publish", &gun]);
    wait_job(&st, &gun, "v1", "revoke");
    let left = rt.block_on(referrers(port, repo, &digest));
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, foreign);
    assert_eq!(manifest_status(port, repo, &bundle_manifest), "404");
    assert!(
        rt.block_on(verify(port, &format!("{gun}:v1"), &pem))
            .is_err()
    );

    // Where our bundle was the only referrer, the fallback tag goes with it.
    let repo2 = "sample/bundle-alone";
    let gun2 = format!("127.0.0.1:{port}/{repo2}");
    let (digest2, size2) = registry.push_sample(&format!("{repo2}:v1"));
    let trust2 = dir.join("trust2");
    sign_tag(&st, &trust2, &gun2, "v1", size2, &digest2);
    wait_job(&st, &gun2, "v1", "sign");
    assert_eq!(rt.block_on(referrers(port, repo2, &digest2)).len(), 1);
    notary(&st.url, &st.ca, &trust2, &["remove", &gun2, "v1"]);
    notary(&st.url, &st.ca, &trust2, &["publish", &gun2]);
    wait_job(&st, &gun2, "v1", "revoke");
    assert_eq!(
        manifest_status(port, repo2, &format!("sha256-{digest2}")),
        "404"
    );
    assert!(rt.block_on(referrers(port, repo2, &digest2)).is_empty());
}
