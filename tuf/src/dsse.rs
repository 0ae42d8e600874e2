//! DSSE's pre-authentication encoding: the bytes a DSSE envelope's signature covers, here for
//! cosign v3's Sigstore bundles, written by the server's Cosign bridge and checked by the
//! client's `verify-both`.

/// `DSSEv1 <len(type)> <type> <len(body)> <body>`, lengths in ASCII decimal (DSSE protocol).
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // The DSSE protocol document's example: type "http://example.com/HelloWorld", body
        // "hello world".
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }
}
