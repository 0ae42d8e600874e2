//! Notary's TUF metadata: the signed envelope and the four role bodies.
//!
//! Notary 0.7.0 writes pre-1.0 TUF: capitalised `_type`, base64 hashes and signatures, no
//! `spec_version`. tough's schema types require TUF 1.0 fields, so the format is modelled here.
//! Every parsed document keeps the bytes it was read from ([`Signed::raw`]); hashes in snapshot
//! and timestamp are over stored bytes, never over a re-serialisation.

mod roles;
mod signed;

pub use roles::{
    DelegationRole, Delegations, FileMeta, Hashes, Role, Root, RootRole, Snapshot, Targets,
    Timestamp, valid_role_name,
};
pub use signed::{Signature, Signed};

/// Default expiries notary's server and client set (`server.go`/`client.go` init).
pub mod expiry {
    use time::Duration;
    pub const ROOT_YEARS: i32 = 10;
    pub const TARGETS_YEARS: i32 = 3;
    pub const SNAPSHOT_YEARS: i32 = 3;
    pub const TIMESTAMP: Duration = Duration::days(14);
}

/// Serde helpers for Go's `[]byte`: standard base64 with padding.
pub(crate) mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// Serde helper for `map[string][]byte` (hashes).
pub(crate) mod b64_map {
    use std::collections::BTreeMap;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<String, Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(map.len()))?;
        for (k, v) in map {
            m.serialize_entry(k, &STANDARD.encode(v))?;
        }
        m.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Vec<u8>>, D::Error> {
        let raw = Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default();
        raw.into_iter()
            .map(|(k, v)| {
                STANDARD
                    .decode(v.as_bytes())
                    .map(|b| (k, b))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}
