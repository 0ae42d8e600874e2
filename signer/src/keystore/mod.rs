//! The key store: notary-signer's `private_keys` rows (see [`rows`]) plus a bounded cache of
//! decrypted keys ([`cache`]).

pub mod cache;
pub mod mysql;
pub mod passphrase;
pub mod pkcs11;
pub mod postgres;
pub mod rows;
pub mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trustbridge_notation::chain::Alg;
use trustbridge_tuf::{KeyType, PrivateKey, PssHash, PublicKey, jwe};

use crate::error::{Error, Result};
use cache::{Held, Holder, KeyCache};
use rows::{KeyRow, KeyRows};

/// Where the key rows are kept (notary-signer's `storage.backend` and `storage.db_url`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An in-memory store; like notary's memory backend, CreateKey always makes a new key.
    Memory,
    /// The embedded default: a SQLite file holding notary-signer's `private_keys` table.
    Sqlite(std::path::PathBuf),
    /// notary-signer's PostgreSQL database (`storage.db_url`, lib/pq's URL form).
    Postgres(String),
    /// notary-signer's MySQL/MariaDB database (`storage.db_url`, go-sql-driver's DSN).
    Mysql(String),
}

/// notary's memory backend encrypts with this constant (`passphrase.ConstantRetriever`).
const MEMORY_PASSPHRASE: &str = "memory-db-ignore";

/// How often a cached key re-checks its row (so a key deleted by the admin CLI stops signing)
/// and refreshes `last_used`. notary writes `last_used` on every Sign; once per interval keeps
/// the same meaning ("has signed", which is what CreateKey's reuse rule reads) without a write
/// per signature.
const REVALIDATE: Duration = Duration::from_secs(10);

/// The `private` column of a row that holds a certificate chain, not a key (a Notation
/// signing key's chain, see [`crate::notation`]): no passphrase opens it and nothing signs
/// with it.
pub const CERT_CHAIN: &str = "x509-chain";

/// Whether a row holds a JWE-encrypted key (not a token key, not a certificate chain): the
/// rows passphrases, re-encryption and backups are about.
fn sealed(row: &KeyRow) -> bool {
    pkcs11::token_id(&row.private).is_none() && row.private != CERT_CHAIN
}

/// What the store knows about a key, without its private half.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    pub key_id: String,
    pub algorithm: String,
    pub public: PublicKey,
    pub role: String,
    pub gun: String,
    pub alias: String,
    pub created_at: Option<String>,
    pub last_used: Option<String>,
}

/// A signature with what the `Signature` message reports about it.
pub struct Signature {
    pub key: PublicKey,
    /// notary's signature method: `ecdsa` (raw r||s over SHA-256), `eddsa` or `rsapss`.
    pub method: &'static str,
    pub bytes: Vec<u8>,
}

/// A certificate chain row (private column [`CERT_CHAIN`]): the PEM chain of a key, as a
/// backup bundle carries it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainRow {
    pub key_id: String,
    pub algorithm: String,
    pub role: String,
    pub pem: String,
}

/// The role of the Notation signing key: its RSA signatures follow the Notary Project's
/// table (the PSS hash by modulus size: PS256, PS384, PS512), not notary's RSA-PSS-SHA256.
pub const NOTATION_ROLE: &str = "notation";

/// The RSASSA-PSS hash a key of `role` signs with, when it is not notary's SHA-256.
fn pss_hash(role: &str, key: &PrivateKey) -> Result<Option<PssHash>> {
    let Some(bits) = key.rsa_bits().filter(|_| role == NOTATION_ROLE) else {
        return Ok(None);
    };
    match Alg::for_rsa_bits(bits) {
        Some(Alg::Ps384) => Ok(Some(PssHash::Sha384)),
        Some(Alg::Ps512) => Ok(Some(PssHash::Sha512)),
        Some(_) => Ok(None),
        None => Err(Error::Invalid(format!(
            "the Notation key {} has {bits} RSA bits; Notation signs with 2048, 3072 or 4096",
            key.id()
        ))),
    }
}

pub struct KeyStore {
    rows: Box<dyn KeyRows>,
    default_alias: String,
    memory: bool,
    cache: KeyCache,
    /// The PKCS#11 token new ECDSA keys are made in, when configured.
    token: Option<Arc<pkcs11::Token>>,
}

/// The key types notary-signer creates (`CryptoServiceIndex` has ecdsa and ed25519 only).
pub fn creatable(algorithm: &str) -> Result<KeyType> {
    match algorithm {
        "ecdsa" => Ok(KeyType::Ecdsa),
        "ed25519" => Ok(KeyType::Ed25519),
        other => Err(Error::UnsupportedAlgorithm(other.to_string())),
    }
}

fn info_of(row: KeyRow) -> Result<KeyInfo> {
    let key_type = KeyType::parse(&row.algorithm).map_err(|e| Error::CorruptKey {
        key_id: row.key_id.clone(),
        reason: e.to_string(),
    })?;
    Ok(KeyInfo {
        public: PublicKey::new(key_type, row.public),
        key_id: row.key_id,
        algorithm: row.algorithm,
        role: row.role,
        gun: row.gun,
        alias: row.passphrase_alias,
        created_at: row.created_at,
        last_used: row.last_used,
    })
}

impl KeyStore {
    pub fn open(backend: &Backend, default_alias: &str) -> Result<KeyStore> {
        let rows: Box<dyn KeyRows> = match backend {
            Backend::Memory => Box::new(sqlite::SqliteRows::in_memory()?),
            Backend::Sqlite(path) => Box::new(sqlite::SqliteRows::open(path)?),
            Backend::Postgres(url) => Box::new(postgres::PgRows::open(url)?),
            Backend::Mysql(dsn) => Box::new(mysql::MysqlRows::open(dsn)?),
        };
        Ok(KeyStore {
            rows,
            default_alias: default_alias.to_string(),
            memory: *backend == Backend::Memory,
            cache: KeyCache::new(cache::DEFAULT_CAPACITY),
            token: None,
        })
    }

    /// Make new ECDSA keys in (and sign with keys from) the PKCS#11 token `cfg` names.
    pub fn with_token(mut self, cfg: Option<&pkcs11::Pkcs11Config>) -> Result<KeyStore> {
        if let Some(cfg) = cfg {
            self.token = Some(Arc::new(pkcs11::Token::open(cfg)?));
        }
        Ok(self)
    }

    /// The key a row names, ready to sign: in the token, or decrypted from its JWE.
    fn load(&self, row: &KeyRow) -> Result<Holder> {
        let Some(id) = pkcs11::token_id(&row.private) else {
            let key = self.decrypt(row)?;
            return Ok(Holder::Soft {
                pss: pss_hash(&row.role, &key)?,
                key: Box::new(key),
            });
        };
        let id = id?;
        let token = self.token.clone().ok_or_else(|| {
            Error::Token(format!(
                "key {} lives in a PKCS#11 token: add the signer config's pkcs11 section",
                row.key_id
            ))
        })?;
        let public = info_of(row.clone())?.public;
        if public.id() != row.key_id || !token.has(&id)? {
            return Err(Error::CorruptKey {
                key_id: row.key_id.clone(),
                reason: "its token key is missing or does not match the stored public key".into(),
            });
        }
        Ok(Holder::Token { token, id, public })
    }

    pub fn default_alias(&self) -> &str {
        &self.default_alias
    }

    fn passphrase(&self, alias: &str) -> Result<zeroize::Zeroizing<String>> {
        if self.memory {
            return Ok(zeroize::Zeroizing::new(MEMORY_PASSPHRASE.into()));
        }
        passphrase::passphrase(alias)
    }

    /// Decrypt a row into its private key, checking that it matches the stored public key.
    fn decrypt(&self, row: &KeyRow) -> Result<PrivateKey> {
        let pass = self.passphrase(&row.passphrase_alias)?;
        let plain = jwe::decrypt(&row.private, &pass).map_err(|e| match e {
            trustbridge_tuf::Error::WrongPassphrase => Error::WrongPassphrase {
                alias: row.passphrase_alias.clone(),
                var: passphrase::env_var(&row.passphrase_alias),
                key_id: row.key_id.clone(),
            },
            other => Error::CorruptKey {
                key_id: row.key_id.clone(),
                reason: other.to_string(),
            },
        })?;
        let corrupt = |reason: String| Error::CorruptKey {
            key_id: row.key_id.clone(),
            reason,
        };
        let key_type = KeyType::parse(&row.algorithm).map_err(|e| corrupt(e.to_string()))?;
        let key = PrivateKey::from_notary_bytes(key_type, &plain)
            .map_err(|e| corrupt(format!("private key does not load: {e}")))?;
        if key.public_key().public != row.public || key.id() != row.key_id {
            return Err(corrupt(
                "private key does not match the stored public key or key ID".into(),
            ));
        }
        Ok(key)
    }

    /// Start-up check: the default alias has a passphrase, and every alias in use decrypts at
    /// least one of its keys (a wrong passphrase stops start-up, naming alias and variable).
    pub fn check_passphrases(&self) -> Result<()> {
        if self.memory {
            return Ok(());
        }
        self.passphrase(&self.default_alias)?;
        let all = self.rows.list()?;
        let mut by_alias: HashMap<&str, Vec<&KeyRow>> = HashMap::new();
        for row in all.iter().filter(|r| sealed(r)) {
            by_alias.entry(&row.passphrase_alias).or_default().push(row);
        }
        for keys in by_alias.into_values() {
            let mut first_err = None;
            let mut ok = false;
            for row in keys {
                match self.decrypt(row) {
                    Ok(_) => {
                        ok = true;
                        break;
                    }
                    Err(e @ Error::MissingPassphrase { .. }) => return Err(e),
                    Err(e @ Error::WrongPassphrase { .. }) => {
                        first_err.get_or_insert(e);
                    }
                    Err(e) => {
                        tracing::warn!(key_id = %row.key_id, error = %e, "stored key does not load");
                        first_err.get_or_insert(e);
                    }
                }
            }
            if !ok && let Some(e) = first_err {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Encrypt `key` under `alias` and store it as a new row.
    pub fn add(&self, role: &str, gun: &str, key: &PrivateKey, alias: &str) -> Result<()> {
        let pass = self.passphrase(alias)?;
        let private = jwe::encrypt(key.notary_bytes(), &pass)?;
        self.rows.insert(&KeyRow {
            key_id: key.id(),
            algorithm: key.key_type().as_str().into(),
            passphrase_alias: alias.into(),
            public: key.public_key().public.clone(),
            private,
            gun: gun.into(),
            role: role.into(),
            created_at: None,
            last_used: None,
        })
    }

    /// notary-signer's CreateKey: hand out the unused key for (role, gun, algorithm) if there
    /// is one (lowest key ID), else generate, encrypt under the default alias and store one.
    /// The memory backend always generates, as notary's does.
    pub fn create(&self, role: &str, gun: &str, algorithm: &str) -> Result<PublicKey> {
        let key_type = creatable(algorithm)?;
        if !self.memory
            && let Some(row) = self.rows.unused(role, gun, algorithm)?
        {
            return Ok(info_of(row)?.public);
        }
        self.generate(role, gun, key_type)
    }

    /// Always a new key (the admin CLI's `keys generate`).
    /// With a token configured, an ECDSA key is generated inside it (other types are refused).
    pub fn generate(&self, role: &str, gun: &str, key_type: KeyType) -> Result<PublicKey> {
        if let Some(token) = &self.token {
            return self.generate_in_token(token.clone(), role, gun, key_type);
        }
        let key = PrivateKey::generate(key_type)?;
        self.add(role, gun, &key, &self.default_alias.clone())?;
        let public = key.public_key().clone();
        let pss = pss_hash(role, &key)?;
        self.cache_insert(
            key.id(),
            Holder::Soft {
                key: Box::new(key),
                pss,
            },
            false,
        );
        Ok(public)
    }

    fn generate_in_token(
        &self,
        token: Arc<pkcs11::Token>,
        role: &str,
        gun: &str,
        key_type: KeyType,
    ) -> Result<PublicKey> {
        if key_type != KeyType::Ecdsa {
            return Err(Error::UnsupportedAlgorithm(format!(
                "{} (the PKCS#11 token makes ecdsa keys only: set trust_service.key_algorithm to ecdsa)",
                key_type.as_str()
            )));
        }
        let (id, spki) = token.generate_ecdsa(&format!("trustbridge {role} {gun}"))?;
        let public = PublicKey::new(KeyType::Ecdsa, spki);
        self.rows.insert(&KeyRow {
            key_id: public.id(),
            algorithm: KeyType::Ecdsa.as_str().into(),
            passphrase_alias: pkcs11::ALIAS.into(),
            public: public.public.clone(),
            private: format!("{}{}", pkcs11::MARKER, hex::encode(&id)),
            gun: gun.into(),
            role: role.into(),
            created_at: None,
            last_used: None,
        })?;
        self.cache_insert(
            public.id(),
            Holder::Token {
                token,
                id,
                public: public.clone(),
            },
            false,
        );
        Ok(public)
    }

    fn cache_insert(&self, key_id: String, key: Holder, marked: bool) -> Arc<Held> {
        self.cache.insert(key_id, key, marked)
    }

    /// Hold at most `capacity` decrypted keys (default [`cache::DEFAULT_CAPACITY`]).
    pub fn with_cache_capacity(mut self, capacity: usize) -> KeyStore {
        self.cache = KeyCache::new(capacity);
        self
    }

    /// How many decrypted keys are held now.
    pub fn cached_keys(&self) -> usize {
        self.cache.len()
    }

    pub fn info(&self, key_id: &str) -> Result<KeyInfo> {
        let row = self
            .rows
            .get(key_id)?
            .ok_or_else(|| Error::KeyNotFound(key_id.into()))?;
        info_of(row)
    }

    pub fn list(&self) -> Result<Vec<KeyInfo>> {
        self.rows.list()?.into_iter().map(info_of).collect()
    }

    /// The decrypted key for `key_id`, if the cache holds it.
    fn cached(&self, key_id: &str) -> Option<Arc<Held>> {
        self.cache.get(key_id)
    }

    fn held(&self, key_id: &str) -> Result<Arc<Held>> {
        if let Some(held) = self.cached(key_id) {
            let mut checked = held.checked.lock().unwrap_or_else(|p| p.into_inner());
            if checked.is_some_and(|t| t.elapsed() < REVALIDATE) {
                return Ok(held.clone());
            }
            if self.rows.get(key_id)?.is_none() {
                self.forget(key_id);
                return Err(Error::KeyNotFound(key_id.into()));
            }
            self.rows.mark_used(key_id)?;
            *checked = Some(Instant::now());
            return Ok(held.clone());
        }
        let row = self
            .rows
            .get(key_id)?
            .ok_or_else(|| Error::KeyNotFound(key_id.into()))?;
        let key = self.load(&row)?;
        self.rows.mark_used(key_id)?;
        Ok(self.cache_insert(key_id.to_string(), key, true))
    }

    /// Sign `msg` with `key_id` (the signer hashes; ECDSA comes back as raw r||s). The key
    /// becomes "used", so CreateKey no longer hands it out.
    pub fn sign(&self, key_id: &str, msg: &[u8]) -> Result<Signature> {
        self.held(key_id)?.sign(msg)
    }

    /// Sign only if the key is cached and needs no database work now (the hot path, run on
    /// the async worker); None means "call [`Self::sign`] off the worker".
    pub fn sign_cached(&self, key_id: &str, msg: &[u8]) -> Option<Result<Signature>> {
        let held = self.cached(key_id)?;
        let fresh = held
            .checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < REVALIDATE);
        fresh.then(|| held.sign(msg))
    }

    fn forget(&self, key_id: &str) {
        self.cache.remove(key_id);
    }

    /// Soft-delete; like notary's DeleteKey, deleting an absent key is not an error.
    /// A key in a token is destroyed there too (a token key has no copy anywhere else).
    pub fn delete(&self, key_id: &str) -> Result<bool> {
        self.forget(key_id);
        let row = self.rows.get(key_id)?;
        let existed = self.rows.soft_delete(key_id)?;
        if let Some(id) = row.and_then(|r| pkcs11::token_id(&r.private)) {
            let token = self.token.as_ref().ok_or_else(|| {
                Error::Token(format!(
                    "key {key_id} lives in a PKCS#11 token: add the signer config's pkcs11 section to destroy it there"
                ))
            })?;
            token.destroy(&id?)?;
        }
        Ok(existed)
    }

    /// Store `chain_pem` as the row `key_id` (role `role`, type `algorithm`): replaced in one
    /// statement when the row exists, so a reader sees the old chain or the new one. With
    /// `expected`, only while the row still holds that chain (a renewal: of two signers on
    /// one database renewing at once, one writes and the other sees it lost). Returns whether
    /// it was stored.
    pub fn put_chain(
        &self,
        key_id: &str,
        role: &str,
        algorithm: &str,
        chain_pem: &[u8],
        expected: Option<&[u8]>,
    ) -> Result<bool> {
        if self.rows.get(key_id)?.is_some() {
            return self.rows.set_public(key_id, expected, chain_pem);
        }
        if expected.is_some() {
            return Ok(false);
        }
        self.rows.insert(&KeyRow {
            key_id: key_id.into(),
            algorithm: algorithm.into(),
            passphrase_alias: String::new(),
            public: chain_pem.to_vec(),
            private: CERT_CHAIN.into(),
            gun: String::new(),
            role: role.into(),
            created_at: None,
            last_used: None,
        })?;
        Ok(true)
    }

    /// The chain stored as row `key_id`, if there is one.
    pub fn chain(&self, key_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .rows
            .get(key_id)?
            .filter(|r| r.private == CERT_CHAIN)
            .map(|r| r.public))
    }

    /// Every certificate chain row, for a backup bundle.
    pub fn chain_rows(&self) -> Result<Vec<ChainRow>> {
        self.rows
            .list()?
            .into_iter()
            .filter(|r| r.private == CERT_CHAIN)
            .map(|r| {
                Ok(ChainRow {
                    pem: String::from_utf8(r.public).map_err(|_| {
                        Error::Backup(format!("chain {} is not PEM text", r.key_id))
                    })?,
                    key_id: r.key_id,
                    algorithm: r.algorithm,
                    role: r.role,
                })
            })
            .collect()
    }

    /// Store chains from a backup, in one transaction; chains already present are left as
    /// they are. Returns how many were added.
    pub fn insert_chains(&self, chains: &[ChainRow]) -> Result<usize> {
        let rows: Vec<KeyRow> = chains
            .iter()
            .map(|c| KeyRow {
                key_id: c.key_id.clone(),
                algorithm: c.algorithm.clone(),
                passphrase_alias: String::new(),
                public: c.pem.clone().into_bytes(),
                private: CERT_CHAIN.into(),
                gun: String::new(),
                role: c.role.clone(),
                created_at: None,
                last_used: None,
            })
            .collect();
        self.rows.insert_missing(&rows)
    }

    /// How many live keys are in a token (and so in no backup).
    pub fn token_keys(&self) -> Result<usize> {
        Ok(self
            .rows
            .list()?
            .iter()
            .filter(|r| pkcs11::token_id(&r.private).is_some())
            .count())
    }

    /// Move every live key to `alias` in one transaction: all rows are re-encrypted, or none
    /// (keys in a token have no passphrase and are left alone).
    pub fn re_encrypt(&self, alias: &str) -> Result<usize> {
        let new_pass = self.passphrase(alias)?;
        let all: Vec<KeyRow> = self.rows.list()?.into_iter().filter(sealed).collect();
        let mut changed = Vec::with_capacity(all.len());
        for row in &all {
            let key = self.decrypt(row)?;
            let jwe = jwe::encrypt(key.notary_bytes(), &new_pass)?;
            changed.push((row.key_id.clone(), alias.to_string(), jwe));
        }
        self.rows.set_private(&changed)?;
        Ok(all.len())
    }

    /// Every live key decrypted, for a backup bundle (a token's keys cannot leave it).
    pub fn export_all(&self) -> Result<Vec<(KeyInfo, PrivateKey)>> {
        let all = self.rows.list()?;
        all.into_iter()
            .filter(sealed)
            .map(|row| {
                let key = self.decrypt(&row)?;
                Ok((info_of(row)?, key))
            })
            .collect()
    }

    /// Store keys from a backup under the default alias, in one transaction. Keys already
    /// present are left as they are; returns how many were added.
    pub fn import_all(&self, keys: &[(KeyInfo, PrivateKey)]) -> Result<usize> {
        let pass = self.passphrase(&self.default_alias)?;
        let mut rows = Vec::with_capacity(keys.len());
        for (info, key) in keys {
            if key.id() != info.key_id {
                return Err(Error::Backup(format!(
                    "key {} in the bundle does not match its private key",
                    info.key_id
                )));
            }
            rows.push(KeyRow {
                key_id: info.key_id.clone(),
                algorithm: info.algorithm.clone(),
                passphrase_alias: self.default_alias.clone(),
                public: key.public_key().public.clone(),
                private: jwe::encrypt(key.notary_bytes(), &pass)?,
                gun: info.gun.clone(),
                role: info.role.clone(),
                created_at: info.created_at.clone(),
                last_used: info.last_used.clone(),
            });
        }
        self.rows.insert_missing(&rows)
    }
}
