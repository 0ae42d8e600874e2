//! The envelope `{"signed":...,"signatures":[...]}` with its exact bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::roles::Role;
use crate::cjson;
use crate::error::Error;
use crate::gotime::GoTime;
use crate::keys::PublicKey;
use crate::private::PrivateKey;

/// One signature. `method` is lower-cased on parse, as notary does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub keyid: String,
    pub method: String,
    #[serde(with = "crate::b64::bytes")]
    pub sig: Vec<u8>,
}

/// The envelope with `signed` left as text: typed once from it, canonicalised from it when
/// signatures are checked, never held as a `Value` tree.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    signed: &'a RawValue,
    #[serde(default)]
    signatures: Option<Vec<Signature>>,
}

/// `_type` alone, read without building the rest.
#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "_type", default)]
    type_: Option<Value>,
}

/// A parsed metadata file: its typed body, its signatures, and the bytes it came from.
#[derive(Clone, Debug)]
pub struct Signed<T> {
    pub signed: T,
    pub signatures: Vec<Signature>,
    /// The file bytes this was parsed from (or written as): what is stored, served and hashed.
    /// Signatures are verified over the canonical form of its `signed` value, re-derived like
    /// notary's verifier does (unknown fields included).
    raw: std::sync::Arc<[u8]>,
}

impl<T: Role> Signed<T> {
    /// Parse a metadata file. Checks `_type` (so a `Targets` file cannot pass as `Root`).
    pub fn from_bytes(role: &str, bytes: &[u8]) -> Result<Self, Error> {
        Self::from_shared(role, std::sync::Arc::from(bytes))
    }

    /// As [`Self::from_bytes`], keeping `bytes` as they are (an upload or a stored file is
    /// already shared: a large targets file is not copied to be parsed).
    pub fn from_shared(role: &str, bytes: std::sync::Arc<[u8]>) -> Result<Self, Error> {
        let json = |e: serde_json::Error| Error::Json(format!("{role}: {e}"));
        let env: RawEnvelope = serde_json::from_slice(&bytes).map_err(json)?;
        let TypeOnly { type_ } = serde_json::from_str(env.signed.get()).map_err(json)?;
        let found = type_.as_ref().and_then(Value::as_str).unwrap_or_default();
        if found != T::TYPE {
            return Err(Error::WrongType {
                role: role.into(),
                expected: T::TYPE.into(),
                found: found.into(),
            });
        }
        let signed: T = serde_json::from_str(env.signed.get()).map_err(json)?;
        let mut signatures = env.signatures.unwrap_or_default();
        for s in &mut signatures {
            s.method = s.method.to_lowercase();
        }
        Ok(Signed {
            signed,
            signatures,
            raw: bytes,
        })
    }

    /// Sign `body` with `keys` and write it in notary's file form.
    pub fn sign(body: T, keys: &[&PrivateKey]) -> Result<Self, Error> {
        Self::sign_with_ids(body, keys.iter().map(|k| (k.id(), *k)).collect())
    }

    /// Sign with each key under an explicit key ID — for root keys, the certificate key ID
    /// listed in root rather than the private key's canonical ID.
    pub fn sign_with_ids(body: T, keys: Vec<(String, &PrivateKey)>) -> Result<Self, Error> {
        let msg = cjson::canonical_of(&body)?;
        let mut signatures = Vec::with_capacity(keys.len());
        for (keyid, key) in keys {
            signatures.push(Signature {
                keyid,
                method: key.method().into(),
                sig: key.sign(&msg)?,
            });
        }
        let raw = file_bytes(&msg, &signatures)?.into();
        Ok(Signed {
            signed: body,
            signatures,
            raw,
        })
    }

    /// The canonical bytes a signer must sign for `body` (remote signing: notary-server sends
    /// these as `SignatureRequest.content`).
    pub fn message_for(body: &T) -> Result<Vec<u8>, Error> {
        cjson::canonical_of(body)
    }

    /// Assemble a document from `body` and signatures made elsewhere over
    /// [`Self::message_for`], in notary's file form.
    pub fn from_parts(body: T, signatures: Vec<Signature>) -> Result<Self, Error> {
        let msg = cjson::canonical_of(&body)?;
        Self::from_message(body, &msg, signatures)
    }

    /// [`Self::from_parts`] for a caller that holds `msg`, the [`Self::message_for`] `body`
    /// it had signed: the body is not serialised a second time (the server signs a snapshot
    /// and a timestamp per publish).
    pub fn from_message(body: T, msg: &[u8], signatures: Vec<Signature>) -> Result<Self, Error> {
        debug_assert_eq!(cjson::canonical_of(&body).ok().as_deref(), Some(msg));
        let raw = file_bytes(msg, &signatures)?.into();
        Ok(Signed {
            signed: body,
            signatures,
            raw,
        })
    }

    /// The bytes this document was read from or written as.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The bytes Go notary would write for this document (typed body re-serialised). For a
    /// document notary wrote, equal to [`Self::raw`].
    pub fn to_notary_bytes(&self) -> Result<Vec<u8>, Error> {
        file_bytes(&cjson::canonical_of(&self.signed)?, &self.signatures)
    }

    /// The message signatures cover: canonical JSON of the decoded `signed` value.
    pub fn signed_message(&self) -> Result<Vec<u8>, Error> {
        let env: RawEnvelope =
            serde_json::from_slice(&self.raw).map_err(|e| Error::Json(e.to_string()))?;
        cjson::canonical_raw(env.signed)
    }

    /// The distinct key IDs among `role_keyids` whose signature verifies over this file
    /// (unknown key IDs and bad signatures are left out): the role's real signers.
    pub fn valid_keyids(
        &self,
        keys: &BTreeMap<String, PublicKey>,
        role_keyids: &[String],
    ) -> Result<Vec<String>, Error> {
        // Signed as notary signs, `signed` is already canonical in the file: the signatures
        // are checked over those bytes, not a canonical copy of them.
        let env: RawEnvelope =
            serde_json::from_slice(&self.raw).map_err(|e| Error::Json(e.to_string()))?;
        let msg: std::borrow::Cow<'_, [u8]> = if crate::canonical_check::is_canonical(env.signed) {
            std::borrow::Cow::Borrowed(env.signed.get().as_bytes())
        } else {
            std::borrow::Cow::Owned(cjson::canonical_raw(env.signed)?)
        };
        let mut valid: Vec<String> = Vec::new();
        for sig in &self.signatures {
            if valid.contains(&sig.keyid) || !role_keyids.contains(&sig.keyid) {
                continue;
            }
            let Some(key) = keys.get(&sig.keyid) else {
                continue;
            };
            if key.verify(&sig.method, &msg, &sig.sig).is_ok() {
                valid.push(sig.keyid.clone());
            }
        }
        Ok(valid)
    }

    /// Notary's `VerifySignatures`: count distinct keys among `role_keyids` whose signature
    /// verifies; unknown key IDs and bad signatures are ignored, the count must reach
    /// `threshold`. Returns the key IDs that verified.
    pub fn verify_signatures(
        &self,
        role: &str,
        keys: &BTreeMap<String, PublicKey>,
        role_keyids: &[String],
        threshold: i64,
    ) -> Result<Vec<String>, Error> {
        if threshold < 1 {
            return Err(Error::structure(
                role,
                format!("invalid threshold {threshold}"),
            ));
        }
        let valid = self.valid_keyids(keys, role_keyids)?;
        if (valid.len() as i64) < threshold {
            return Err(Error::Threshold {
                role: role.into(),
                valid: valid.len(),
                required: threshold,
                tried: self
                    .signatures
                    .iter()
                    .map(|s| s.keyid.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            });
        }
        Ok(valid)
    }

    /// Notary's `VerifyVersion`.
    pub fn check_version(&self, role: &str, min: i64) -> Result<(), Error> {
        if self.signed.version() < min {
            return Err(Error::LowVersion {
                role: role.into(),
                version: self.signed.version(),
                min,
            });
        }
        Ok(())
    }

    /// Notary's `VerifyExpiry`: expired when `expires` is before `now`.
    pub fn check_expiry(&self, role: &str, now: &GoTime) -> Result<(), Error> {
        if self.signed.expires().is_before(now) {
            return Err(Error::Expired {
                role: role.into(),
                expires: self.signed.expires().to_string(),
            });
        }
        Ok(())
    }

    /// Structure, signatures against `keys`, version ≥ `min_version`, and expiry (unless
    /// `allow_expired`): what notary's builder checks when it loads a role.
    pub fn verify(
        &self,
        role: &str,
        keys: &BTreeMap<String, PublicKey>,
        role_keyids: &[String],
        threshold: i64,
        min_version: i64,
        allow_expired: bool,
    ) -> Result<(), Error> {
        self.signed.check_structure(role)?;
        self.verify_signatures(role, keys, role_keyids, threshold)?;
        self.check_version(role, min_version)?;
        if !allow_expired {
            self.check_expiry(role, &GoTime::now())?;
        }
        Ok(())
    }

    /// Hex SHA-256 of the stored bytes (the `role.<sha256>.json` name and the DB column).
    pub fn sha256_hex(&self) -> String {
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &self.raw))
    }
}

/// Notary's file form: `{"signed":` + HTML-escaped canonical bytes + `,"signatures":[...]}`.
fn file_bytes(canonical: &[u8], signatures: &[Signature]) -> Result<Vec<u8>, Error> {
    use base64::Engine as _;
    let mut out = Vec::with_capacity(canonical.len() + 64 + signatures.len() * 160);
    out.extend_from_slice(b"{\"signed\":");
    out.extend_from_slice(&cjson::html_escape_compact(canonical)?);
    out.extend_from_slice(b",\"signatures\":[");
    for (i, s) in signatures.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"keyid\":");
        cjson::write_go_string(&s.keyid, &mut out);
        out.extend_from_slice(b",\"method\":");
        cjson::write_go_string(&s.method, &mut out);
        out.extend_from_slice(b",\"sig\":\"");
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(&s.sig)
                .as_bytes(),
        );
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}
