//! Passphrases per alias, read from the environment as notary-signer does
//! (`NOTARY_SIGNER_<ALIAS upper-cased>`; an empty value counts as missing).

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Environment prefix notary-signer uses for config keys and passphrase aliases.
pub const ENV_PREFIX: &str = "NOTARY_SIGNER_";

/// The environment variable holding `alias`'s passphrase.
pub fn env_var(alias: &str) -> String {
    format!("{ENV_PREFIX}{}", alias.to_uppercase())
}

/// The passphrase for `alias`, or an error naming the variable to set.
pub fn passphrase(alias: &str) -> Result<Zeroizing<String>> {
    let var = env_var(alias);
    match std::env::var(&var) {
        Ok(v) if !v.is_empty() => Ok(Zeroizing::new(v)),
        _ => Err(Error::MissingPassphrase {
            alias: alias.into(),
            var,
        }),
    }
}
