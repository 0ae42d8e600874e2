//! The real notation CLI (Debian's 1.3.2 from sid, fetched by scripts/test.sh with
//! ../shared/peers/debian-extra.sh) in a configuration directory of its own: trust store,
//! trust policy, test keys, all under one temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// notation's binary. Missing fails the test: scripts/test.sh installs it.
pub fn notation_bin() -> PathBuf {
    crate::peer("sid", "notation")
}

/// One user's notation: `$XDG_CONFIG_HOME/notation` under `home`.
pub struct Notation {
    pub home: PathBuf,
}

impl Notation {
    pub fn new(home: &Path) -> Notation {
        std::fs::create_dir_all(home.join("config")).unwrap();
        Notation {
            home: home.to_path_buf(),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(notation_bin());
        c.args(args)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env_remove("NOTATION_USERNAME")
            .env_remove("NOTATION_PASSWORD");
        c
    }

    /// Run and return the output (whatever the exit status).
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("notation runs")
    }

    /// Run, failing the test when notation fails; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "notation {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `notation cert add --type ca --store STORE FILE`.
    pub fn trust_ca(&self, store: &str, pem: &Path) {
        self.ok(&[
            "cert",
            "add",
            "--type",
            "ca",
            "--store",
            store,
            pem.to_str().unwrap(),
        ]);
    }

    /// Import a trust policy (the JSON text).
    pub fn policy(&self, json: &serde_json::Value) {
        let f = self.home.join("trustpolicy.json");
        std::fs::write(&f, serde_json::to_vec_pretty(json).unwrap()).unwrap();
        self.ok(&["policy", "import", "--force", f.to_str().unwrap()]);
    }

    /// `notation verify` of `image` (plain HTTP registry): whether it passed, and its output.
    pub fn verify(&self, image: &str, extra: &[&str]) -> (bool, String) {
        let mut args = vec!["verify", "--insecure-registry"];
        args.extend_from_slice(extra);
        args.push(image);
        let out = self.run(&args);
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// `notation list`: the signature manifests' digests (its tree lists them under
    /// `application/vnd.cncf.notary.signature`, below the image line).
    pub fn list(&self, image: &str) -> Vec<String> {
        let out = self.ok(&["list", "--insecure-registry", image]);
        out.lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().last())
            .filter(|t| t.starts_with("sha256:"))
            .map(str::to_string)
            .collect()
    }
}

/// An organisation's own PKI, made with the openssl CLI, as an admin brings it to
/// `trustbridge-signer notation-key import`: an RSA root CA, an RSA intermediate CA (pathlen
/// 0) and leaves for one RSA 3072 signing key (an unencrypted PKCS#8 file).
pub struct AdminPki {
    pub dir: PathBuf,
    /// The signing key (PKCS#8 PEM).
    pub key: PathBuf,
    /// The root certificate (the Notation user's trust anchor).
    pub root: PathBuf,
    serial: std::cell::Cell<u32>,
}

/// openssl's request config: the extension sections [`AdminPki`] issues with. `leaf` meets
/// Notation's rules for a signing certificate; `tls` is a TLS server certificate, which
/// Notation refuses.
const PKI_CONFIG: &str = "[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[intermediate]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[tls]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
";

/// The subject of [`AdminPki`]'s leaves, as openssl takes it.
pub const ADMIN_LEAF_SUBJECT: &str = "/C=DE/ST=Hamburg/O=Example Corp/CN=release signing";
/// The same subject as a Notation trust policy names it.
pub const ADMIN_LEAF_IDENTITY: &str =
    "x509.subject: C=DE, ST=Hamburg, O=Example Corp, CN=release signing";

fn openssl(dir: &Path, args: &[&str]) {
    crate::run_ok(
        &format!("openssl {}", args[0]),
        Command::new("openssl").args(args).current_dir(dir),
    );
}

impl AdminPki {
    pub fn new(dir: &Path) -> AdminPki {
        crate::require_bin("openssl");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("pki.cnf"), PKI_CONFIG).unwrap();
        for k in ["root", "intermediate", "signing"] {
            openssl(
                dir,
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:3072",
                    "-out",
                    &format!("{k}.key"),
                ],
            );
        }
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-new",
                "-config",
                "pki.cnf",
                "-extensions",
                "root",
                "-key",
                "root.key",
                "-subj",
                "/C=DE/O=Example Corp/CN=Example Corp Root CA",
                "-days",
                "3650",
                "-sha256",
                "-out",
                "root.crt",
            ],
        );
        let pki = AdminPki {
            dir: dir.to_path_buf(),
            key: dir.join("signing.key"),
            root: dir.join("root.crt"),
            serial: std::cell::Cell::new(1),
        };
        pki.issue(
            "intermediate",
            "/C=DE/O=Example Corp/CN=Example Corp Signing CA",
            "root",
            "intermediate",
            1825,
        );
        pki
    }

    /// Issue `name.crt` for key `key` under CA `ca` with extension section `ext`.
    fn issue(&self, name: &str, subject: &str, ca: &str, ext: &str, days: u32) {
        let key = if ext == "intermediate" {
            "intermediate"
        } else {
            "signing"
        };
        let serial = self.serial.get() + 1;
        self.serial.set(serial);
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-config",
                "pki.cnf",
                "-key",
                &format!("{key}.key"),
                "-subj",
                subject,
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.crt"),
                "-CAkey",
                &format!("{ca}.key"),
                "-set_serial",
                &serial.to_string(),
                "-extfile",
                "pki.cnf",
                "-extensions",
                ext,
                "-days",
                &days.to_string(),
                "-sha256",
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }

    /// A new certificate for the signing key (extension section `ext`: `leaf` or `tls`), as
    /// the chain file an admin imports: leaf, intermediate, root.
    pub fn leaf_chain(&self, name: &str, ext: &str) -> PathBuf {
        self.issue(name, ADMIN_LEAF_SUBJECT, "intermediate", ext, 90);
        let mut chain = Vec::new();
        for c in [name, "intermediate", "root"] {
            chain.extend(std::fs::read(self.dir.join(format!("{c}.crt"))).unwrap());
        }
        let path = self.dir.join(format!("{name}-chain.pem"));
        std::fs::write(&path, chain).unwrap();
        path
    }
}
