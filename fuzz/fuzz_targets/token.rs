//! Bearer tokens as the server checks them: any text after `Bearer ` is refused with a
//! reason or accepted, never a panic. The root bundle is a fixed test certificate.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use trustbridge_server::auth::jwt::Roots;

fn roots() -> &'static Roots {
    static R: OnceLock<Roots> = OnceLock::new();
    R.get_or_init(|| Roots::from_pem(include_bytes!("../seeds/token-root.pem")).expect("seed root"))
}

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    let _ = roots().verify(&token, "issuer", "service", 1_700_000_000);
    let _ = Roots::from_pem(data);
});
