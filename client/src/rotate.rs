//! `key rotate` (reference §8.3): a new key for a base role, listed in root v+1 and published
//! at once. Server-managed roles (`-r`) get their new key from `POST <role>.key`; several
//! server roles can be rotated in one root version, which is how a repository whose timestamp
//! *and* snapshot keys stayed behind on another server moves onto this one. A root rotation
//! is signed by the old and the new root key, as notary does.

use trustbridge_tuf::metadata::{RootRole, expiry};
use trustbridge_tuf::{GoTime, KeyType, PrivateKey, x509};

use crate::error::{Error, Result};
use crate::publish::{Draft, Repo};

impl Repo<'_> {
    /// Rotate `roles` (root, targets, snapshot, timestamp); `server` asks the server for the
    /// new keys (required for timestamp). Returns the new key IDs.
    pub fn rotate(&self, roles: &[String], server: bool) -> Result<Vec<(String, String)>> {
        let v = self.update(true)?.ok_or_else(|| Error::NotFound {
            gun: self.gun.clone(),
            server: self.remote.server().into(),
        })?;
        let mut draft = Draft::from_verified(&v);
        let old = draft.root.signed.clone();
        let mut body = old.clone();
        let mut new_root_key: Option<(String, PrivateKey)> = None;
        let mut out = Vec::new();
        for role in roles {
            let new_key = match (role.as_str(), server) {
                ("timestamp", false) => {
                    return Err(Error::Usage(
                        "the timestamp key is always held by the server: add -r (--server-managed)"
                            .into(),
                    ));
                }
                ("snapshot" | "timestamp", true) => {
                    self.remote.server_key(&self.gun, role, true)?
                }
                ("root", false) => {
                    let k = PrivateKey::generate(KeyType::Ecdsa)?;
                    let cert = x509::generate_root_certificate(&self.gun, &k, expiry::ROOT_YEARS)?;
                    self.keys.save(&k, "root", None)?;
                    new_root_key = Some((cert.id(), k));
                    cert
                }
                ("targets" | "snapshot", false) => {
                    let k = PrivateKey::generate(KeyType::Ecdsa)?;
                    self.keys.save(&k, role, Some(&self.gun))?;
                    k.public_key().clone()
                }
                (r, true) => {
                    return Err(Error::Usage(format!(
                        "only snapshot and timestamp keys can be held by the server, not {r}"
                    )));
                }
                (r, false) => return Err(Error::Usage(format!("{r} is not a base role"))),
            };
            let old_ids = body
                .roles
                .get(role.as_str())
                .map(|r| r.keyids.clone())
                .unwrap_or_default();
            body.roles.insert(
                role.clone(),
                RootRole {
                    keyids: vec![new_key.id()],
                    threshold: 1,
                },
            );
            for id in old_ids {
                if !body.roles.values().any(|r| r.keyids.contains(&id)) {
                    body.keys.remove(&id);
                }
            }
            out.push((role.clone(), new_key.id()));
            body.keys.insert(new_key.id(), new_key);
            if role == "targets" {
                draft.dirty.insert("targets".into());
            }
        }
        body.version += 1;
        body.expires = GoTime::now().plus_years(expiry::ROOT_YEARS);
        let extra: Vec<(String, &PrivateKey)> =
            new_root_key.iter().map(|(id, k)| (id.clone(), k)).collect();
        draft.root = self.sign_root(body, &old, &extra)?;
        draft.root_dirty = true;
        self.upload(&mut draft)?;
        self.update(false)?;
        Ok(out)
    }
}
