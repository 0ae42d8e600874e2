//! Canonical JSON (notary's form): any JSON value canonicalises without panicking, and the
//! canonical form is a fixed point (parsing and canonicalising it again gives the same bytes),
//! which key IDs and signatures depend on.
#![no_main]
use libfuzzer_sys::fuzz_target;
use trustbridge_tuf::cjson;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(once) = cjson::canonical(&v) else {
        return;
    };
    let again: serde_json::Value =
        serde_json::from_slice(&once).expect("canonical JSON parses back");
    assert_eq!(cjson::canonical(&again).expect("canonical twice"), once);
    let _ = cjson::html_escape_compact(&once);
});
