//! What the load generators (bench/) share: an HTTPS client trusting one CA, the Notary v1
//! calls a publisher makes, and a new repository with server-held snapshot and timestamp (as
//! docker trust makes them), its metadata made with the trustbridge core so every server sees
//! the same bytes.

use std::collections::BTreeMap;

use trustbridge_tuf::metadata::{FileMeta, expiry};
use trustbridge_tuf::{GoTime, KeyType, PrivateKey, PublicKey, Root, Signed, Targets, x509};

pub type LoadError = Box<dyn std::error::Error + Send + Sync>;

/// An HTTP/1.1 client trusting only `ca` (PEM).
pub fn client(ca: &[u8]) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for der in x509::certificate_ders(ca).expect("CA PEM") {
        roots.add(der.into()).expect("CA cert");
    }
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .pool_max_idle_per_host(64)
        .build()
        .expect("client")
}

/// `GET <base>/<role>.key`: the server-held key (made on first ask: the signer's CreateKey).
pub async fn server_key(
    c: &reqwest::Client,
    base: &str,
    role: &str,
) -> Result<PublicKey, LoadError> {
    let r = c.get(format!("{base}/{role}.key")).send().await?;
    let status = r.status();
    let body = r.bytes().await?;
    if !status.is_success() {
        return Err(format!(
            "GET {role}.key: {status} {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    Ok(serde_json::from_slice(&body)?)
}

/// `POST <base>/` with one multipart part per role.
pub async fn post(
    c: &reqwest::Client,
    base: &str,
    parts: Vec<(&str, Vec<u8>)>,
) -> Result<(), LoadError> {
    let mut form = reqwest::multipart::Form::new();
    for (role, data) in parts {
        form = form.part(
            "files",
            reqwest::multipart::Part::bytes(data)
                .file_name(role.to_string())
                .mime_str("application/octet-stream")?,
        );
    }
    let r = c.post(format!("{base}/")).multipart(form).send().await?;
    if !r.status().is_success() {
        let s = r.status();
        return Err(format!("POST: {s} {}", r.text().await.unwrap_or_default()).into());
    }
    Ok(())
}

/// A repository being published: its targets key and current targets body.
pub struct Repository {
    pub base: String,
    pub targets_key: PrivateKey,
    pub targets: Targets,
}

impl Repository {
    /// Create `gun` on the server at `url`: ask for its timestamp and snapshot keys, publish
    /// root and an empty targets (version 1).
    pub async fn create(
        c: &reqwest::Client,
        url: &str,
        gun: &str,
    ) -> Result<Repository, LoadError> {
        let base = format!("{url}/v2/{gun}/_trust/tuf");
        let ts = server_key(c, &base, "timestamp").await?;
        let sn = server_key(c, &base, "snapshot").await?;
        let root_key = PrivateKey::generate(KeyType::Ecdsa)?;
        let cert = x509::generate_root_certificate(gun, &root_key, 10)?;
        let targets_key = PrivateKey::generate(KeyType::Ecdsa)?;
        let root = Root::initial([
            ("root", cert.clone()),
            ("targets", targets_key.public_key().clone()),
            ("snapshot", sn),
            ("timestamp", ts),
        ]);
        let root = Signed::sign_with_ids(root, vec![(cert.id(), &root_key)])?;
        let targets = Targets {
            type_: "Targets".into(),
            delegations: Default::default(),
            expires: GoTime::now().plus_years(expiry::TARGETS_YEARS),
            targets: BTreeMap::new(),
            version: 1,
        };
        let first = Signed::sign(targets.clone(), &[&targets_key])?;
        post(
            c,
            &base,
            vec![
                ("root", root.raw().to_vec()),
                ("targets", first.raw().to_vec()),
            ],
        )
        .await?;
        Ok(Repository {
            base,
            targets_key,
            targets,
        })
    }

    /// The next targets version with `add` more tags (named `tag-<version>-<i>`), at most
    /// `window` kept (0: all), signed.
    pub fn next(&mut self, add: usize, window: usize) -> Result<Vec<u8>, LoadError> {
        self.targets.version += 1;
        let v = self.targets.version;
        for i in 0..add {
            let name = format!("tag-{v}-{i}");
            // As `docker trust sign` writes a tag: its manifest's length and sha256 only.
            let mut meta = FileMeta::from_bytes(name.as_bytes());
            meta.hashes.retain(|alg, _| alg == "sha256");
            self.targets.targets.insert(name, meta);
        }
        while window > 0 && self.targets.targets.len() > window {
            let oldest = self.targets.targets.keys().next().cloned();
            if let Some(k) = oldest {
                self.targets.targets.remove(&k);
            }
        }
        Ok(Signed::sign(self.targets.clone(), &[&self.targets_key])?
            .raw()
            .to_vec())
    }

    /// Publish the next targets version (the server signs snapshot and timestamp).
    pub async fn publish(
        &mut self,
        c: &reqwest::Client,
        add: usize,
        window: usize,
    ) -> Result<usize, LoadError> {
        let t = self.next(add, window)?;
        let n = t.len();
        post(c, &self.base, vec![("targets", t)]).await?;
        Ok(n)
    }
}
