//! Keys held in a PKCS#11 token (an HSM; SoftHSM2 in the tests), through the `cryptoki` crate.
//! With `pkcs11` configured, every ECDSA key the signer makes (CreateKey, `keys generate`,
//! `cosign-key generate`) is generated inside the token as a P-256 pair whose private half is
//! `CKA_SENSITIVE` and not `CKA_EXTRACTABLE`: it never leaves the token, and every signature is
//! made there. PKCS#11 v2.40's `CKM_ECDSA` signs a digest (SoftHSM 2.6.1 has no
//! `CKM_ECDSA_SHA256`), so the message is hashed with SHA-256 here and the token returns r‖s,
//! which is notary's `ecdsa` signature form as it is.
//!
//! The key's row (notary-signer's `private_keys`, in the configured database) is kept as for
//! any key, so CreateKey's reuse, listing and soft deletes work unchanged; its `private` column
//! holds `pkcs11:<CKA_ID in hex>` instead of a JWE and its alias is `pkcs11`. Go notary-signer
//! cannot use such rows (it has no PKCS#11 support).
//!
//! Which key types work: ECDSA P-256 only (notary-server's default `key_algorithm`); Ed25519
//! and RSA are refused while a token is configured. Keys imported from a file (a cosign key, a
//! backup) stay encrypted in the database: a token generates its own keys.

use std::path::PathBuf;
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType as CkKeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use ring::rand::SecureRandom;

use crate::error::{Error, Result};

/// Marks a row whose private key is in the token: `pkcs11:<CKA_ID hex>`.
pub const MARKER: &str = "pkcs11:";
/// The alias column of such a row (there is no passphrase).
pub const ALIAS: &str = "pkcs11";

/// DER of the P-256 curve's OID, the public key's `CKA_EC_PARAMS`.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// The SubjectPublicKeyInfo prefix of a P-256 key, before the 65-byte uncompressed point:
/// notary's ECDSA public key is that SPKI DER.
const P256_SPKI: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The `pkcs11` section of the signer config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The token, by its label.
    pub token_label: String,
    /// The environment variable holding the user PIN (never in the file).
    pub pin_env: String,
}

/// Default for [`Pkcs11Config::pin_env`].
pub const DEFAULT_PIN_ENV: &str = "TRUSTBRIDGE_PKCS11_PIN";

fn hsm(what: &str, e: cryptoki::error::Error) -> Error {
    Error::Token(format!("{what}: {e}"))
}

/// A logged-in session on the configured token. One session, taken in turn: the signer signs
/// from its cache of handles and a token serializes operations on a session anyway.
pub struct Token {
    _ctx: Pkcs11,
    session: Mutex<Session>,
}

impl Token {
    pub fn open(cfg: &Pkcs11Config) -> Result<Token> {
        let pin = std::env::var(&cfg.pin_env).map_err(|_| {
            Error::Token(format!(
                "the token's PIN is missing: set the environment variable {}",
                cfg.pin_env
            ))
        })?;
        let ctx = Pkcs11::new(&cfg.module)
            .map_err(|e| hsm(&format!("loading {}", cfg.module.display()), e))?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(|e| hsm("C_Initialize", e))?;
        let mut slot = None;
        for s in ctx
            .get_slots_with_token()
            .map_err(|e| hsm("listing slots", e))?
        {
            let info = ctx.get_token_info(s).map_err(|e| hsm("token info", e))?;
            if info.label().trim_end() == cfg.token_label {
                slot = Some(s);
                break;
            }
        }
        let slot = slot.ok_or_else(|| {
            Error::Token(format!(
                "no token labelled {:?} in {} (initialise one, e.g. softhsm2-util --init-token --free --label {})",
                cfg.token_label,
                cfg.module.display(),
                cfg.token_label
            ))
        })?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| hsm("opening a session", e))?;
        session
            .login(UserType::User, Some(&AuthPin::new(pin.into())))
            .map_err(|e| {
                hsm(
                    &format!(
                        "logging in to {:?} (PIN from {})",
                        cfg.token_label, cfg.pin_env
                    ),
                    e,
                )
            })?;
        Ok(Token {
            _ctx: ctx,
            session: Mutex::new(session),
        })
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Generate a P-256 pair in the token, labelled `label`; returns its `CKA_ID` and
    /// notary's public key bytes (SPKI DER).
    pub fn generate_ecdsa(&self, label: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut id = vec![0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut id)
            .map_err(|_| Error::Token("no randomness for a key ID".into()))?;
        let public_template = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::KeyType(CkKeyType::EC),
            Attribute::Verify(true),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Id(id.clone()),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let private_template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Id(id.clone()),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let session = self.session();
        let (public, _private) = session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &public_template,
                &private_template,
            )
            .map_err(|e| hsm("generating a P-256 key", e))?;
        let attrs = session
            .get_attributes(public, &[AttributeType::EcPoint])
            .map_err(|e| hsm("reading the public point", e))?;
        let point = attrs
            .into_iter()
            .find_map(|a| match a {
                Attribute::EcPoint(p) => Some(p),
                _ => None,
            })
            .ok_or_else(|| Error::Token("the token gave no CKA_EC_POINT".into()))?;
        Ok((id, spki(&point)?))
    }

    fn find(&self, session: &Session, id: &[u8], class: ObjectClass) -> Result<Vec<ObjectHandle>> {
        session
            .find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])
            .map_err(|e| hsm("finding a key", e))
    }

    /// Whether the private key with `id` is in the token.
    pub fn has(&self, id: &[u8]) -> Result<bool> {
        let session = self.session();
        Ok(!self
            .find(&session, id, ObjectClass::PRIVATE_KEY)?
            .is_empty())
    }

    /// Sign SHA-256(`msg`) with the private key `id`: r‖s.
    pub fn sign(&self, id: &[u8], msg: &[u8]) -> Result<Vec<u8>> {
        let digest = ring::digest::digest(&ring::digest::SHA256, msg);
        let session = self.session();
        let key = self
            .find(&session, id, ObjectClass::PRIVATE_KEY)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Token(format!("key {} is not in the token", hex::encode(id))))?;
        session
            .sign(&Mechanism::Ecdsa, key, digest.as_ref())
            .map_err(|e| hsm("signing", e))
    }

    /// Destroy both halves of the pair `id`; returns whether any existed.
    pub fn destroy(&self, id: &[u8]) -> Result<bool> {
        let session = self.session();
        let mut found = false;
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
            for h in self.find(&session, id, class)? {
                session
                    .destroy_object(h)
                    .map_err(|e| hsm("destroying a key", e))?;
                found = true;
            }
        }
        Ok(found)
    }
}

/// notary's ECDSA public key (SPKI DER) from `CKA_EC_POINT`, which tokens give DER-wrapped
/// (an OCTET STRING holding 04‖X‖Y) or, some, bare.
fn spki(point: &[u8]) -> Result<Vec<u8>> {
    let raw = match point {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest,
        p if p.len() == 65 && p[0] == 0x04 => p,
        _ => {
            return Err(Error::Token(format!(
                "unexpected CKA_EC_POINT of {} bytes (not P-256)",
                point.len()
            )));
        }
    };
    let mut out = P256_SPKI.to_vec();
    out.extend_from_slice(raw);
    Ok(out)
}

/// The `CKA_ID` a row's `private` column names, if the key is in a token.
pub fn token_id(private: &str) -> Option<Result<Vec<u8>>> {
    let hex_id = private.strip_prefix(MARKER)?;
    Some(
        hex::decode(hex_id)
            .map_err(|_| Error::Token(format!("bad token key reference {private:?}"))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_become_notary_public_keys() {
        let key = trustbridge_tuf::PrivateKey::generate(trustbridge_tuf::KeyType::Ecdsa).unwrap();
        let spki_der = key.public_key().public.clone();
        let point = &spki_der[26..];
        let mut wrapped = vec![0x04, 0x41];
        wrapped.extend_from_slice(point);
        assert_eq!(spki(&wrapped).unwrap(), spki_der);
        assert_eq!(spki(point).unwrap(), spki_der);
        assert!(spki(&point[..33]).is_err());
        assert_eq!(token_id("pkcs11:00ff").unwrap().unwrap(), [0, 255]);
        assert!(token_id("eyJhbGciOi...").is_none());
    }
}
