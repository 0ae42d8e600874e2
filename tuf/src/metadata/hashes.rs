//! `map[string][]byte` of hash algorithm to digest (base64 on the wire), as a sorted list.
//!
//! Every target of a targets file has one: a `BTreeMap` spends a whole node (about 540 bytes)
//! on its one or two entries, which made a 100k-target file cost 54 MiB to parse (measured with
//! heaptrack under bench/scale.sh); a list of exactly its entries costs a tenth of that. The
//! order and meaning are a map's: sorted by algorithm, one digest per algorithm (the last one
//! given wins, as in Go's map decoding).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hashes(Vec<(String, Vec<u8>)>);

impl Hashes {
    pub fn new() -> Self {
        Hashes(Vec::new())
    }

    fn find(&self, alg: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(alg))
    }

    /// The digest of `alg`, if listed.
    pub fn get(&self, alg: &str) -> Option<&Vec<u8>> {
        self.find(alg).ok().map(|i| &self.0[i].1)
    }

    /// Set the digest of `alg`; returns the one it replaced.
    pub fn insert(&mut self, alg: String, digest: Vec<u8>) -> Option<Vec<u8>> {
        match self.find(&alg) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, digest)),
            Err(i) => {
                self.0.insert(i, (alg, digest));
                None
            }
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut Vec<u8>) -> bool) {
        self.0.retain_mut(|(k, v)| keep(k, v));
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// (algorithm, digest), sorted by algorithm.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Vec<u8>)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl FromIterator<(String, Vec<u8>)> for Hashes {
    fn from_iter<I: IntoIterator<Item = (String, Vec<u8>)>>(items: I) -> Self {
        let mut h = Hashes::new();
        for (k, v) in items {
            h.insert(k, v);
        }
        h
    }
}

impl<const N: usize> From<[(String, Vec<u8>); N]> for Hashes {
    fn from(items: [(String, Vec<u8>); N]) -> Self {
        items.into_iter().collect()
    }
}

impl Serialize for Hashes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, &STANDARD.encode(v))?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Hashes {
    /// A JSON object of base64 strings; `null` is an empty map (Go's nil map).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Hashes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of hash algorithm to base64 digest")
            }
            fn visit_none<E>(self) -> Result<Hashes, E> {
                Ok(Hashes::new())
            }
            fn visit_unit<E>(self) -> Result<Hashes, E> {
                Ok(Hashes::new())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Hashes, D::Error> {
                d.deserialize_map(Visit)
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut m: M) -> Result<Hashes, M::Error> {
                let mut h = Hashes(Vec::with_capacity(m.size_hint().unwrap_or(2).min(8)));
                while let Some((k, v)) = m.next_entry::<String, String>()? {
                    let digest = STANDARD
                        .decode(v.as_bytes())
                        .map_err(serde::de::Error::custom)?;
                    h.insert(k, digest);
                }
                h.0.shrink_to_fit();
                Ok(h)
            }
        }
        d.deserialize_option(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_as_the_map_it_stands_for() {
        let h: Hashes =
            serde_json::from_str(r#"{"sha512":"AQ==","sha256":"Ag==","sha256":"Aw=="}"#).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h.get("sha256"), Some(&vec![3]), "the last one given wins");
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"sha256":"Aw==","sha512":"AQ=="}"#
        );
        assert!(serde_json::from_str::<Hashes>("null").unwrap().is_empty());
        assert!(serde_json::from_str::<Hashes>(r#"{"sha256":"!"}"#).is_err());
        assert!(serde_json::from_str::<Hashes>(r#"{"sha256":null}"#).is_err());
    }
}
