//! What an update upload is (reference §1.2): a multipart body of at most the route's limit,
//! one part per role named by its file name, each a JSON envelope whose `signed.version` is
//! the version stored. Kept apart from the handlers so the fuzzer drives the same code.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::header;

use crate::error::Error;

/// An update's parts: role → (version, the part's exact bytes).
pub type Parts = BTreeMap<String, (i64, Arc<[u8]>)>;

/// The whole body, at most `limit` bytes: a declared length over it is refused before
/// anything is read, a longer stream when it passes the limit.
pub async fn read_body(req: axum::extract::Request, limit: usize) -> Result<Bytes, Error> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Error::MalformedUpload(format!(
            "the body is larger than {} MiB",
            limit >> 20
        )));
    }
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            Error::MalformedUpload(format!(
                "body not read in full (limit {} MiB): {e}",
                limit >> 20
            ))
        })
}

/// The parts of an update, role → (version, bytes), checked in notary's order: file name,
/// role name, JSON envelope. A body that is not multipart at all (empty, or without the
/// boundary its header names) is `MALFORMED_UPLOAD`: notary's handler dereferenced a nil part
/// there and dropped the connection.
pub async fn parts(body: Bytes, boundary: String) -> Result<Parts, Error> {
    let raw = body.clone();
    let delimiter = format!("--{boundary}");
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut uploads = Parts::new();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            // A header value multer refuses (a NUL or another control byte): Go's reader took
            // the file name as it was, and notary refused it as an invalid role.
            Err(
                e @ (multer::Error::ReadHeaderFailed(_) | multer::Error::DecodeHeaderValue { .. }),
            ) => {
                return Err(
                    match raw_filename(&raw, delimiter.as_bytes(), uploads.len()).map(role_of) {
                        Some(Err(invalid)) => invalid,
                        _ => Error::MalformedUpload(e.to_string()),
                    },
                );
            }
            Err(e) => return Err(Error::MalformedUpload(e.to_string())),
        };
        let name = field.file_name().unwrap_or_default().to_string();
        if name.is_empty() {
            return Err(Error::NoFilename);
        }
        let role = role_of(name)?;
        // A part cut short is notary's MALFORMED_JSON: its JSON decoder hit the end first.
        let data = match field.bytes().await {
            Ok(d) => d,
            Err(_) => return Err(Error::MalformedJson(format!("part {role} ends early"))),
        };
        let version = envelope_version(&role, &data)?;
        if uploads.contains_key(&role) {
            return Err(crate::validation::duplicate_part(&role));
        }
        uploads.insert(role, (version, Arc::from(&data[..])));
    }
    Ok(uploads)
}

/// The role a part's file name names (one trailing `.json` stripped, as notary does), or
/// notary's `INVALID_ROLE`.
fn role_of(name: String) -> Result<String, Error> {
    let role = name.strip_suffix(".json").unwrap_or(&name).to_string();
    if trustbridge_tuf::metadata::valid_role_name(&role) {
        Ok(role)
    } else {
        Err(Error::InvalidRole(role))
    }
}

/// The `filename="..."` of part `index` (from 0) read straight from the body's bytes, for a
/// part whose headers the multipart parser refused.
fn raw_filename(body: &[u8], delimiter: &[u8], index: usize) -> Option<String> {
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut rest = body;
    // Skip the preamble and the parts before this one.
    for _ in 0..=index {
        let at = find(rest, delimiter)?;
        rest = &rest[at + delimiter.len()..];
    }
    let head = &rest[..find(rest, b"\r\n\r\n").unwrap_or(rest.len())];
    let start = find(head, b"filename=\"")? + b"filename=\"".len();
    let len = head[start..].iter().position(|b| *b == b'"')?;
    Some(String::from_utf8_lossy(&head[start..start + len]).into_owned())
}

/// notary parses each part into `{"signed":{"_type","expires","version"},"signatures"}`. A part
/// that is JSON but has no `signed` object is not malformed to notary: its zero version then
/// fails validation as that role's bad metadata, which is how it is refused here.
fn envelope_version(role: &str, data: &[u8]) -> Result<i64, Error> {
    use trustbridge_tuf::metadata::{Peek, PeekError};
    match Peek::of(data) {
        Ok(p) => Ok(p.version),
        Err(PeekError::NoSigned) => Err(crate::validation::bad_role(
            role,
            format!("{role} has no signed metadata"),
        )),
        Err(PeekError::Json(e)) => Err(Error::MalformedJson(e.to_string())),
    }
}
