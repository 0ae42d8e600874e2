//! The envelope fields every notary role shares (`signed._type`, `version`, `expires`), read
//! from the bytes without parsing the role's body: what the upload parser, the import check and
//! the renewal schedule need. notary's server reads uploads into the same shape (its
//! `data.SignedCommon` inside `{"signed","signatures"}`), so a part refused here is refused
//! there too. Fields it skips (keys, targets, signatures) are not parsed, as Go's decoder does.

use serde::Deserialize;

use crate::GoTime;

/// `signed`'s common fields.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Peek {
    #[serde(rename = "_type")]
    pub type_: String,
    pub expires: GoTime,
    pub version: i64,
}

/// Why the envelope could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PeekError {
    /// Not JSON, or `signed` without the common fields: notary's `MALFORMED_JSON`.
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON with no `signed` object: a zero version to notary, refused as the role's bad
    /// metadata.
    #[error("no signed metadata")]
    NoSigned,
}

#[derive(Deserialize)]
struct Envelope {
    signed: Option<Peek>,
    /// Go decodes `signatures` into a list, so a list it must be (its entries are checked by
    /// validation).
    #[serde(rename = "signatures")]
    _signatures: Option<Vec<serde_json::Value>>,
}

impl Peek {
    /// Read `data`'s envelope.
    pub fn of(data: &[u8]) -> Result<Peek, PeekError> {
        serde_json::from_slice::<Envelope>(data)?
            .signed
            .ok_or(PeekError::NoSigned)
    }

    /// The `_type` a document of `role` carries (every delegation is `Targets`).
    pub fn type_of(role: &str) -> &'static str {
        match role {
            "root" => "Root",
            "snapshot" => "Snapshot",
            "timestamp" => "Timestamp",
            _ => "Targets",
        }
    }

    /// Whether this is a document of `role` at `version`.
    pub fn is(&self, role: &str, version: i64) -> bool {
        self.type_ == Self::type_of(role) && self.version == version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_common_fields_and_tells_the_failures_apart() {
        let p = Peek::of(
            br#"{"signed":{"_type":"Targets","expires":"2030-01-01T00:00:00Z","version":3,"targets":{}},"signatures":[]}"#,
        )
        .unwrap();
        assert!(p.is("targets/releases", 3));
        assert!(!p.is("root", 3) && !p.is("targets", 4));
        assert!(matches!(
            Peek::of(br#"{"signatures":[]}"#),
            Err(PeekError::NoSigned)
        ));
        assert!(matches!(
            Peek::of(br#"{"signed":{"_type":"Root"}}"#),
            Err(PeekError::Json(_))
        ));
        assert!(matches!(Peek::of(b"not json"), Err(PeekError::Json(_))));
    }
}
