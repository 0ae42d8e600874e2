//! Notary's two JSON byte forms.
//!
//! * **Canonical** (what signatures cover): Go notary marshals the `signed` value with
//!   `github.com/docker/go/canonical/json` in canonical mode. Object keys are sorted bytewise,
//!   there is no whitespace, only integers are allowed, and inside strings *only* `"` and `\`
//!   are escaped: every other byte — `<>&`, control characters, U+2028/U+2029, any UTF-8 —
//!   is written raw.
//! * **File** (what is stored, served, and hashed by snapshot/timestamp): the envelope
//!   `{"signed":C',"signatures":[...]}` is written by Go's ordinary encoder, which embeds the
//!   canonical bytes through `compact(escapeHTML=true)`. That step rewrites `<`, `>`, `&` as
//!   `\u003c`, `\u003e`, `\u0026` and U+2028/U+2029 as `\u2028`/`\u2029`, and rejects raw
//!   control characters (they are invalid JSON), so such metadata cannot be written at all.
//!
//! olpc-cjson reproduces the canonical form for ordinary metadata but not the file form's
//! U+2028/U+2029 handling, and the file form is the one that is hashed, so both are written
//! here over `serde_json::Value` (whose object map is a `BTreeMap`: bytewise key order).

use serde_json::Value;

use crate::error::Error;

/// Canonical JSON of a value: the bytes a notary signature covers.
pub fn canonical(value: &Value) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out)?;
    Ok(out)
}

/// Canonical JSON of a value still in its text (`signed` as it came in), without building a
/// `Value` tree: the same bytes as [`canonical`] of that text parsed, at a fraction of the
/// memory (one level's keys at a time, borrowed where they have no escapes). A targets file
/// of 100k entries would otherwise hold a `Value` tree several times its size while its
/// signatures are checked.
pub fn canonical_raw(raw: &serde_json::value::RawValue) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(raw.get().len());
    write_raw(raw, &mut out, 0)?;
    Ok(out)
}

/// serde_json's own nesting limit: deeper text never parses into a `Value` either.
const MAX_DEPTH: usize = 128;

fn write_raw(
    raw: &serde_json::value::RawValue,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), Error> {
    use serde_json::value::RawValue;
    if depth > MAX_DEPTH {
        return Err(Error::Canonical("JSON nested too deeply".into()));
    }
    let text = raw.get();
    let json = |e: serde_json::Error| Error::Json(e.to_string());
    match text.trim_start().as_bytes().first() {
        Some(b'{') => {
            let Entries(mut entries) = serde_json::from_str(text).map_err(json)?;
            // Bytewise key order; of keys given twice the last counts, as in a `Value` map.
            // Values borrow the text, so a later member's value lies at a higher address:
            // among equal keys the latest sorts first and dedup keeps it. Sorted in place (a
            // stable sort's buffer would be half the entries again).
            entries.sort_unstable_by(|a, b| {
                a.0.as_bytes()
                    .cmp(b.0.as_bytes())
                    .then_with(|| b.1.get().as_ptr().cmp(&a.1.get().as_ptr()))
            });
            entries.dedup_by(|later, first| later.0 == first.0);
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_string(&k, out);
                out.push(b':');
                write_raw(v, out, depth + 1)?;
            }
            out.push(b'}');
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(json)?;
            out.push(b'[');
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_raw(item, out, depth + 1)?;
            }
            out.push(b']');
        }
        _ => write_canonical(&serde_json::from_str::<Value>(text).map_err(json)?, out)?,
    }
    Ok(())
}

/// An object's members in text order, keys borrowed where they need no unescaping.
struct Entries<'a>(Vec<(std::borrow::Cow<'a, str>, &'a serde_json::value::RawValue)>);

impl<'de> serde::Deserialize<'de> for Entries<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Entries<'de>, M::Error> {
                let mut v = Vec::with_capacity(m.size_hint().unwrap_or(0));
                while let Some(k) = m.next_key::<CowKey<'de>>()? {
                    v.push((k.0, m.next_value()?));
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// A key borrowed from the text when it has no escapes, else unescaped into a `String`.
struct CowKey<'a>(std::borrow::Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for CowKey<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = CowKey<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<CowKey<'de>, E> {
                Ok(CowKey(std::borrow::Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<CowKey<'de>, E> {
                Ok(CowKey(std::borrow::Cow::Owned(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<CowKey<'de>, E> {
                Ok(CowKey(std::borrow::Cow::Owned(s)))
            }
        }
        d.deserialize_str(Visit)
    }
}

/// Canonical JSON of any serialisable value (through `serde_json::Value`).
pub fn canonical_of<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    let v = serde_json::to_value(value).map_err(|e| Error::Json(e.to_string()))?;
    canonical(&v)
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            // Go's canonical encoder refuses non-integral numbers and prints integral
            // floats as int64.
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if !f.is_finite() || f.fract() != 0.0 {
                    return Err(Error::Canonical(format!(
                        "non-integral number {n} is not allowed in canonical JSON"
                    )));
                }
                out.extend_from_slice((f as i64).to_string().as_bytes());
            }
        }
        Value::String(s) => write_canonical_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Go sorts map keys and field names bytewise, as `str`'s Ord does. Sort explicitly:
            // serde_json's Map keeps insertion order if any crate in the build enables its
            // `preserve_order` feature.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_string(k, out);
                out.push(b':');
                write_canonical(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Canonical string: only `"` and `\` are escaped.
fn write_canonical_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s.as_bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Go's `compact(dst, src, escapeHTML=true)` over a canonical document: escape `<>&` and
/// U+2028/U+2029 inside strings. Raw control characters make the document invalid JSON, which
/// Go reports as an error, and so do we.
pub fn html_escape_compact(canonical: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(canonical.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while i < canonical.len() {
        let b = canonical[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            } else if b < 0x20 {
                return Err(Error::Canonical(format!(
                    "control character 0x{b:02x} in a string cannot be written to a metadata file"
                )));
            }
        } else if b == b'"' {
            in_string = true;
        }
        match b {
            b'<' | b'>' | b'&' => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
            // U+2028 / U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
            0xE2 if canonical.get(i + 1) == Some(&0x80)
                && matches!(canonical.get(i + 2), Some(0xA8) | Some(0xA9)) =>
            {
                out.extend_from_slice(b"\\u202");
                out.push(HEX[(canonical[i + 2] & 0xf) as usize]);
                i += 3;
                continue;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    Ok(out)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A string as Go's ordinary (non-canonical) `encoding/json` writes it with HTML escaping on:
/// used for the envelope fields outside `signed` (signature key IDs, methods, base64).
pub fn write_go_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{2028}' => out.extend_from_slice(b"\\u2028"),
            '\u{2029}' => out.extend_from_slice(b"\\u2029"),
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                let b = c as u8;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {

    #[test]
    fn canonical_from_text_keeps_the_last_of_a_repeated_key_and_unescapes_keys() {
        for text in [
            r#"{"b":1,"a":{"z":[1,2,{"y":null}],"a\u0041":"x"},"b":2}"#,
            r#" { "k" : 1.0e2 , "u" : "\u2028<&>" , "n" : -0 , "big" : 18446744073709551615 } "#,
            r#"[[],{},"",true,false,null]"#,
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            let raw: &serde_json::value::RawValue = serde_json::from_str(text).unwrap();
            assert_eq!(
                canonical_raw(raw).unwrap(),
                canonical(&v).unwrap(),
                "{text}"
            );
        }
        // Deeper than serde_json parses a `Value`: refused, not a stack overflow.
        let deep = "[".repeat(5000) + &"]".repeat(5000);
        if let Ok(raw) = serde_json::from_str::<&serde_json::value::RawValue>(&deep) {
            assert!(canonical_raw(raw).is_err());
        }
    }
    use super::*;
    use serde_json::json;

    /// Hand-verified against the rules of docker/go canonical/json `encodeState.string` (canonical
    /// branch) and Go's `compact` with escapeHTML.
    #[test]
    fn table_of_hand_verified_cases() {
        let cases: &[(Value, &str, Option<&str>)] = &[
            (json!("plain"), r#""plain""#, Some(r#""plain""#)),
            (json!("a\"b\\c"), r#""a\"b\\c""#, Some(r#""a\"b\\c""#)),
            (json!("<>&"), r#""<>&""#, Some(r#""\u003c\u003e\u0026""#)),
            (json!("é☃😀"), "\"é☃😀\"", Some("\"é☃😀\"")),
            (
                json!("\u{2028}x\u{2029}"),
                "\"\u{2028}x\u{2029}\"",
                Some(r#""\u2028x\u2029""#),
            ),
            (json!("tab\there"), "\"tab\there\"", None),
            // Go does not normalise Unicode (olpc-cjson NFC-normalises this to U+0A16 U+0A3C).
            (json!("\u{0A59}"), "\"\u{0A59}\"", Some("\"\u{0A59}\"")),
            (
                json!({"b":1,"a":[true,null,-3]}),
                r#"{"a":[true,null,-3],"b":1}"#,
                Some(r#"{"a":[true,null,-3],"b":1}"#),
            ),
            (
                json!({"B":0,"a":0,"_type":0}),
                r#"{"B":0,"_type":0,"a":0}"#,
                None,
            ),
            (json!({"é":1,"z":2}), "{\"z\":2,\"é\":1}", None),
            // raw-string order, not encoded order (olpc-cjson puts "a b" first)
            (json!({"a b":0,"a":0}), r#"{"a":0,"a b":0}"#, None),
            (json!(2.0), "2", None),
            (json!(18446744073709551615u64), "18446744073709551615", None),
        ];
        for (value, canon, file) in cases {
            let c = canonical(value).unwrap();
            assert_eq!(
                String::from_utf8(c.clone()).unwrap(),
                *canon,
                "canonical of {value}"
            );
            if let Some(f) = file {
                assert_eq!(
                    String::from_utf8(html_escape_compact(&c).unwrap()).unwrap(),
                    *f
                );
            }
        }
        assert!(html_escape_compact(&canonical(&json!("tab\there")).unwrap()).is_err());
        assert!(canonical(&json!(1.5)).is_err());
    }

    #[test]
    fn go_string_escapes_like_encoding_json() {
        let mut out = Vec::new();
        write_go_string("a<b>&\u{1}\n\"\u{2028}", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\u003cb\u003e\u0026\u0001\n\"\u2028""#
        );
    }
}
