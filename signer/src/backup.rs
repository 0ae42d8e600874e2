//! Backup bundles: every live key of a store, decrypted and re-encrypted as one JWE under a
//! backup passphrase, so a bundle restores into a store whose aliases and passphrases differ.
//! The file is a PEM block `TRUSTBRIDGE SIGNER BACKUP` around the compact JWE
//! (PBES2-HS256+A128KW / A256GCM, like the rows, but with 600 000 PBKDF2 iterations because a
//! bundle travels).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use trustbridge_tuf::{KeyType, PrivateKey, PublicKey, jwe};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keystore::{ChainRow, KeyInfo};

pub const PEM_LABEL: &str = "TRUSTBRIDGE SIGNER BACKUP";
const FORMAT: &str = "trustbridge-signer-backup/1";
const ITERATIONS: u32 = 600_000;

/// Environment variable the admin CLI reads the bundle passphrase from.
pub const PASSPHRASE_ENV: &str = "TRUSTBRIDGE_BACKUP_PASSPHRASE";

#[derive(Serialize, Deserialize)]
struct Entry {
    key_id: String,
    algorithm: String,
    gun: String,
    role: String,
    created_at: Option<String>,
    last_used: Option<String>,
    /// notary's private encoding (SEC1 DER / 96-byte ed25519), base64.
    private: String,
}

#[derive(Serialize, Deserialize)]
struct Bundle {
    format: String,
    keys: Vec<Entry>,
    /// Certificate chains (public, carried so a restored store signs with the same chain);
    /// absent from bundles written before chains were.
    #[serde(default)]
    chains: Vec<ChainRow>,
}

/// What a bundle holds: the keys, and the certificate chains that go with them.
pub struct Contents {
    pub keys: Vec<(KeyInfo, PrivateKey)>,
    pub chains: Vec<ChainRow>,
}

fn err(s: impl Into<String>) -> Error {
    Error::Backup(s.into())
}

pub fn encode(contents: &Contents, passphrase: &str) -> Result<String> {
    let bundle = Bundle {
        format: FORMAT.into(),
        chains: contents.chains.clone(),
        keys: contents
            .keys
            .iter()
            .map(|(info, key)| Entry {
                key_id: info.key_id.clone(),
                algorithm: info.algorithm.clone(),
                gun: info.gun.clone(),
                role: info.role.clone(),
                created_at: info.created_at.clone(),
                last_used: info.last_used.clone(),
                private: B64.encode(key.notary_bytes()),
            })
            .collect(),
    };
    let plain = Zeroizing::new(serde_json::to_vec(&bundle).map_err(|e| err(e.to_string()))?);
    for e in bundle.keys {
        let mut p = e.private;
        zeroize::Zeroize::zeroize(&mut p);
    }
    let jwe = jwe::encrypt_with_iterations(&plain, passphrase, ITERATIONS)?;
    Ok(pem::encode(&pem::Pem::new(PEM_LABEL, jwe.into_bytes())))
}

pub fn decode(text: &[u8], passphrase: &str) -> Result<Contents> {
    let block = pem::parse(text).map_err(|e| err(format!("not a PEM file: {e}")))?;
    if block.tag() != PEM_LABEL {
        return Err(err(format!(
            "PEM block is {:?}, expected {PEM_LABEL:?}",
            block.tag()
        )));
    }
    let jwe_text = std::str::from_utf8(block.contents()).map_err(|_| err("body is not ASCII"))?;
    let plain = jwe::decrypt(jwe_text, passphrase).map_err(|e| match e {
        trustbridge_tuf::Error::WrongPassphrase => err(format!(
            "wrong backup passphrase (environment variable {PASSPHRASE_ENV})"
        )),
        other => err(other.to_string()),
    })?;
    let bundle: Bundle = serde_json::from_slice(&plain).map_err(|e| err(e.to_string()))?;
    if bundle.format != FORMAT {
        return Err(err(format!("unknown bundle format {:?}", bundle.format)));
    }
    let keys = bundle
        .keys
        .into_iter()
        .map(|e| {
            let key_type = KeyType::parse(&e.algorithm)?;
            let private = Zeroizing::new(
                B64.decode(&e.private)
                    .map_err(|_| err(format!("key {}: private part is not base64", e.key_id)))?,
            );
            let key = PrivateKey::from_notary_bytes(key_type, &private)
                .map_err(|x| err(format!("key {}: {x}", e.key_id)))?;
            let info = KeyInfo {
                public: PublicKey::clone(key.public_key()),
                key_id: e.key_id,
                algorithm: e.algorithm,
                role: e.role,
                gun: e.gun,
                alias: String::new(),
                created_at: e.created_at,
                last_used: e.last_used,
            };
            Ok((info, key))
        })
        .collect::<Result<_>>()?;
    Ok(Contents {
        keys,
        chains: bundle.chains,
    })
}
