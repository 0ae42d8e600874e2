//! The update upload parser the server runs on every POST: multipart with the boundary `XX`,
//! parts named by file name, JSON envelopes. It must refuse (with a typed error), never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let body = bytes::Bytes::copy_from_slice(data);
    if let Ok(parts) = rt().block_on(trustbridge_server::upload::parts(body, "XX".into())) {
        // Whatever is accepted names a valid role and carries the version its JSON says. The
        // envelope is read as Go's decoder reads it: bytes that are not UTF-8 inside a field it
        // skips are accepted here (validation, which canonicalises `signed`, refuses them), so
        // the version is compared where the whole part is strict JSON (found by this target).
        for (role, (version, bytes)) in &parts {
            assert!(trustbridge_tuf::metadata::valid_role_name(role), "{role:?}");
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
                assert_eq!(v["signed"]["version"].as_i64(), Some(*version));
            }
        }
    }
});
