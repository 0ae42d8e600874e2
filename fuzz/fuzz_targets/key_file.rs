//! notary's private key files (PEM, encrypted PKCS#8 with PBKDF2): a file from anywhere is
//! refused or decoded, never a panic, and never an unbounded key derivation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = trustbridge_tuf::keyfile::decode(data, "throwaway");
    let _ = trustbridge_tuf::keyfile::decrypt_pkcs8(data, "throwaway");
    let _ = trustbridge_tuf::PrivateKey::from_pkcs8(data);
});
