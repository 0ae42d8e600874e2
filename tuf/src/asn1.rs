//! The few DER structures notary writes by hand and no maintained crate reads as notary
//! writes them: its PKCS#8 (EC with version 1, ed25519 under a private OID, RSA without the
//! NULL parameter) and Go's SEC1 `ECPrivateKey`. A tiny TLV reader/writer is all they need.

use crate::error::Error;

pub const TAG_INTEGER: u8 = 0x02;
pub const TAG_BIT_STRING: u8 = 0x03;
pub const TAG_OCTET_STRING: u8 = 0x04;
pub const TAG_NULL: u8 = 0x05;
pub const TAG_OID: u8 = 0x06;
pub const TAG_SEQUENCE: u8 = 0x30;

/// DER bodies of the object identifiers notary uses.
pub const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
pub const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// 1.3.6.1.4.1.11591.15.1: the (GnuPG) ed25519 OID notary's PKCS#8 uses instead of RFC 8410's.
pub const OID_NOTARY_ED25519: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01];

/// Reads consecutive TLVs out of a DER buffer.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Next TLV: (tag, contents).
    pub fn next(&mut self) -> Result<(u8, &'a [u8]), Error> {
        let bad = || Error::PrivateKey("truncated or invalid DER".into());
        let tag = *self.buf.first().ok_or_else(bad)?;
        let first = *self.buf.get(1).ok_or_else(bad)?;
        let (len, hdr) = if first < 0x80 {
            (first as usize, 2)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 {
                return Err(bad());
            }
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | *self.buf.get(2 + i).ok_or_else(bad)? as usize;
            }
            (len, 2 + n)
        };
        let end = hdr.checked_add(len).ok_or_else(bad)?;
        if end > self.buf.len() {
            return Err(bad());
        }
        let body = &self.buf[hdr..end];
        self.buf = &self.buf[end..];
        Ok((tag, body))
    }

    /// Next TLV, which must carry `tag`.
    pub fn expect(&mut self, tag: u8, what: &str) -> Result<&'a [u8], Error> {
        let (t, body) = self.next()?;
        if t != tag {
            return Err(Error::PrivateKey(format!(
                "expected {what} (tag 0x{tag:02x}), found tag 0x{t:02x}"
            )));
        }
        Ok(body)
    }
}

/// One TLV.
pub fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(tag);
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// A SEQUENCE of already-encoded elements.
pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(TAG_SEQUENCE, &parts.concat())
}

/// A small non-negative INTEGER.
pub fn small_int(v: u8) -> Vec<u8> {
    if v < 0x80 {
        tlv(TAG_INTEGER, &[v])
    } else {
        tlv(TAG_INTEGER, &[0, v])
    }
}

/// Value of a small non-negative INTEGER body.
pub fn read_small_int(body: &[u8]) -> Result<u64, Error> {
    if body.is_empty() || body.len() > 8 {
        return Err(Error::PrivateKey("INTEGER out of range".into()));
    }
    Ok(body.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_round_trip() {
        let body = vec![7u8; 300];
        let enc = tlv(TAG_OCTET_STRING, &body);
        assert_eq!(&enc[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let mut r = Reader::new(&enc);
        assert_eq!(r.expect(TAG_OCTET_STRING, "octets").unwrap(), &body[..]);
        assert!(r.is_empty());
        assert!(Reader::new(&[0x04, 0x05, 1]).next().is_err());
    }
}
