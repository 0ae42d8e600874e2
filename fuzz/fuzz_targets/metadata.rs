//! Every metadata type's parse and check: the first byte picks the role, the rest is the
//! file. A file that parses is then checked as the first version of a repository's history
//! (signatures against its own root, versions, expiry), as imports and the client do.
#![no_main]
use libfuzzer_sys::fuzz_target;
use trustbridge_tuf::history::History;
use trustbridge_tuf::{GoTime, Root, Signed, Snapshot, Targets, Timestamp};

const ROLES: [&str; 5] = [
    "root",
    "targets",
    "snapshot",
    "timestamp",
    "targets/releases",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, file)) = data.split_first() else {
        return;
    };
    let role = ROLES[pick as usize % ROLES.len()];
    let now = GoTime::now();
    match role {
        "root" => {
            if let Ok(r) = Signed::<Root>::from_bytes(role, file) {
                let _ = r.check_version(role, 1);
                let _ = r.check_expiry(role, &now);
                let _ = r.sha256_hex();
                for k in r.signed.keys.values() {
                    let _ = k.canonical_id();
                }
            }
        }
        "snapshot" => {
            if let Ok(s) = Signed::<Snapshot>::from_bytes(role, file) {
                for m in s.signed.meta.values() {
                    let _ = m.check(role, "x", file);
                }
            }
        }
        "timestamp" => {
            let _ = Signed::<Timestamp>::from_bytes(role, file);
        }
        _ => {
            if let Ok(t) = Signed::<Targets>::from_bytes(role, file) {
                let _ = t.check_expiry(role, &now);
            }
        }
    }
    let mut history = History::new("example.com/fuzz");
    let _ = history.check(role, 1, file, &now);
});
