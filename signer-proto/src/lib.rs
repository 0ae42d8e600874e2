//! What both sides of notary-signer's gRPC link share, apart from the signer itself: the
//! generated stubs of `proto/signer.proto` (package `proto`, notary-signer 0.7.0's wire,
//! ../shared/reference/signer-grpc.md) and the encodings a client turns the signer's answers
//! into. The server links this crate, not the signer (rusqlite, scrypt and rcgen stay out of
//! it).

pub mod keys;

/// Code generated from proto/signer.proto (package `proto`).
pub mod proto {
    tonic::include_proto!("proto");
}
