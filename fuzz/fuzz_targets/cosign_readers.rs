//! What `verify-both` reads from a registry: simple-signing payloads and Sigstore bundles.
//! Any bytes read as a claim (possibly empty), never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = trustbridge_cosign::payload::read(data);
    let b = trustbridge_cosign::bundle::read(data);
    let _ = b.is_sign_statement();
    let _ = trustbridge_tuf::dsse::pae(&b.payload_type, &b.payload);
});
