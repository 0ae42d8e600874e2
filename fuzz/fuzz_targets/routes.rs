//! Routing as notary's router does it: a cleaned path is a fixed point of cleaning, and
//! every path (percent-decoded bytes, any method) routes without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use trustbridge_server::routes::{clean_path, route};

const METHODS: [http::Method; 5] = [
    http::Method::GET,
    http::Method::POST,
    http::Method::DELETE,
    http::Method::HEAD,
    http::Method::PUT,
];

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let path = String::from_utf8_lossy(rest);
    match clean_path(&path) {
        Some(clean) => assert_eq!(clean_path(&clean), None, "cleaning {path:?} twice"),
        None => {
            let r = route(&METHODS[m as usize % METHODS.len()], &path);
            let _ = (r.name(), r.gun(), r.dct_read(), r.body_limit());
        }
    }
});
