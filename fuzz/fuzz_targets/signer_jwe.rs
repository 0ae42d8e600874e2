//! The signer's `private_keys` rows: a compact JWE (PBES2-HS256+A128KW, A256GCM) read from a
//! database another process may have written. Refused or decrypted, never a panic, never an
//! unbounded key derivation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = trustbridge_tuf::jwe::decrypt(&text, "throwaway");
});
