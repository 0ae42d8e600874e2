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
