//! Whether JSON text is already canonical, without writing the canonical form: a client that
//! signs as notary does uploads `signed` in canonical form, so its signatures can be checked
//! over the uploaded bytes themselves instead of a canonical copy (9.5 MiB, plus a sorted
//! member list per object, for a 100k-target file). Anything this cannot prove canonical is
//! canonicalised by [`crate::cjson::canonical_raw`] as before.
//!
//! Canonical (docker/go canonical/json): no whitespace; object keys bytewise ascending, each
//! once; strings escape only `"` and `\`; numbers are integers. A value's text is checked
//! piece by piece (scalars exactly, keys in order), and a container's text length must equal
//! the sum of its parts' plus its brackets, colons and commas, which rules out whitespace
//! between them.

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// serde_json's own nesting limit.
const MAX_DEPTH: usize = 128;

/// Whether `raw` is exactly its canonical JSON.
pub fn is_canonical(raw: &RawValue) -> bool {
    check(raw.get(), 0)
}

fn check(text: &str, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match text.as_bytes().first() {
        Some(b'{') => container(text, depth, true),
        Some(b'[') => container(text, depth, false),
        Some(b'"') => string(text),
        Some(b't') => text == "true",
        Some(b'f') => text == "false",
        Some(b'n') => text == "null",
        Some(b'-' | b'0'..=b'9') => integer(text),
        _ => false,
    }
}

/// A string is canonical when only `"` and `\` are escaped (as `\"` and `\\`).
fn string(text: &str) -> bool {
    let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return false;
    };
    let b = inner.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => match b.get(i + 1) {
                Some(b'"' | b'\\') => i += 2,
                _ => return false,
            },
            b'"' => return false,
            _ => i += 1,
        }
    }
    true
}

/// An integer as Go's canonical encoder prints it (no `-0`, no leading zeros, no exponent).
fn integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let ok = !digits.is_empty()
        && digits.bytes().all(|c| c.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    ok && (text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok())
}

fn container(text: &str, depth: usize, object: bool) -> bool {
    let mut de = serde_json::Deserializer::from_str(text);
    let v = Walk { depth };
    let parts = if object {
        de.deserialize_map(v)
    } else {
        de.deserialize_seq(v)
    };
    // The parts' lengths, plus the brackets and separators, must be the whole text.
    matches!(parts, Ok(Some(len)) if len == text.len()) && de.end().is_ok()
}

/// Walks one container, checking each member; its canonical length if every member is
/// canonical and (objects) the keys ascend strictly.
struct Walk {
    depth: usize,
}

impl<'de> Visitor<'de> for Walk {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object or array")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Option<usize>, M::Error> {
        let mut len = 2;
        let mut previous: Option<&'de str> = None;
        let mut ok = true;
        let mut n = 0;
        while let Some(key) = m.next_key::<&'de RawValue>()? {
            let value = m.next_value::<&'de RawValue>()?;
            if !ok {
                continue;
            }
            let k = key.get();
            // The key's text as written; unescaped it must ascend strictly.
            ok = string(k)
                && previous.is_none_or(|p| unescape_order(p, k))
                && check(value.get(), self.depth + 1);
            previous = Some(k);
            len += k.len() + 1 + value.get().len();
            n += 1;
        }
        Ok(ok.then_some(len + n.max(1) - 1))
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut s: S) -> Result<Option<usize>, S::Error> {
        let mut len = 2;
        let mut ok = true;
        let mut n = 0;
        while let Some(item) = s.next_element::<&'de RawValue>()? {
            if ok {
                ok = check(item.get(), self.depth + 1);
            }
            len += item.get().len();
            n += 1;
        }
        Ok(ok.then_some(len + n.max(1) - 1))
    }
}

/// Whether key text `a` sorts strictly before key text `b` once unescaped (both are canonical
/// strings, so the only escapes are `\"` and `\\`).
fn unescape_order(a: &str, b: &str) -> bool {
    let un = |s: &str| -> Vec<u8> {
        let inner = &s.as_bytes()[1..s.len() - 1];
        let mut out = Vec::with_capacity(inner.len());
        let mut i = 0;
        while i < inner.len() {
            if inner[i] == b'\\' {
                i += 1;
            }
            if let Some(&c) = inner.get(i) {
                out.push(c);
            }
            i += 1;
        }
        out
    };
    if !a.contains('\\') && !b.contains('\\') {
        return a.as_bytes()[1..a.len() - 1] < b.as_bytes()[1..b.len() - 1];
    }
    un(a) < un(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(t: &str) -> &RawValue {
        serde_json::from_str(t).unwrap()
    }

    #[test]
    fn canonical_text_is_recognised_and_anything_else_is_not() {
        for t in [
            r#"{"a":1,"b":[true,false,null,"x\"y\\z"],"c":{}}"#,
            r#"[]"#,
            r#"{}"#,
            r#""é<&>""#,
            r#"-12"#,
            r#"{"":0,"a":{"a":[[]]}}"#,
        ] {
            assert!(is_canonical(raw(t)), "{t}");
            assert_eq!(
                crate::cjson::canonical_raw(raw(t)).unwrap(),
                t.as_bytes(),
                "{t}"
            );
        }
        for t in [
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":1}"#,
            r#"{"a": 1}"#,
            r#"{"a":1 }"#,
            r#"[1, 2]"#,
            r#""\u0041""#,
            r#""a\/b""#,
            r#"1.0"#,
            r#"1e3"#,
            r#"-0"#,
            r#"{"a":[1,{"c":2,"b":3}]}"#,
        ] {
            assert!(!is_canonical(raw(t)), "{t}");
        }
    }
}
