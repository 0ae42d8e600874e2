//! `trustbridge`: notary's verbs (same names and flags where they exist) against
//! trustbridge-server or any notary-server, on the `~/.docker/trust` layout, plus the
//! migration verbs `import`, `migration status` and `verify-both`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(version, about = "Notary-compatible trust client with migration verbs")]
pub struct Cli {
    /// notary CLI config file (remote_server, trust_dir, trust_pinning), e.g. ~/.notary/config.json
    #[arg(short = 'c', long = "configFile", alias = "config", global = true)]
    pub config: Option<PathBuf>,
    /// Notary server URL (default: $DOCKER_CONTENT_TRUST_SERVER, else https://notary-server:4443)
    #[arg(short = 's', long = "server", global = true)]
    pub server: Option<String>,
    /// Trust directory (default ~/.docker/trust)
    #[arg(short = 'd', long = "trustDir", alias = "trust-dir", global = true)]
    pub trust_dir: Option<PathBuf>,
    /// CA bundle that signed the server's TLS certificate
    #[arg(long = "tlscacert", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Debug output
    #[arg(short = 'D', long, global = true)]
    pub debug: bool,
    /// Pin the root: the root role must list this key ID (certificate or canonical); repeatable
    #[arg(long = "pin-root-key", global = true)]
    pub pin_root_key: Vec<String>,
    /// Pin the root: its certificates must be issued by this CA (PEM)
    #[arg(long = "pin-ca", global = true)]
    pub pin_ca: Option<PathBuf>,
    /// Machine-readable output for listings
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Initialise a repository: root certificate, targets and snapshot keys
    Init {
        gun: String,
        /// Publish right away
        #[arg(short = 'p', long)]
        publish: bool,
        /// Use this root key file instead of a new (or the existing) root key
        #[arg(long = "rootkey")]
        root_key: Option<PathBuf>,
        /// Let the server hold the snapshot key (as docker does)
        #[arg(long)]
        server_managed_snapshot: bool,
    },
    /// Stage a file as a target
    Add {
        gun: String,
        target: String,
        file: PathBuf,
        /// Delegation role(s) to add it to (default: targets)
        #[arg(short = 'r', long = "roles")]
        roles: Vec<String>,
        #[arg(short = 'p', long)]
        publish: bool,
    },
    /// Stage a target by its size and hashes (e.g. an image manifest digest)
    Addhash {
        gun: String,
        target: String,
        size: i64,
        #[arg(long)]
        sha256: Option<String>,
        #[arg(long)]
        sha512: Option<String>,
        #[arg(short = 'r', long = "roles")]
        roles: Vec<String>,
        #[arg(short = 'p', long)]
        publish: bool,
    },
    /// Stage the removal of a target
    Remove {
        gun: String,
        target: String,
        #[arg(short = 'r', long = "roles")]
        roles: Vec<String>,
        #[arg(short = 'p', long)]
        publish: bool,
    },
    /// Sign and upload the staged changes
    Publish { gun: String },
    /// List the targets a client would accept
    List {
        gun: String,
        #[arg(short = 'r', long = "roles")]
        roles: Vec<String>,
    },
    /// Look one target up
    Lookup {
        gun: String,
        target: String,
        #[arg(short = 'r', long = "roles")]
        roles: Vec<String>,
    },
    /// Show the staged changes
    Status { gun: String },
    /// Drop staged changes (all, or by number from `status`)
    Reset {
        gun: String,
        #[arg(long)]
        all: bool,
        #[arg(short = 'n', long = "number")]
        numbers: Vec<usize>,
    },
    /// Check that a file (or stdin) is the target's content
    Verify {
        gun: String,
        target: String,
        #[arg(short = 'i', long = "input")]
        input: Option<PathBuf>,
    },
    /// Delegations
    #[command(subcommand)]
    Delegation(DelegationCmd),
    /// Keys
    #[command(subcommand)]
    Key(KeyCmd),
    /// Forget a repository locally, and with --remote on the server
    Delete {
        gun: String,
        #[arg(long)]
        remote: bool,
    },
    /// Re-sign roles as they are at the next publish (revalidates a delegation)
    Witness {
        gun: String,
        roles: Vec<String>,
        #[arg(short = 'p', long)]
        publish: bool,
    },
    /// Copy repositories' full history from a live notary server into this trustbridge server
    Import {
        /// The notary server to copy from
        #[arg(long)]
        from: String,
        /// CA bundle of the source server
        #[arg(long = "from-tlscacert")]
        from_ca: Option<PathBuf>,
        #[arg(long = "gun", required_unless_present_any = ["all", "guns_from"])]
        guns: Vec<String>,
        /// Every GUN of the source (its global changefeed; needs `*` there); resumable
        #[arg(long, conflicts_with_all = ["guns", "guns_from"])]
        all: bool,
        /// The GUNs listed in FILE (one per line); resumable
        #[arg(long = "guns-from", conflicts_with = "guns")]
        guns_from: Option<PathBuf>,
    },
    /// Migration
    #[command(subcommand)]
    Migration(MigrationCmd),
    /// Show that the DCT target and the Cosign signature agree on IMAGE:TAG's digest
    VerifyBoth {
        image: String,
        /// Cosign public key (default: the server's /_trustbridge/v1/cosign.pub)
        #[arg(long)]
        key: Option<PathBuf>,
        /// PEM CA bundle the registry's certificate chains to (instead of the system roots);
        /// registry credentials come from `docker login` ($DOCKER_CONFIG/config.json)
        #[arg(long)]
        registry_ca: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum DelegationCmd {
    /// Add a delegation, or keys/paths to one
    Add {
        gun: String,
        role: String,
        /// Certificates or PUBLIC KEY PEM files of the delegation's signers
        keys: Vec<PathBuf>,
        #[arg(long = "paths", value_delimiter = ',')]
        paths: Vec<String>,
        #[arg(long = "all-paths")]
        all_paths: bool,
        #[arg(short = 'p', long)]
        publish: bool,
    },
    /// Remove a delegation, or some of its keys/paths
    Remove {
        gun: String,
        role: String,
        key_ids: Vec<String>,
        #[arg(long = "paths", value_delimiter = ',')]
        paths: Vec<String>,
        #[arg(long = "all-paths")]
        all_paths: bool,
        #[arg(short = 'p', long)]
        publish: bool,
    },
    List {
        gun: String,
    },
}

#[derive(Subcommand)]
pub enum KeyCmd {
    List,
    /// Generate a key in the trust directory (or write it to --output)
    Generate {
        #[arg(default_value = "ecdsa")]
        algorithm: String,
        #[arg(long, default_value = "root")]
        role: String,
        #[arg(long)]
        gun: Option<String>,
        /// Write KEY.key (private, encrypted) and KEY.pub instead of the trust directory
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Rotate one or more base roles' keys (-r: the server holds the new key)
    Rotate {
        gun: String,
        roles: Vec<String>,
        #[arg(short = 'r', long = "server-managed")]
        server_managed: bool,
    },
    /// Import PEM key files (notary's, docker's, or unencrypted PKCS#8/SEC1)
    Import {
        files: Vec<PathBuf>,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        gun: Option<String>,
    },
    /// Export key files as they are stored (encrypted)
    Export {
        #[arg(long = "key")]
        key_ids: Vec<String>,
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum MigrationCmd {
    /// How far the migration is: per GUN (under --prefix), or tag by tag for --gun
    Status {
        /// One GUN, tag by tag (DCT and Cosign state)
        #[arg(long)]
        gun: Option<String>,
        /// GUNs starting with this
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Who still reads through DCT: reads per GUN, day and client
    Usage {
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Switch DCT publishing to GUN off (it has moved to Cosign), or back on with --off
    ReadOnly {
        gun: String,
        /// Switch DCT publishing back on
        #[arg(long)]
        off: bool,
    },
    /// Whether DCT can be switched off (exit 1 when any GUN is not ready)
    Ready {
        #[arg(long)]
        gun: Option<String>,
        #[arg(long, default_value = "")]
        prefix: String,
    },
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if let Err(e) = cmd::run(cli) {
        eprintln!("trustbridge: {e}");
        std::process::exit(1);
    }
}
