//! The Notation mirror, checked with the real `notation` CLI (Debian's notation 1.3.2 from
//! sid, installed by scripts/test.sh): a tag signed through DCT by the real notary client and
//! then by docker CLI 28 is signed for Notation too, and notation verifies it with a trust policy naming our CA and the
//! leaf's `x509.subject`; another tool's signature on the same image stays beside ours; a
//! renewed leaf re-signs every mirrored tag and retires the old signature; a DCT revoke
//! removes ours, after which the other CA's signature alone does not satisfy the policy.
//! Both discovery paths: the `sha256-<hex>` fallback index on docker-registry 2.8, the
//! referrers API on ferro-oci-server.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use trustbridge_e2e::bridge::{
    Registry, Stack, assert_cosign, sign_tag, start_bridge_notation, start_bridge_notation_key,
    wait_job, wait_status,
};
use trustbridge_e2e::notation::{ADMIN_LEAF_IDENTITY, AdminPki, Notation};
use trustbridge_e2e::server::{docker_trust, notary, notary_cmd, trustbridge_cmd};
use trustbridge_e2e::signer::{ALIAS1_PASS, notation_key_import};
use trustbridge_e2e::{https_get, init, our_bin, peer, run_ok};

const SUBJECT: &str = "CN=trustbridge notation,O=trustbridge tests,ST=Berlin,C=DE";
const IDENTITY: &str =
    "x509.subject: C=DE, ST=Berlin, O=trustbridge tests, CN=trustbridge notation";

/// Wait (120 s at most) until `done` holds for notation's list of the image's signatures.
fn wait_list(
    nt: &Notation,
    image: &str,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let start = Instant::now();
    loop {
        let sigs = nt.list(image);
        if done(&sigs) {
            return sigs;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{what}: notation lists {sigs:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `oras discover` (sid): the image's Notation signatures as oras lists them.
fn oras_discover(dir: &Path, image: &str) -> String {
    let out = run_ok(
        "oras discover",
        Command::new(peer("sid", "oras"))
            .args([
                "discover",
                "--plain-http",
                "--artifact-type",
                "application/vnd.cncf.notary.signature",
            ])
            .arg(image)
            .env("HOME", dir),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A registry holding `repo:v1` and the stack with Notation on for it.
struct Setup {
    registry: Registry,
    st: Stack,
    gun: String,
    digest: String,
    size: u64,
    /// `gun@sha256:<digest>`.
    image: String,
}

fn setup(dir: &Path, repo: &str, leaf_seconds: Option<u64>) -> Setup {
    setup_on(Registry::start(&dir.join("registry")), repo, |fields| {
        start_bridge_notation(dir, fields, SUBJECT, leaf_seconds)
    })
}

/// `repo:v1` pushed to `registry`, and the stack `start` makes from the bridge fields that
/// name that registry.
fn setup_on(registry: Registry, repo: &str, start: impl FnOnce(&str) -> Stack) -> Setup {
    let gun = format!("127.0.0.1:{}/{repo}", registry.port);
    let (digest, size) = registry.push_sample(&format!("{repo}:v1"));
    let st = start(&format!(
        r#","registries":{{"127.0.0.1:{}":{{"plain_http":true}}}}"#,
        registry.port
    ));
    Setup {
        image: format!("{gun}@sha256:{digest}"),
        registry,
        st,
        gun,
        digest,
        size,
    }
}

/// A Notation user of `gun`: our CA (as served) in a trust store, a strict policy naming it
/// and our leaf's subject.
fn notation_user(dir: &Path, st: &Stack, gun: &str) -> Notation {
    // The trust anchor as a Notation user fetches it, in a trust store and policy of theirs.
    let (code, ca) = https_get(
        &format!("{}/_trustbridge/v1/notation-ca.crt", st.url),
        &st.ca,
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&ca));
    let ca_file = dir.join("trustbridge-ca.crt");
    std::fs::write(&ca_file, &ca).unwrap();
    let nt = Notation::new(&dir.join("notation-user"));
    nt.trust_ca("trustbridge", &ca_file);
    nt.policy(&serde_json::json!({
        "version": "1.0",
        "trustPolicies": [{
            "name": "dct-mirror",
            "registryScopes": [gun],
            "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:trustbridge"],
            "trustedIdentities": [IDENTITY],
        }],
    }));
    nt
}

#[test]
fn notation_verifies_what_dct_signs_and_nothing_after_a_revoke() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let Setup {
        registry: _registry,
        st,
        gun,
        digest: d1,
        size: s1,
        image,
    } = setup(dir, "team/app", None);

    let nt = notation_user(dir, &st, &gun);

    // 0. Nothing signed in DCT: nothing for Notation either.
    let (ok, out) = nt.verify(&image, &[]);
    assert!(!ok, "verified before DCT signed anything: {out}");

    // 1. Signed through DCT by the real notary client: notation verifies it, by digest and by
    //    tag, and the signed user metadata names the tag.
    // The notary client and docker share one trust directory, as on a signer's laptop.
    let docker_cfg = dir.join("docker");
    let tls = docker_cfg
        .join("tls")
        .join(format!("notary-server:{}", st.port));
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(&st.ca, tls.join("ca.crt")).unwrap();
    let trust = docker_cfg.join("trust");
    sign_tag(&st, &trust, &gun, "v1", s1, &d1);
    wait_job(&st, &gun, "v1", "sign");
    for reference in [image.clone(), format!("{gun}:v1")] {
        let (ok, out) = nt.verify(
            &reference,
            &["--user-metadata", "dev.trustbridge/notary-target=v1"],
        );
        assert!(ok, "notation verify {reference}: {out}");
    }
    let (ok, out) = nt.verify(
        &image,
        &["--user-metadata", "dev.trustbridge/notary-target=v2"],
    );
    assert!(!ok, "user metadata that the signature lacks passed: {out}");
    let first = nt.list(&image);
    assert_eq!(first.len(), 1, "{first:?}");

    // 1b. docker CLI 28 signs the tag into a releases delegation (alice's key), so DCT now
    //     resolves it from targets/releases: the Notation signature follows the new claim.
    let server = format!("https://notary-server:{}", st.port);
    let d = |args: &[&str]| docker_trust(&docker_cfg, &server, args);
    d(&[
        "trust",
        "key",
        "generate",
        "alice",
        "--dir",
        docker_cfg.to_str().unwrap(),
    ]);
    let alice = docker_cfg.join("alice.pub");
    d(&[
        "trust",
        "signer",
        "add",
        "--key",
        alice.to_str().unwrap(),
        "alice",
        &gun,
    ]);
    let out = d(&["trust", "sign", &format!("{gun}:v1")]);
    assert!(out.contains("Successfully signed"), "{out}");
    wait_status(&st, &gun, "v1", |t| {
        t["role"] == "targets/releases" && t["action"] == "sign" && t["state"] == "mirrored"
    });
    let ours = wait_list(
        &nt,
        &image,
        "the releases claim replaced the targets claim",
        |s| s.len() == 1 && !s.contains(&first[0]),
    );
    let (ok, out) = nt.verify(
        &image,
        &[
            "--user-metadata",
            "dev.trustbridge/notary-role=targets/releases",
        ],
    );
    assert!(ok, "after docker trust sign: {out}");
    // Our client's verify-both reads DCT, Cosign and Notation and finds them agreeing.
    let out = trustbridge_cmd(
        &st.url,
        &st.ca,
        &trust,
        &["verify-both", &format!("{gun}:v1")],
    )
    .output()
    .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains(&format!("DCT and Notation agree on sha256:{d1}")),
        "{said}"
    );

    // 2. Another tool signs the same image (notation's own test CA): both are listed.
    nt.ok(&["cert", "generate-test", "--default", "other-tool"]);
    nt.ok(&["sign", "--insecure-registry", &image]);
    let both = nt.list(&image);
    assert_eq!(both.len(), 2, "{both:?}");
    // oras (sid) finds both through the same fallback index.
    let listed = oras_discover(dir, &image);
    for d in &both {
        assert!(
            listed.contains(d.as_str()),
            "oras discover lacks {d}: {listed}"
        );
    }
    assert!(both.contains(&ours[0]), "{both:?}");
    let theirs: Vec<String> = both.iter().filter(|d| **d != ours[0]).cloned().collect();

    // 3. A new leaf (the signer's CA issues it for the same key): the bridge re-signs the tag
    //    with the new chain and retires the old signature; the other tool's stays.
    run_ok(
        "notation-key renew",
        std::process::Command::new(our_bin("trustbridge-signer", "trustbridge-signer"))
            .args(["notation-key", "renew", "--config"])
            .arg(&st.signer_config)
            .env("NOTARY_SIGNER_ALIAS1", ALIAS1_PASS),
    );
    let renewed = wait_list(&nt, &image, "re-signed with the renewed leaf", |s| {
        s.len() == 2 && !s.contains(&ours[0]) && s.contains(&theirs[0])
    });
    let (ok, out) = nt.verify(&image, &[]);
    assert!(ok, "after renewal: {out}");

    // 4. The tag is revoked in DCT (`docker trust revoke`, then the notary client removes the
    //    copy in targets): our signature goes, the other tool's stays, and it alone (another
    //    CA) does not satisfy the policy.
    let out = d(&["trust", "revoke", "-y", &format!("{gun}:v1")]);
    assert!(out.contains("Successfully deleted signature"), "{out}");
    // (docker may have removed that copy already: then there is nothing to remove.)
    let _ = notary_cmd(&st.url, &st.ca, &trust, &["remove", &gun, "v1"]).output();
    notary(&st.url, &st.ca, &trust, &["publish", &gun]);
    wait_job(&st, &gun, "v1", "revoke");
    let left = wait_list(&nt, &image, "our signature revoked", |s| {
        s == theirs.as_slice()
    });
    assert!(!left.iter().any(|d| renewed.contains(d) && *d != theirs[0]));
    let (ok, out) = nt.verify(&image, &[]);
    assert!(!ok, "verified after DCT revoked the tag: {out}");
}

#[test]
fn a_leaf_near_its_end_is_renewed_by_the_serving_signer() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A leaf of 60 s: the signer renews it when 20 s are left, by itself.
    let Setup {
        registry: _registry,
        st,
        gun,
        digest: d1,
        size: s1,
        image,
    } = setup(dir, "team/short", Some(60));
    let nt = notation_user(dir, &st, &gun);
    sign_tag(&st, &dir.join("owner"), &gun, "v1", s1, &d1);
    wait_job(&st, &gun, "v1", "sign");
    let first = wait_list(&nt, &image, "signed", |s| s.len() == 1);
    let (ok, out) = nt.verify(&image, &[]);
    assert!(ok, "with the first leaf: {out}");
    // The new leaf reaches the server, which signs again and retires the first signature.
    wait_list(&nt, &image, "re-signed with the renewed leaf", |s| {
        s.len() == 1 && s[0] != first[0]
    });
    let (ok, out) = nt.verify(&image, &[]);
    assert!(ok, "with the renewed leaf: {out}");
}

/// The same mirror on a registry with the OCI 1.1 referrers API (ferro-oci-server): our
/// Notation signature and cosign v3 bundle are found through `GET /v2/<repo>/referrers/<digest>`
/// by notation, oras and cosign 3.1.1, we keep no `sha256-<hex>` fallback tag there, and a
/// DCT revoke removes ours from the API's listing while another tool's signature stays.
#[test]
fn the_referrers_api_carries_our_signatures_where_the_registry_has_it() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let registry = Registry::start_with_referrers_api(&dir.join("registry"));
    let Setup {
        registry,
        st,
        gun,
        digest: d1,
        size: s1,
        image,
    } = setup_on(registry, "team/api", |fields| {
        start_bridge_notation(
            dir,
            &format!(r#"{fields},"new_bundle_format":true"#),
            SUBJECT,
            None,
        )
    });
    let nt = notation_user(dir, &st, &gun);
    let fallback = format!("sha256-{d1}");

    sign_tag(&st, &dir.join("owner"), &gun, "v1", s1, &d1);
    wait_job(&st, &gun, "v1", "sign");
    let ours = wait_list(&nt, &image, "signed", |s| s.len() == 1);
    let (ok, out) = nt.verify(
        &image,
        &["--user-metadata", "dev.trustbridge/notary-target=v1"],
    );
    assert!(ok, "notation verify through the referrers API: {out}");
    let cosign_key = st.cosign_pub(dir);
    assert_cosign(&cosign_key, &image, true, "the tag is signed in DCT");
    // Both referrers (Notation signature, Sigstore bundle) are in the API's listing, and we
    // wrote no fallback tag beside them.
    let api = format!(
        "http://127.0.0.1:{}/v2/team/api/referrers/sha256:{d1}",
        registry.port
    );
    let listing = |what: &str| -> serde_json::Value {
        let out = run_ok(what, Command::new("curl").args(["-fsS", &api]));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let l = listing("GET referrers");
    let types: Vec<&str> = l["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["artifactType"].as_str())
        .collect();
    assert_eq!(types.len(), 2, "{l}");
    assert!(
        types.contains(&"application/vnd.cncf.notary.signature"),
        "{l}"
    );
    assert!(
        types
            .iter()
            .any(|t| t.starts_with("application/vnd.dev.sigstore.bundle")),
        "{l}"
    );
    assert!(
        !registry.tags("team/api").contains(&fallback),
        "a fallback tag on a registry with the referrers API: {:?}",
        registry.tags("team/api")
    );
    assert!(oras_discover(dir, &image).contains(ours[0].as_str()));

    // Another tool's signature (notation's own test CA) beside ours.
    nt.ok(&["cert", "generate-test", "--default", "other-tool"]);
    nt.ok(&["sign", "--insecure-registry", &image]);
    let both = nt.list(&image);
    assert_eq!(both.len(), 2, "{both:?}");
    let theirs: Vec<String> = both.iter().filter(|d| **d != ours[0]).cloned().collect();

    // Revoked in DCT: ours leave the API's listing, the other tool's stays.
    notary(&st.url, &st.ca, &dir.join("owner"), &["remove", &gun, "v1"]);
    notary(&st.url, &st.ca, &dir.join("owner"), &["publish", &gun]);
    wait_job(&st, &gun, "v1", "revoke");
    let left = wait_list(&nt, &image, "our signature revoked", |s| {
        s == theirs.as_slice()
    });
    assert_eq!(left, theirs);
    let l = listing("GET referrers after the revoke");
    let digests: Vec<&str> = l["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["digest"].as_str())
        .collect();
    assert_eq!(digests, [theirs[0].as_str()], "{l}");
    let (ok, out) = nt.verify(&image, &[]);
    assert!(!ok, "verified after DCT revoked the tag: {out}");
    assert_cosign(&cosign_key, &image, false, "the tag was revoked in DCT");
}

/// An admin who has a PKI imports its chain (`notation-key import --cert --key`, an RSA 3072 key:
/// PS384 signatures) instead of letting the signer make one; a TLS certificate is refused with
/// the reason; the served trust anchor is the admin's root; the admin renews the leaf with
/// their own CA and imports it again while everything runs, and the bridge re-signs with it.
#[test]
fn an_imported_chain_from_the_admins_pki_signs_and_is_renewed_by_reimport() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = AdminPki::new(&dir.join("pki"));
    let first_chain = pki.leaf_chain("leaf1", "leaf");
    let Setup {
        registry: _registry,
        st,
        gun,
        digest: d1,
        size: s1,
        image,
    } = setup_on(
        Registry::start(&dir.join("registry")),
        "team/imported",
        |fields| {
            start_bridge_notation_key(dir, fields, |sc| {
                let tls = pki.leaf_chain("tls", "tls");
                let (ok, out) = notation_key_import(sc, &tls, Some(&pki.key));
                assert!(!ok, "a TLS server certificate was imported: {out}");
                assert!(out.contains("never serverAuth"), "{out}");
                let (ok, out) = notation_key_import(sc, &first_chain, Some(&pki.key));
                assert!(ok, "{out}");
                out.trim().to_string()
            })
        },
    );
    // The served trust anchor is the admin's root.
    let (code, served) = https_get(
        &format!("{}/_trustbridge/v1/notation-ca.crt", st.url),
        &st.ca,
    );
    assert_eq!(code, 200);
    let body = |pem: &[u8]| -> String {
        String::from_utf8_lossy(pem)
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect()
    };
    assert_eq!(body(&served), body(&std::fs::read(&pki.root).unwrap()));

    let nt = Notation::new(&dir.join("notation-user"));
    nt.trust_ca("corp", &pki.root);
    nt.policy(&serde_json::json!({
        "version": "1.0",
        "trustPolicies": [{
            "name": "corp",
            "registryScopes": [gun],
            "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:corp"],
            "trustedIdentities": [ADMIN_LEAF_IDENTITY],
        }],
    }));
    sign_tag(&st, &dir.join("owner"), &gun, "v1", s1, &d1);
    wait_job(&st, &gun, "v1", "sign");
    let first = wait_list(&nt, &image, "signed", |s| s.len() == 1);
    let (ok, out) = nt.verify(&image, &[]);
    assert!(ok, "with the imported chain: {out}");
    let inspect = nt.ok(&["inspect", "--insecure-registry", "--output", "json", &image]);
    // RSA 3072: the Notary Project pairs it with SHA-384 (PS384); PS256 fails to verify.
    assert!(inspect.contains("\"RSASSA-PSS-SHA-384\""), "{inspect}");

    // The signer cannot renew a chain whose CA is elsewhere, and says what to do.
    let out = Command::new(our_bin("trustbridge-signer", "trustbridge-signer"))
        .args(["notation-key", "renew", "--config"])
        .arg(&st.signer_config)
        .env("NOTARY_SIGNER_ALIAS1", ALIAS1_PASS)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("import --cert"),
        "{said}"
    );

    // The admin's CA issues a new leaf for the same key; importing it (no --key) while the
    // signer and server run makes the bridge sign again and retire the first signature.
    let second_chain = pki.leaf_chain("leaf2", "leaf");
    let (ok, out) = notation_key_import(&st.signer_config, &second_chain, None);
    assert!(ok, "{out}");
    wait_list(&nt, &image, "re-signed with the re-imported leaf", |s| {
        s.len() == 1 && s[0] != first[0]
    });
    let (ok, out) = nt.verify(&image, &[]);
    assert!(ok, "with the re-imported leaf: {out}");
}
