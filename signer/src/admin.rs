//! The offline admin commands: they open the key store named by the config directly, so they
//! work with no server (and no signer service) running. Each returns the text to print.

use std::path::Path;

use trustbridge_tuf::KeyType;

use crate::backup;
use crate::config::{Backend, Config};
use crate::cosign;
use crate::error::{Error, Result};
use crate::keystore::{KeyInfo, KeyStore, creatable};

/// Open the store of `config` for an admin command.
pub fn open(config: &Config) -> Result<KeyStore> {
    if config.backend == Backend::Memory {
        return Err(Error::Invalid(
            "the memory backend keeps no keys between runs: point storage.backend at \"sqlite3\" to use admin commands".into(),
        ));
    }
    KeyStore::open(&config.backend, &config.default_alias)?.with_token(config.pkcs11.as_ref())
}

fn or_dash(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

pub fn list(store: &KeyStore) -> Result<String> {
    let keys = store.list()?;
    let mut out = format!(
        "{:<64}  {:<9}  {:<10}  {:<12}  {:<25}  {:<25}  GUN\n",
        "KEY ID", "ALGORITHM", "ROLE", "ALIAS", "CREATED", "LAST USED"
    );
    for k in &keys {
        out.push_str(&format!(
            "{:<64}  {:<9}  {:<10}  {:<12}  {:<25}  {:<25}  {}\n",
            k.key_id,
            k.algorithm,
            k.role,
            k.alias,
            or_dash(&k.created_at),
            or_dash(&k.last_used),
            if k.gun.is_empty() { "-" } else { &k.gun }
        ));
    }
    out.push_str(&format!("{} key(s)\n", keys.len()));
    Ok(out)
}

fn describe(k: &KeyInfo) -> String {
    format!(
        "key_id:     {}\nalgorithm:  {}\nrole:       {}\ngun:        {}\nalias:      {}\ncreated_at: {}\nlast_used:  {}\npublic:     {}\n",
        k.key_id,
        k.algorithm,
        k.role,
        k.gun,
        k.alias,
        or_dash(&k.created_at),
        or_dash(&k.last_used),
        serde_json::to_string(&k.public).unwrap_or_default()
    )
}

pub fn show(store: &KeyStore, key_id: &str) -> Result<String> {
    Ok(describe(&store.info(key_id)?))
}

/// The public key as notary's key JSON, or as a PEM `PUBLIC KEY` (ECDSA) with `pem`.
pub fn export_public(store: &KeyStore, key_id: &str, pem: bool) -> Result<String> {
    let info = store.info(key_id)?;
    if pem {
        return match info.public.key_type {
            KeyType::Ecdsa | KeyType::Rsa => Ok(pem::encode(&pem::Pem::new(
                "PUBLIC KEY",
                info.public.public.clone(),
            ))),
            other => Err(Error::Invalid(format!(
                "a {other} key has no PEM public key form: drop --pem for notary's key JSON"
            ))),
        };
    }
    Ok(format!(
        "{}\n",
        serde_json::to_string(&info.public).map_err(|e| Error::Invalid(e.to_string()))?
    ))
}

pub fn generate(store: &KeyStore, role: &str, gun: &str, algorithm: &str) -> Result<String> {
    let key = store.generate(role, gun, creatable(algorithm)?)?;
    Ok(format!("{}\n", key.id()))
}

pub fn delete(store: &KeyStore, key_id: &str) -> Result<String> {
    if store.delete(key_id)? {
        Ok(format!("deleted key {key_id}\n"))
    } else {
        Err(Error::KeyNotFound(key_id.into()))
    }
}

pub fn re_encrypt(store: &KeyStore, alias: &str) -> Result<String> {
    let n = store.re_encrypt(alias)?;
    Ok(format!(
        "re-encrypted {n} key(s) under alias {alias:?}; set storage.default_alias to {alias:?} so new keys use it too\n"
    ))
}

pub fn backup(store: &KeyStore, out: &Path, passphrase: &str) -> Result<String> {
    let contents = backup::Contents {
        keys: store.export_all()?,
        chains: store.chain_rows()?,
    };
    let text = backup::encode(&contents, passphrase)?;
    write_private(out, text.as_bytes())?;
    let mut said = format!(
        "wrote {} key(s) and {} certificate chain(s) to {}\n",
        contents.keys.len(),
        contents.chains.len(),
        out.display()
    );
    let in_token = store.token_keys()?;
    if in_token > 0 {
        said.push_str(&format!(
            "{in_token} key(s) in the PKCS#11 token are not in it: back the token up with its own tools\n"
        ));
    }
    Ok(said)
}

pub fn restore(store: &KeyStore, file: &Path, passphrase: &str) -> Result<String> {
    let text = std::fs::read(file).map_err(|e| Error::io(file, e))?;
    let contents = backup::decode(&text, passphrase)?;
    let added = store.import_all(&contents.keys)?;
    let chains = store.insert_chains(&contents.chains)?;
    Ok(format!(
        "restored {added} key(s) ({} already present) under alias {:?}, and {chains} certificate chain(s)\n",
        contents.keys.len() - added,
        store.default_alias()
    ))
}

/// The live Cosign bridge key, if any.
pub fn cosign_key(store: &KeyStore) -> Result<Option<KeyInfo>> {
    Ok(store
        .list()?
        .into_iter()
        .find(|k| k.role == cosign::COSIGN_ROLE))
}

fn refuse_second_cosign_key(store: &KeyStore) -> Result<()> {
    if let Some(k) = cosign_key(store)? {
        return Err(Error::Invalid(format!(
            "a Cosign bridge key already exists ({}): delete it first with `trustbridge-signer keys delete {}`",
            k.key_id, k.key_id
        )));
    }
    Ok(())
}

pub fn cosign_generate(store: &KeyStore) -> Result<String> {
    refuse_second_cosign_key(store)?;
    let key = store.generate(cosign::COSIGN_ROLE, cosign::COSIGN_GUN, KeyType::Ecdsa)?;
    Ok(format!("{}\n", key.id()))
}

pub fn cosign_import(store: &KeyStore, file: &Path, password: &str) -> Result<String> {
    refuse_second_cosign_key(store)?;
    let text = std::fs::read(file).map_err(|e| Error::io(file, e))?;
    let key = cosign::decrypt(&text, password)?;
    store.add(
        cosign::COSIGN_ROLE,
        cosign::COSIGN_GUN,
        &key,
        store.default_alias(),
    )?;
    Ok(format!("{}\n", key.id()))
}

pub fn cosign_export_public(store: &KeyStore) -> Result<String> {
    let k = cosign_key(store)?.ok_or_else(|| {
        Error::Invalid(
            "no Cosign bridge key: create one with `trustbridge-signer cosign-key generate` or `cosign-key import cosign.key`".into(),
        )
    })?;
    cosign::public_pem(&k.public)
}

/// Write a secret file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))
}
