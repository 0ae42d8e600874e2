//! The cache of decrypted keys (notary's `cachedcryptoservice` keeps one too), so a hot Sign
//! does no database or PBKDF2 work. Bounded: at most `capacity` keys are held. When a new key
//! would pass that, the least recently used quarter is dropped (an evicted key is decrypted
//! again on its next Sign), so a signer that has made 200 000 server-held keys keeps the few
//! thousand that sign, not all of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use trustbridge_tuf::{PrivateKey, PssHash, PublicKey};

use super::{Signature, pkcs11};
use crate::error::Result;

/// Keys held by default: about 10 MiB of decrypted P-256 keys.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Where a cached key signs: in this process (decrypted from its JWE) or in the token.
pub(super) enum Holder {
    /// `pss`: the RSASSA-PSS hash when it is not notary's SHA-256 (a Notation RSA key).
    Soft {
        key: Box<PrivateKey>,
        pss: Option<PssHash>,
    },
    Token {
        token: Arc<pkcs11::Token>,
        id: Vec<u8>,
        public: PublicKey,
    },
}

pub(super) struct Held {
    key: Holder,
    /// When the row was last checked live and `last_used` written; None = not yet (a key
    /// generated here that has not signed).
    pub(super) checked: Mutex<Option<Instant>>,
    /// The cache's clock at this key's last use (the eviction order).
    used: AtomicU64,
}

impl Held {
    pub(super) fn sign(&self, msg: &[u8]) -> Result<Signature> {
        Ok(match &self.key {
            Holder::Soft { key, pss } => Signature {
                key: key.public_key().clone(),
                method: key.method(),
                bytes: match pss {
                    Some(hash) => key.sign_rsa_pss(msg, *hash)?,
                    None => key.sign(msg)?,
                },
            },
            Holder::Token { token, id, public } => Signature {
                key: public.clone(),
                method: "ecdsa",
                bytes: token.sign(id, msg)?,
            },
        })
    }
}

pub(super) struct KeyCache {
    map: RwLock<HashMap<String, Arc<Held>>>,
    capacity: usize,
    /// Counts uses; a key's `used` is the count at its last use.
    clock: AtomicU64,
}

impl KeyCache {
    pub(super) fn new(capacity: usize) -> KeyCache {
        KeyCache {
            map: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
            clock: AtomicU64::new(0),
        }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn get(&self, key_id: &str) -> Option<Arc<Held>> {
        let held = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
            .cloned()?;
        held.used.store(self.tick(), Ordering::Relaxed);
        Some(held)
    }

    /// Hold `key` (`marked`: its row was just checked live); drops the least recently used
    /// quarter first when the cache is full.
    pub(super) fn insert(&self, key_id: String, key: Holder, marked: bool) -> Arc<Held> {
        let held = Arc::new(Held {
            key,
            checked: Mutex::new(marked.then(Instant::now)),
            used: AtomicU64::new(self.tick()),
        });
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity && !map.contains_key(&key_id) {
            let mut by_use: Vec<(u64, String)> = map
                .iter()
                .map(|(id, h)| (h.used.load(Ordering::Relaxed), id.clone()))
                .collect();
            let drop = (self.capacity / 4).max(1).min(by_use.len());
            by_use.select_nth_unstable(drop - 1);
            for (_, id) in &by_use[..drop] {
                map.remove(id);
            }
        }
        map.insert(key_id, held.clone());
        held
    }

    pub(super) fn remove(&self, key_id: &str) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key_id);
    }

    pub(super) fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Backend, KeyStore};
    use trustbridge_tuf::KeyType;

    /// More keys sign than the cache holds: it never passes its capacity, and every key,
    /// evicted or not, still signs (decrypted again) with signatures that verify.
    #[test]
    fn the_cache_stays_within_its_capacity_and_evicted_keys_still_sign() {
        let store = KeyStore::open(&Backend::Memory, "default")
            .unwrap()
            .with_cache_capacity(8);
        let keys: Vec<_> = (0..40)
            .map(|i| {
                store
                    .generate("timestamp", &format!("gun/{i}"), KeyType::Ecdsa)
                    .unwrap()
            })
            .collect();
        assert!(store.cached_keys() <= 8, "{}", store.cached_keys());
        for round in 0..2 {
            for k in &keys {
                let msg = format!("round {round}");
                let sig = store.sign(&k.id(), msg.as_bytes()).unwrap();
                k.verify("ecdsa", msg.as_bytes(), &sig.bytes).unwrap();
                assert!(store.cached_keys() <= 8, "{}", store.cached_keys());
            }
        }
        // A key in steady use is not the one evicted.
        let hot = keys[0].id();
        for k in &keys[1..] {
            store.sign(&hot, b"hot").unwrap();
            store.sign(&k.id(), b"cold").unwrap();
            assert!(store.cache.get(&hot).is_some(), "the hot key was evicted");
        }
    }
}
