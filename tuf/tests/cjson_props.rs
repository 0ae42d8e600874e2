//! Property tests: our canonical and file forms against the rules of Go's encoders and against
//! an independent implementation (olpc-cjson, whose string rule — escape only `"` and `\` — is
//! the same as docker/go canonical/json's). olpc-cjson also NFC-normalises strings, which Go does
//! not (U+0A59 comes out as U+0A16 U+0A3C), so it is compared only on values built from
//! normalisation-stable characters. It also sorts object keys by their *encoded* form (quote
//! included) where Go sorts the raw strings, so `"a"` and `"a b"` come out in opposite orders;
//! the comparison therefore uses keys without characters below `#` or a backslash.

use proptest::prelude::*;
use serde::Serialize;
use serde_json::Value;
use trustbridge_tuf::cjson;

fn olpc(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    v.serialize(&mut ser).unwrap();
    out
}

/// Strings biased towards the characters the two forms treat differently.
fn tricky_string() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '<', '>', '&', '"', '\\', '\u{2028}', '\u{2029}', 'é', '☃', '😀', '/', '\u{7f}', '\u{1}',
        '\n', '\t', ' ', 'a',
    ]);
    prop_oneof![
        prop::collection::vec(special, 0..12).prop_map(|v| v.into_iter().collect()),
        any::<String>()
    ]
}

fn stable_string() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '<', '>', '&', '"', '\\', '\u{2028}', '\u{2029}', 'é', '☃', '😀', '/', '\u{7f}', '\u{1}',
        '\n', '\t', ' ', 'a', 'Z',
    ]);
    prop::collection::vec(special, 0..12).prop_map(|v| v.into_iter().collect())
}

fn sortable_key() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        '<', '>', '&', 'é', '☃', '😀', '/', 'a', 'Z', '_', '#', '\u{2028}',
    ]);
    prop::collection::vec(chars, 0..8).prop_map(|v| v.into_iter().collect())
}

fn json_value() -> impl Strategy<Value = Value> {
    json_value_of(tricky_string().boxed(), tricky_string().boxed())
}

fn json_value_of(
    strings: BoxedStrategy<String>,
    keys: BoxedStrategy<String>,
) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        strings.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn has_control(v: &Value) -> bool {
    match v {
        Value::String(s) => s.chars().any(|c| (c as u32) < 0x20),
        Value::Array(a) => a.iter().any(has_control),
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k.chars().any(|c| (c as u32) < 0x20) || has_control(v)),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn canonical_string_escapes_only_quote_and_backslash(s in tricky_string()) {
        let got = cjson::canonical(&Value::String(s.clone())).unwrap();
        let want = format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        prop_assert_eq!(got, want.into_bytes());
    }

    #[test]
    fn canonical_matches_an_independent_implementation(v in json_value_of(stable_string().boxed(), sortable_key().boxed())) {
        prop_assert_eq!(cjson::canonical(&v).unwrap(), olpc(&v));
    }

    #[test]
    fn file_form_is_json_of_the_same_value_with_go_html_escapes(v in json_value()) {
        let c = cjson::canonical(&v).unwrap();
        match cjson::html_escape_compact(&c) {
            Err(_) => prop_assert!(has_control(&v), "only raw control characters make Go's compact fail"),
            Ok(f) => {
                prop_assert!(!has_control(&v));
                let text = String::from_utf8(f.clone()).unwrap();
                let forbidden = ['<', '>', '&', '\u{2028}', '\u{2029}'];
                prop_assert!(!text.contains(forbidden));
                let back: Value = serde_json::from_slice(&f).unwrap();
                prop_assert_eq!(&back, &v);
                // undoing exactly Go's escapes gives the canonical bytes back
                let undone = text.replace("\\u003c", "<").replace("\\u003e", ">").replace("\\u0026", "&")
                    .replace("\\u2028", "\u{2028}").replace("\\u2029", "\u{2029}");
                // (a literal backslash followed by "u003c" inside a string would be written "\\u003c"
                // and is left alone by Go; our generator can produce it only through '\\' + 'u...', rare)
                if !text.contains("\\\\u") {
                    prop_assert_eq!(undone.into_bytes(), c);
                }
            }
        }
    }

    #[test]
    fn canonical_from_text_equals_canonical_from_the_value(v in json_value(), pretty in any::<bool>()) {
        // Any spelling of the value (compact or indented, escapes as serde_json writes them).
        let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) }.unwrap();
        let raw: &serde_json::value::RawValue = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(cjson::canonical_raw(raw).ok(), cjson::canonical(&v).ok());
        // Text recognised as canonical is exactly its canonical form; canonical text is
        // always recognised.
        let canon = cjson::canonical(&v).ok();
        if trustbridge_tuf::canonical_check::is_canonical(raw) {
            prop_assert_eq!(canon.clone(), Some(text.clone().into_bytes()));
        }
        if let Some(c) = canon
            && let Ok(t) = std::str::from_utf8(&c)
            && let Ok(r) = serde_json::from_str::<&serde_json::value::RawValue>(t)
        {
            prop_assert!(trustbridge_tuf::canonical_check::is_canonical(r), "{}", t);
        }
    }

    #[test]
    fn object_keys_come_out_bytewise_sorted(m in prop::collection::btree_map(tricky_string(), any::<i64>(), 0..10)) {
        let v = Value::Object(m.iter().map(|(k, n)| (k.clone(), Value::from(*n))).collect());
        let c = cjson::canonical(&v).unwrap();
        let mut keys: Vec<&String> = m.keys().collect();
        keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let want = format!("{{{}}}", keys.iter().map(|k| format!("{}:{}", String::from_utf8(cjson::canonical(&Value::String((*k).clone())).unwrap()).unwrap(), m[*k])).collect::<Vec<_>>().join(","));
        prop_assert_eq!(String::from_utf8(c).unwrap(), want);
    }
}
