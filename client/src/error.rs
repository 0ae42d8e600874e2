//! The client's one error type. Every variant prints as one line naming what failed and what
//! to do about it, because the CLI's users are people and CI logs, not programs.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Metadata that failed verification (signatures, hashes, versions, expiry, root chain).
    #[error("{gun}: {source}; the data was refused")]
    Verification {
        gun: String,
        /// Boxed: the core's errors carry several strings, and this enum travels everywhere.
        source: Box<trustbridge_tuf::Error>,
    },
    /// A role expired: the message carries the command that renews it.
    #[error("{gun}: the {role} role expired at {expires}; renew it with `{fix}`")]
    Expired {
        gun: String,
        role: String,
        expires: String,
        fix: String,
    },
    #[error("cannot reach {server}: {reason}; is the server running and is -s/--server right?")]
    Unreachable { server: String, reason: String },
    #[error(
        "TLS to {server} failed: {reason}; pass the CA that signed its certificate with --tlscacert"
    )]
    Tls { server: String, reason: String },
    #[error("{server} answered 401 unauthorized{scope}; set {var} to base64(user:password)")]
    Unauthorized {
        server: String,
        scope: String,
        /// The variable that holds this server's credentials.
        var: &'static str,
    },
    #[error(
        "repository {gun} does not exist on {server}; create it with `trustbridge init {gun} -p`"
    )]
    NotFound { gun: String, server: String },
    #[error("{server} refused {what}: {status} {code}: {message}")]
    Server {
        server: String,
        what: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{what} from {server} is larger than {limit} bytes; the server is misbehaving")]
    TooLarge {
        server: String,
        what: String,
        limit: u64,
    },
    #[error("wrong passphrase for the {role} key {key_id}; check {env}")]
    WrongPassphrase {
        role: String,
        key_id: String,
        env: String,
    },
    #[error("no passphrase for the {role} key and no terminal to ask on; set {env}")]
    NoPassphrase { role: String, env: String },
    #[error(
        "no {role} key for {gun} in {dir}; import it with `trustbridge key import FILE --role {role} --gun {gun}`"
    )]
    MissingKey {
        role: String,
        gun: String,
        dir: PathBuf,
    },
    #[error(
        "repository {gun} is not initialized here; run `trustbridge init {gun}` (or `list` it once to trust the server's root)"
    )]
    NotInitialized { gun: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Tuf(Box<trustbridge_tuf::Error>),
}

impl From<trustbridge_tuf::Error> for Error {
    fn from(e: trustbridge_tuf::Error) -> Self {
        Error::Tuf(Box::new(e))
    }
}

impl Error {
    /// Metadata of `gun` that failed verification.
    pub fn verification(gun: &str, source: trustbridge_tuf::Error) -> Self {
        Error::Verification {
            gun: gun.into(),
            source: Box::new(source),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
