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
        // Whatever is accepted names a valid role and carries the version its JSON says.
        for (role, (version, bytes)) in &parts {
            assert!(trustbridge_tuf::metadata::valid_role_name(role), "{role:?}");
            let v: serde_json::Value =
                serde_json::from_slice(bytes).expect("accepted part is JSON");
            assert_eq!(v["signed"]["version"].as_i64(), Some(*version));
        }
    }
});
