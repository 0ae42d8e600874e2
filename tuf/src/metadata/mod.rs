//! Notary's TUF metadata: the signed envelope and the four role bodies.
//!
//! Notary 0.7.0 writes pre-1.0 TUF: capitalised `_type`, base64 hashes and signatures, no
//! `spec_version`. tough's schema types require TUF 1.0 fields, so the format is modelled here.
//! Every parsed document keeps the bytes it was read from ([`Signed::raw`]); hashes in snapshot
//! and timestamp are over stored bytes, never over a re-serialisation.

mod hashes;
mod index;
mod peek;
mod roles;
mod signed;

pub use index::TargetsIndex;
pub use peek::{Peek, PeekError};

pub use roles::{
    DelegationRole, Delegations, FileMeta, Hashes, Role, Root, RootRole, Snapshot, Targets,
    Timestamp, valid_role_name,
};
pub use signed::{Signature, Signed};

/// Default expiries notary's server and client set (`server.go`/`client.go` init).
pub mod expiry {
    use time::Duration;
    pub const ROOT_YEARS: i32 = 10;
    pub const TARGETS_YEARS: i32 = 3;
    pub const SNAPSHOT_YEARS: i32 = 3;
    pub const TIMESTAMP: Duration = Duration::days(14);
}
