//! Role bodies as notary's Go structs define them (`tuf/data/{root,targets,snapshot,timestamp,
//! roles,types}.go`). Field names are the JSON names; canonical JSON sorts them, so declaration
//! order does not matter for the bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::error::Error;
use crate::gotime::GoTime;
use crate::keys::PublicKey;

pub use super::hashes::Hashes;

/// What every role body has, and its structural rules.
pub trait Role: Serialize + DeserializeOwned + Clone {
    /// The capitalised `_type` notary writes.
    const TYPE: &'static str;
    fn type_field(&self) -> &str;
    fn expires(&self) -> &GoTime;
    fn version(&self) -> i64;
    /// Notary's `isValid*Structure` for this body, reported against `role`.
    fn check_structure(&self, role: &str) -> Result<(), Error>;
}

/// `{"keyids":[...],"threshold":N}` in root's `roles`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootRole {
    #[serde(deserialize_with = "null_as_default")]
    pub keyids: Vec<String>,
    pub threshold: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    #[serde(rename = "_type")]
    pub type_: String,
    pub consistent_snapshot: bool,
    pub expires: GoTime,
    #[serde(deserialize_with = "null_as_default")]
    pub keys: BTreeMap<String, PublicKey>,
    #[serde(deserialize_with = "null_as_default")]
    pub roles: BTreeMap<String, RootRole>,
    pub version: i64,
}

/// Length, hashes and optional `custom` of a target or of a metadata file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// Go's `*json.RawMessage` with omitempty: `null` and absence are the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
    pub hashes: Hashes,
    pub length: i64,
}

impl FileMeta {
    /// sha256 + sha512 + length of `bytes`, as notary's `NewFileMeta` writes for metadata.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut hashes = Hashes::new();
        hashes.insert(
            "sha256".into(),
            ring::digest::digest(&ring::digest::SHA256, bytes)
                .as_ref()
                .to_vec(),
        );
        hashes.insert(
            "sha512".into(),
            ring::digest::digest(&ring::digest::SHA512, bytes)
                .as_ref()
                .to_vec(),
        );
        FileMeta {
            custom: None,
            hashes,
            length: bytes.len() as i64,
        }
    }

    /// The sha256 digest, if present and 32 bytes long.
    pub fn sha256(&self) -> Option<&[u8]> {
        self.hashes
            .get("sha256")
            .map(Vec::as_slice)
            .filter(|h| h.len() == 32)
    }

    /// Notary's `CheckHashes` (+ length): at least one of sha256/sha512 must be listed and
    /// every listed one must match `bytes`.
    pub fn check(&self, role: &str, name: &str, bytes: &[u8]) -> Result<(), Error> {
        if self.length != bytes.len() as i64 {
            return Err(Error::LengthMismatch {
                role: role.into(),
                name: name.into(),
                expected: self.length,
                found: bytes.len() as i64,
            });
        }
        let mut checked = 0;
        for (alg, digest_alg) in [
            ("sha256", &ring::digest::SHA256),
            ("sha512", &ring::digest::SHA512),
        ] {
            if let Some(expected) = self.hashes.get(alg) {
                let found = ring::digest::digest(digest_alg, bytes);
                if found.as_ref() != expected.as_slice() {
                    return Err(Error::HashMismatch {
                        role: role.into(),
                        name: name.into(),
                        algorithm: alg.into(),
                        expected: hex::encode(expected),
                        found: hex::encode(found.as_ref()),
                    });
                }
                checked += 1;
            }
        }
        if checked == 0 {
            return Err(Error::NoHashes {
                role: role.into(),
                name: name.into(),
            });
        }
        Ok(())
    }
}

/// A delegation entry in a targets role's `delegations.roles`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationRole {
    #[serde(deserialize_with = "null_as_default")]
    pub keyids: Vec<String>,
    pub name: String,
    /// Path prefixes (not globs); `""` means every path. Omitted when empty, as Go does.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub paths: Vec<String>,
    /// TUF's hashed-bin delegation field. Notary 0.7.0 no longer models it (its `Role` struct
    /// drops it on re-serialisation), so a Go server's snapshot hashes of such a file differ;
    /// we read and keep it only so old metadata still parses and verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    pub threshold: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegations {
    #[serde(default, deserialize_with = "null_as_default")]
    pub keys: BTreeMap<String, PublicKey>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub roles: Vec<DelegationRole>,
}

/// Top-level `targets` and every delegation `targets/...`: both have `_type` "Targets".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    #[serde(rename = "_type")]
    pub type_: String,
    /// Always written, even empty: a missing one re-serialises in Go as
    /// `{"keys":null,"roles":null}` and breaks hashes.
    #[serde(default)]
    pub delegations: Delegations,
    pub expires: GoTime,
    #[serde(deserialize_with = "null_as_default")]
    pub targets: BTreeMap<String, FileMeta>,
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(rename = "_type")]
    pub type_: String,
    pub expires: GoTime,
    #[serde(deserialize_with = "null_as_default")]
    pub meta: BTreeMap<String, FileMeta>,
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    #[serde(rename = "_type")]
    pub type_: String,
    pub expires: GoTime,
    #[serde(deserialize_with = "null_as_default")]
    pub meta: BTreeMap<String, FileMeta>,
    pub version: i64,
}

pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

pub(crate) fn check_type(role: &str, expected: &str, found: &str) -> Result<(), Error> {
    if found != expected {
        return Err(Error::WrongType {
            role: role.into(),
            expected: expected.into(),
            found: found.into(),
        });
    }
    Ok(())
}

/// Notary's `data.ValidRole`: a base role, or `targets/...` matching `^[-a-z0-9_/]+$`, shorter
/// than 256 bytes and already clean (`path.Clean(name) == name`).
pub fn valid_role_name(name: &str) -> bool {
    if matches!(name, "root" | "targets" | "snapshot" | "timestamp") {
        return true;
    }
    name.starts_with("targets/")
        && name.len() < 256
        && name
            .bytes()
            .all(|b| matches!(b, b'-' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'/'))
        && !name.ends_with('/')
        && name
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

impl Root {
    /// Version 1 of a root listing one key per base role with threshold 1, expiring after
    /// notary's default 10 years: what `notary init` (and docker's first push) writes.
    pub fn initial(keys: [(&str, PublicKey); 4]) -> Root {
        let mut map = BTreeMap::new();
        let mut roles = BTreeMap::new();
        for (role, key) in keys {
            roles.insert(
                role.to_string(),
                RootRole {
                    keyids: vec![key.id()],
                    threshold: 1,
                },
            );
            map.insert(key.id(), key);
        }
        Root {
            type_: Self::TYPE.into(),
            consistent_snapshot: false,
            expires: GoTime::now().plus_years(super::expiry::ROOT_YEARS),
            keys: map,
            roles,
            version: 1,
        }
    }
}

impl Role for Root {
    const TYPE: &'static str = "Root";
    fn type_field(&self) -> &str {
        &self.type_
    }
    fn expires(&self) -> &GoTime {
        &self.expires
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn check_structure(&self, role: &str) -> Result<(), Error> {
        check_type(role, Self::TYPE, &self.type_)?;
        for base in ["root", "targets", "snapshot", "timestamp"] {
            let r = self
                .roles
                .get(base)
                .ok_or_else(|| Error::structure(role, format!("missing {base} role")))?;
            if r.threshold < 1 {
                return Err(Error::structure(
                    role,
                    format!("{base} role has invalid threshold {}", r.threshold),
                ));
            }
            for id in &r.keyids {
                if !self.keys.contains_key(id) {
                    return Err(Error::structure(
                        role,
                        format!("key ID {id} of the {base} role is not in keys"),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Role for Targets {
    const TYPE: &'static str = "Targets";
    fn type_field(&self) -> &str {
        &self.type_
    }
    fn expires(&self) -> &GoTime {
        &self.expires
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn check_structure(&self, role: &str) -> Result<(), Error> {
        check_type(role, Self::TYPE, &self.type_)?;
        check_delegations(role, &self.delegations)
    }
}

/// Notary's delegation checks in `isValidTargetsStructure`: every delegation a direct child of
/// `role`, with a threshold of at least one and its key IDs among `delegations.keys`.
pub(crate) fn check_delegations(role: &str, delegations: &Delegations) -> Result<(), Error> {
    for d in &delegations.roles {
        if !valid_role_name(&d.name) || d.name == "targets" || parent_of(&d.name) != role {
            return Err(Error::structure(
                role,
                format!("delegation {} is not a direct child of {role}", d.name),
            ));
        }
        if d.threshold < 1 {
            return Err(Error::structure(
                role,
                format!(
                    "delegation {} has invalid threshold {}",
                    d.name, d.threshold
                ),
            ));
        }
        for id in &d.keyids {
            if !delegations.keys.contains_key(id) {
                return Err(Error::structure(
                    role,
                    format!(
                        "key ID {id} of delegation {} is not in delegations.keys",
                        d.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `path.Dir` of a role name.
pub(crate) fn parent_of(name: &str) -> &str {
    name.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

fn check_meta_sha256(
    role: &str,
    meta: &BTreeMap<String, FileMeta>,
    name: &str,
) -> Result<(), Error> {
    match meta.get(name) {
        None => Err(Error::MissingMeta {
            role: role.into(),
            missing: name.into(),
        }),
        Some(m) if m.sha256().is_none() => Err(Error::structure(
            role,
            format!("{name} has no valid sha256 hash"),
        )),
        Some(_) => Ok(()),
    }
}

impl Role for Snapshot {
    const TYPE: &'static str = "Snapshot";
    fn type_field(&self) -> &str {
        &self.type_
    }
    fn expires(&self) -> &GoTime {
        &self.expires
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn check_structure(&self, role: &str) -> Result<(), Error> {
        check_type(role, Self::TYPE, &self.type_)?;
        check_meta_sha256(role, &self.meta, "root")?;
        check_meta_sha256(role, &self.meta, "targets")
    }
}

impl Role for Timestamp {
    const TYPE: &'static str = "Timestamp";
    fn type_field(&self) -> &str {
        &self.type_
    }
    fn expires(&self) -> &GoTime {
        &self.expires
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn check_structure(&self, role: &str) -> Result<(), Error> {
        check_type(role, Self::TYPE, &self.type_)?;
        check_meta_sha256(role, &self.meta, "snapshot")
    }
}
