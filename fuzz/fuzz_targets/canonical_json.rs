//! Canonical JSON (notary's form): any JSON value canonicalises without panicking, from its
//! `Value` and from its text alike, and the
//! canonical form is a fixed point (parsing and canonicalising it again gives the same bytes),
//! which key IDs and signatures depend on. notary's dialect (OLPC) escapes only `"` and `\`,
//! so a string with a control character canonicalises to bytes no strict JSON parser reads
//! back (found by this target): the fixed point is checked where the bytes parse.
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
    match serde_json::from_slice::<serde_json::Value>(&once) {
        Ok(again) => assert_eq!(cjson::canonical(&again).expect("canonical twice"), once),
        Err(_) => assert!(
            once.iter().any(|b| *b < 0x20),
            "canonical JSON without control characters does not parse back"
        ),
    }
    let _ = cjson::html_escape_compact(&once);
    // The same value canonicalised from its text (how signatures are checked, without a
    // `Value` tree) gives the same bytes.
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(raw) = serde_json::from_str::<&serde_json::value::RawValue>(text)
    {
        assert_eq!(
            cjson::canonical_raw(raw).expect("canonical from the text"),
            once,
            "canonical_raw and canonical disagree"
        );
        // Text taken as canonical (signatures then checked over it) must be exactly that
        // (the value's own text: whitespace around a top-level value is not part of it).
        if trustbridge_tuf::canonical_check::is_canonical(raw) {
            assert_eq!(
                raw.get().as_bytes(),
                &once[..],
                "is_canonical accepted a non-canonical text"
            );
        }
    }
});
