//! Test-only crate: sigstore-rs as an implementation nobody here wrote, checking what
//! trustbridge reads and writes in Cosign's formats. See tests/.
