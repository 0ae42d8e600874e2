//! A targets role read for resolution only: its delegations, expiry and version, and of each
//! target its name and SHA-256 digest — what the Cosign bridge and the control room need to
//! know which tag a DCT client resolves to which digest.
//!
//! A full [`super::Targets`] keeps per target an owned name, a `FileMeta` with `custom` and every
//! hash: about 250 bytes and four allocations each, 25 MiB for a 100k-target file, held while
//! the repository's summary is computed. Here the names share one buffer and each target is 44
//! bytes. The file is accepted and refused exactly as the full parse does (same fields, same
//! types, base64 digests checked, `null` as empty, last duplicate wins), so both readings agree
//! on which roles exist.

use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::roles::{Delegations, check_delegations, check_type, null_as_default};
use crate::error::Error;
use crate::gotime::GoTime;

/// The body of a targets role (top-level or delegation), reduced to what resolution reads.
#[derive(Clone, Debug, Deserialize)]
pub struct TargetsIndex {
    #[serde(rename = "_type")]
    pub type_: String,
    #[serde(default)]
    pub delegations: Delegations,
    pub expires: GoTime,
    #[serde(deserialize_with = "null_as_default")]
    targets: Names,
    pub version: i64,
}

/// The targets' names in one buffer, and per target where its name lies and its digest,
/// sorted by name with one entry per name (a JSON object's meaning).
#[derive(Clone, Debug, Default)]
struct Names {
    text: String,
    entries: Vec<Entry>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    start: u32,
    len: u32,
    /// `hashes.sha256` when it is 32 bytes (as [`super::FileMeta::sha256`] reads it).
    sha256: Option<[u8; 32]>,
    /// What TUF's rules for a target entry find wrong (bits of [`Problem`]); 0 for none.
    problems: u8,
}

/// What an entry can break of the rules the server enforces on upload (TUF's, which notary
/// did not): a negative length, no hash at all, a SHA-256 or SHA-512 of the wrong size.
struct Problem;
impl Problem {
    const NEGATIVE_LENGTH: u8 = 1;
    const NO_HASHES: u8 = 2;
    const SHA256_SIZE: u8 = 4;
    const SHA512_SIZE: u8 = 8;
}

impl TargetsIndex {
    /// The targets, by name, each with its SHA-256 digest when it lists one of 32 bytes.
    pub fn targets(&self) -> impl ExactSizeIterator<Item = (&str, &Option<[u8; 32]>)> {
        self.targets.entries.iter().map(|e| {
            let name = &self.targets.text[e.start as usize..(e.start + e.len) as usize];
            (name, &e.sha256)
        })
    }

    /// Whether every target has a non-negative length, at least one hash, and a SHA-256 /
    /// SHA-512 (when listed) of the right size. The server refuses an upload otherwise; its
    /// message comes from the full parse (see the server's `check_entries`).
    pub fn entries_well_formed(&self) -> bool {
        self.targets.entries.iter().all(|e| e.problems == 0)
    }

    pub fn len(&self) -> usize {
        self.targets.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.entries.is_empty()
    }
}

/// A `TargetsIndex` is read and verified like any role (`Signed::from_shared`,
/// `Signed::verify`, with the full body's `_type` and delegation checks); it is never
/// written: it has no bytes of its own to sign or serve.
impl super::Role for TargetsIndex {
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

/// Refused: serialising a reduced reading would write a different file (lengths, `custom`
/// and other hashes are not kept). Sign and write a full [`super::Targets`].
impl serde::Serialize for TargetsIndex {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "a TargetsIndex is a reduced reading of a targets file and cannot be written",
        ))
    }
}

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(NamesVisitor)
    }
}

struct NamesVisitor;

impl<'de> Visitor<'de> for NamesVisitor {
    type Value = Names;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of target name to file metadata")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Names, M::Error> {
        let mut names = Names::default();
        let mut raw: Vec<Entry> = Vec::with_capacity(m.size_hint().unwrap_or(0));
        loop {
            let start = names.text.len();
            if m.next_key_seed(AppendTo(&mut names.text))?.is_none() {
                break;
            }
            let meta: Meta = m.next_value()?;
            let (start, len) = match (u32::try_from(start), u32::try_from(names.text.len())) {
                (Ok(s), Ok(end)) => (s, end - s),
                _ => return Err(serde::de::Error::custom("targets names over 4 GiB")),
            };
            let h = meta.hashes;
            let problems = [
                (meta.length < 0, Problem::NEGATIVE_LENGTH),
                (h.algorithms == 0, Problem::NO_HASHES),
                (h.sha256_len.is_some_and(|n| n != 32), Problem::SHA256_SIZE),
                (h.sha512_len.is_some_and(|n| n != 64), Problem::SHA512_SIZE),
            ]
            .iter()
            .filter(|(bad, _)| *bad)
            .fold(0, |acc, (_, bit)| acc | bit);
            raw.push(Entry {
                start,
                len,
                sha256: h.sha256,
                problems,
            });
        }
        let name = |e: &Entry| &names.text[e.start as usize..(e.start + e.len) as usize];
        // A stable sort keeps duplicates in file order; the last of each run wins, as a
        // map's insert does.
        raw.sort_by(|a, b| name(a).cmp(name(b)));
        let mut entries: Vec<Entry> = Vec::with_capacity(raw.len());
        for e in raw {
            match entries.last_mut() {
                Some(last) if name(last) == name(&e) => *last = e,
                _ => entries.push(e),
            }
        }
        entries.shrink_to_fit();
        names.text.shrink_to_fit();
        names.entries = entries;
        Ok(names)
    }
}

/// A map key appended to the shared names buffer (escaped or not) instead of allocated.
struct AppendTo<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for AppendTo<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for AppendTo<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a target name")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
}

/// A target's `FileMeta` as the full parse accepts it: `custom` anything, `hashes` a map of
/// base64 digests (or null), `length` an integer; unknown fields ignored.
#[derive(Deserialize)]
struct Meta {
    #[serde(default, rename = "custom")]
    _custom: Option<IgnoredAny>,
    hashes: HashFacts,
    length: i64,
}

/// `hashes` with every digest checked as base64: a 32-byte `sha256` kept, and what the
/// entry rules need to know of the rest (each algorithm's last digest counts, as in a map).
#[derive(Default)]
struct HashFacts {
    sha256: Option<[u8; 32]>,
    /// Distinct algorithms listed.
    algorithms: usize,
    sha256_len: Option<usize>,
    sha512_len: Option<usize>,
}

impl<'de> Deserialize<'de> for HashFacts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_option(HashesVisitor)
    }
}

struct HashesVisitor;

impl<'de> Visitor<'de> for HashesVisitor {
    type Value = HashFacts;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of hash algorithm to base64 digest")
    }
    fn visit_none<E>(self) -> Result<HashFacts, E> {
        Ok(HashFacts::default())
    }
    fn visit_unit<E>(self) -> Result<HashFacts, E> {
        Ok(HashFacts::default())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<HashFacts, D::Error> {
        d.deserialize_map(HashesVisitor)
    }
    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<HashFacts, M::Error> {
        let mut out = HashFacts::default();
        let mut others: Vec<String> = Vec::new();
        while let Some(alg) = m.next_key_seed(AlgName)? {
            let digest = m.next_value_seed(Base64)?;
            match alg {
                Alg::Sha256 => {
                    // The last one given wins; one of another length reads as none.
                    out.sha256 = <[u8; 32]>::try_from(digest.as_slice()).ok();
                    out.sha256_len = Some(digest.len());
                }
                Alg::Sha512 => out.sha512_len = Some(digest.len()),
                Alg::Other(name) => {
                    if !others.contains(&name) {
                        others.push(name);
                    }
                }
            }
        }
        out.algorithms = others.len()
            + usize::from(out.sha256_len.is_some())
            + usize::from(out.sha512_len.is_some());
        Ok(out)
    }
}

/// A `hashes` key: the two algorithms the rules name without allocating, others by name
/// (rare: counted so `{"md5": ...}` alone still counts as a hash, as in the full parse).
enum Alg {
    Sha256,
    Sha512,
    Other(String),
}

struct AlgName;

impl<'de> DeserializeSeed<'de> for AlgName {
    type Value = Alg;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Alg, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for AlgName {
    type Value = Alg;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a hash algorithm")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Alg, E> {
        Ok(match v {
            "sha256" => Alg::Sha256,
            "sha512" => Alg::Sha512,
            other => Alg::Other(other.to_string()),
        })
    }
}

/// A base64 digest, decoded (refused as [`super::Hashes`] refuses it).
struct Base64;

impl<'de> DeserializeSeed<'de> for Base64 {
    type Value = Vec<u8>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Base64 {
    type Value = Vec<u8>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a base64 digest")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_bytes())
            .map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{Role as _, Targets};

    /// Both readings of `json` (a `signed` body): accepted alike, and when accepted the same
    /// names, digests and delegations.
    fn agree(json: &str) {
        let full = serde_json::from_str::<Targets>(json);
        let index = serde_json::from_str::<TargetsIndex>(json);
        match (&full, &index) {
            (Ok(f), Ok(i)) => {
                let from_full: Vec<(String, Option<[u8; 32]>)> = f
                    .targets
                    .iter()
                    .map(|(n, m)| (n.clone(), m.sha256().map(|h| h.try_into().unwrap())))
                    .collect();
                let from_index: Vec<(String, Option<[u8; 32]>)> =
                    i.targets().map(|(n, h)| (n.to_string(), *h)).collect();
                assert_eq!(from_full, from_index, "{json}");
                assert_eq!(f.delegations, i.delegations);
                assert_eq!(f.expires(), &i.expires);
                assert_eq!(f.version, i.version);
                let rules_hold = f.targets.values().all(|m| {
                    m.length >= 0
                        && !m.hashes.is_empty()
                        && m.hashes.get("sha256").is_none_or(|h| h.len() == 32)
                        && m.hashes.get("sha512").is_none_or(|h| h.len() == 64)
                });
                assert_eq!(rules_hold, i.entries_well_formed(), "{json}");
                assert_eq!(
                    f.check_structure("targets").is_ok(),
                    i.check_structure("targets").is_ok()
                );
            }
            (Err(_), Err(_)) => {}
            _ => panic!("full {full:?} vs index {index:?} for {json}"),
        }
    }

    #[test]
    fn reads_what_the_full_parse_reads_and_refuses_what_it_refuses() {
        let h = "\"2VDT3IRPhKbXuPHPn/GZDZx7JkCa3ZLvoPnp/cmQ8Ms=\"";
        let head = r#""_type":"Targets","delegations":{"keys":{},"roles":[]},"expires":"2030-01-01T00:00:00Z","version":3"#;
        for targets in [
            format!(
                r#"{{"b":{{"hashes":{{"sha256":{h}}},"length":1}},"a":{{"hashes":{{"sha512":"AQ=="}},"length":2}}}}"#
            ),
            // Escapes, duplicates (the last wins), other hash lengths, custom, unknown fields.
            format!(
                r#"{{"t\u00e4g\n":{{"hashes":{{"sha256":"AQ=="}},"length":1,"custom":{{"x":[1]}},"z":0}},"d":{{"hashes":{{"sha256":{h}}},"length":1}},"d":{{"hashes":null,"length":9}}}}"#
            ),
            "null".into(),
            "{}".into(),
            // Accepted by both, against the entry rules: a negative length, no hashes, a
            // SHA-512 of the wrong size, a last SHA-256 of the wrong size; another algorithm
            // alone is a hash.
            r#"{"a":{"hashes":{"sha256":"AQ=="},"length":-1}}"#.into(),
            r#"{"a":{"hashes":{},"length":1}}"#.into(),
            r#"{"a":{"hashes":null,"length":1}}"#.into(),
            format!(r#"{{"a":{{"hashes":{{"sha256":{h},"sha512":"AQ=="}},"length":1}}}}"#),
            format!(r#"{{"a":{{"hashes":{{"sha256":{h},"sha256":"AQ=="}},"length":1}}}}"#),
            format!(r#"{{"a":{{"hashes":{{"sha256":"AQ==","sha256":{h}}},"length":1}}}}"#),
            r#"{"a":{"hashes":{"md5":"AQ==","md5":"Ag=="},"length":1}}"#.into(),
            // Refused by both: a digest that is not base64, a null digest, a missing length,
            // a length that is not an integer, a duplicate field, no hashes.
            r#"{"a":{"hashes":{"sha256":"!"},"length":1}}"#.into(),
            r#"{"a":{"hashes":{"sha256":null},"length":1}}"#.into(),
            r#"{"a":{"hashes":{}}}"#.into(),
            r#"{"a":{"hashes":{},"length":1.5}}"#.into(),
            r#"{"a":{"hashes":{},"length":1,"length":2}}"#.into(),
            r#"{"a":{"length":1}}"#.into(),
            r#"[]"#.into(),
        ] {
            agree(&format!(r#"{{{head},"targets":{targets}}}"#));
        }
        // No targets field at all, and a bad delegation: refused / flagged alike.
        agree(&format!("{{{head}}}"));
        agree(
            r#"{"_type":"Targets","delegations":{"keys":{},"roles":[{"name":"targets/x","keyids":["k"],"paths":[""],"threshold":1}]},"expires":"2030-01-01T00:00:00Z","version":1,"targets":{}}"#,
        );
    }
}
