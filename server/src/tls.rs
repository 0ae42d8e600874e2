//! TLS file settings shared by the listener, the signer link and the database link. A leaf,
//! so the modules that configure TLS do not import each other for it.

use std::path::PathBuf;

/// A certificate chain and its key, as PEM files (the HTTPS listener's, a client
/// certificate's).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}
