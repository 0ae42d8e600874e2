//! Access to the golden vectors in `../shared/fixtures/notary-0.7.0` (real notary 0.7.0 output).

#![allow(dead_code)]

use std::path::PathBuf;

/// The fixture directory: `$TRUSTBRIDGE_FIXTURES`, else `fixtures/notary-0.7.0` under
/// `$TRUSTBRIDGE_SHARED` or `<repo>/../shared` (the same rule as the e2e harness, which this
/// crate cannot depend on). Missing fixtures fail the test: they are part of the checkout's
/// environment, never optional.
pub fn dir() -> PathBuf {
    let shared = std::env::var_os("TRUSTBRIDGE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let d = std::env::var_os("TRUSTBRIDGE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared.join("fixtures/notary-0.7.0"));
    assert!(
        d.join("metadata/root.json").is_file(),
        "golden fixtures not found at {} (set TRUSTBRIDGE_FIXTURES)",
        d.display()
    );
    d
}

pub fn read(rel: &str) -> Vec<u8> {
    std::fs::read(dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every metadata file of the fixture (relative paths): current, versioned and by checksum.
pub fn metadata_files() -> Vec<String> {
    let root = dir();
    let mut out = Vec::new();
    let mut stack = vec![root.join("metadata")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json")
                && !p.to_string_lossy().ends_with(".key.json")
            {
                out.push(
                    p.strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    assert!(
        out.len() >= 30,
        "expected the full fixture set, found {}",
        out.len()
    );
    out
}

/// `_type` of a metadata file.
pub fn type_of(bytes: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    v["signed"]["_type"].as_str().unwrap().to_string()
}

pub const GUN: &str = "example.com/golden/repo";
