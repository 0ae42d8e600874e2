//! trustbridge-signer: serve (the default), or administer the key store offline.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use trustbridge_signer::keystore::KeyStore;
use trustbridge_signer::{Config, admin, backup, serve};

#[derive(Parser)]
#[command(
    version,
    about = "Holds server-side private keys and signs over gRPC with mutual TLS (notary-signer compatible)"
)]
struct Cli {
    /// Keep core dumps possible (notary-signer's -debug); by default the signer turns them off
    /// so decrypted keys never land in a core file
    #[arg(long, global = true)]
    debug: bool,
    /// notary-signer compatible JSON config (paths inside are relative to it)
    #[arg(long, global = true, default_value = "signer.json")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC (the default when no command is given)
    Serve,
    /// Manage keys in the store (offline: no server needed)
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Write every key to a bundle encrypted with $TRUSTBRIDGE_BACKUP_PASSPHRASE
    Backup {
        #[arg(long)]
        out: PathBuf,
    },
    /// Add the keys of a backup bundle, encrypted under the default alias
    Restore { file: PathBuf },
    /// The Cosign bridge key
    #[command(subcommand, name = "cosign-key")]
    CosignKey(CosignCmd),
    /// The Notation signing key and its certificate chain
    #[command(subcommand, name = "notation-key")]
    NotationKey(NotationCmd),
    /// The key trustbridge-server's built-in token issuer signs with
    #[command(subcommand, name = "token-key")]
    TokenKey(TokenCmd),
}

#[derive(Subcommand)]
enum NotationCmd {
    /// Generate a CA and a signing key with a leaf certificate for SUBJECT (needs CN, O, ST, C)
    Generate {
        #[arg(long)]
        subject: String,
        /// The leaf's life in days (renewed when a third is left)
        #[arg(long, default_value_t = trustbridge_signer::notation::DEFAULT_LEAF_DAYS)]
        days: i64,
        /// The leaf's life in seconds instead (a leaf that must be renewed soon, for tests)
        #[arg(long, hide = true)]
        seconds: Option<i64>,
    },
    /// Use a chain from your own PKI (leaf first), for the key here or for --key (PKCS#8 PEM)
    Import {
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Issue a new leaf for the same key now (a generated chain's CA signs it)
    Renew {
        #[arg(long)]
        days: Option<i64>,
    },
    /// Show the key, its subject, validity and chain
    Show,
    /// Print the chain's root certificate (the trust anchor for `notation cert add`)
    ExportCa,
    /// Print the signing key's ID (for trustbridge.bridge.notation.key_id)
    Id,
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Generate the token key; write its certificate (for auth.options.rootcertbundle)
    Generate {
        #[arg(long)]
        cert_out: PathBuf,
        #[arg(long, default_value = "trustbridge token issuer")]
        cn: String,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// List live keys
    List,
    /// Show one key
    Show { key_id: String },
    /// Print the public key (notary key JSON, or PEM with --pem)
    ExportPublic {
        key_id: String,
        #[arg(long)]
        pem: bool,
    },
    /// Generate a key for ROLE of GUN under the default alias
    Generate {
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "")]
        gun: String,
        #[arg(long, default_value = "ecdsa")]
        algorithm: String,
    },
    /// Delete a key (soft delete, as notary-signer does; a key in a PKCS#11 token is destroyed there)
    Delete { key_id: String },
    /// Re-encrypt every key under ALIAS (its passphrase in NOTARY_SIGNER_<ALIAS>), all or none
    ReEncrypt {
        #[arg(long)]
        alias: String,
    },
}

#[derive(Subcommand)]
enum CosignCmd {
    /// Generate the bridge key (ECDSA P-256)
    Generate,
    /// Import a cosign.key (password from $COSIGN_PASSWORD)
    Import { file: PathBuf },
    /// Print the bridge key as cosign.pub
    ExportPublic,
    /// Print the bridge key's ID (for trustbridge.bridge.key_id)
    Id,
}

/// No core files and no ptrace-style dumps of this process, as notary-signer does on Linux
/// without `-debug` (`dump_linux.go`): decrypted keys live in its memory.
fn disable_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on this process with valid arguments.
    #[allow(unsafe_code)]
    unsafe {
        if libc::setrlimit(libc::RLIMIT_CORE, &zero) != 0 {
            tracing::warn!("could not disable core dumps (setrlimit)");
        }
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            tracing::warn!("could not mark the process non-dumpable (prctl)");
        }
    }
}

fn env_secret(var: &str) -> anyhow::Result<String> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .with_context(|| format!("set the environment variable {var}"))
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        // One line an operator can act on; the causes are joined, no backtrace.
        eprintln!("trustbridge-signer: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config)?;
    init_logging(&config.log_level);
    let out = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            if !cli.debug {
                disable_core_dumps();
            }
            let store = KeyStore::open(&config.backend, &config.default_alias)?
                .with_cache_capacity(config.cached_keys)
                .with_token(config.pkcs11.as_ref())?;
            store.check_passphrases()?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(serve::serve(&config, Arc::new(store), shutdown_signal()))?;
            return Ok(());
        }
        Command::Keys(k) => {
            let store = admin::open(&config)?;
            match k {
                KeysCmd::List => admin::list(&store)?,
                KeysCmd::Show { key_id } => admin::show(&store, &key_id)?,
                KeysCmd::ExportPublic { key_id, pem } => {
                    admin::export_public(&store, &key_id, pem)?
                }
                KeysCmd::Generate {
                    role,
                    gun,
                    algorithm,
                } => admin::generate(&store, &role, &gun, &algorithm)?,
                KeysCmd::Delete { key_id } => admin::delete(&store, &key_id)?,
                KeysCmd::ReEncrypt { alias } => admin::re_encrypt(&store, &alias)?,
            }
        }
        Command::Backup { out } => {
            let pass = env_secret(backup::PASSPHRASE_ENV)?;
            admin::backup(&admin::open(&config)?, &out, &pass)?
        }
        Command::Restore { file } => {
            let pass = env_secret(backup::PASSPHRASE_ENV)?;
            admin::restore(&admin::open(&config)?, &file, &pass)?
        }
        Command::TokenKey(TokenCmd::Generate { cert_out, cn }) => {
            let store = admin::open(&config)?;
            let id = trustbridge_signer::token_key::generate(&store, &cn, &cert_out)?;
            format!("{id}\n")
        }
        Command::NotationKey(c) => {
            use trustbridge_signer::notation;
            let store = admin::open(&config)?;
            match c {
                NotationCmd::Generate {
                    subject,
                    days,
                    seconds,
                } => {
                    let life = seconds.map_or(time::Duration::days(days), time::Duration::seconds);
                    format!("{}\n", notation::generate(&store, &subject, life)?)
                }
                NotationCmd::Import { cert, key } => {
                    let chain = std::fs::read(&cert)
                        .with_context(|| format!("reading {}", cert.display()))?;
                    let key = match key {
                        Some(k) => Some(
                            std::fs::read(&k)
                                .with_context(|| format!("reading {}", k.display()))?,
                        ),
                        None => None,
                    };
                    format!("{}\n", notation::import(&store, &chain, key.as_deref())?)
                }
                NotationCmd::Renew { days } => format!(
                    "renewed: the new leaf is valid until {}\n",
                    trustbridge_notation::envelope::rfc3339(notation::renew(&store, days)?)
                ),
                NotationCmd::Show => notation::describe(&store)?,
                NotationCmd::ExportCa => notation::export_ca(&store)?,
                NotationCmd::Id => match notation::current_key(&store)? {
                    Some(k) => format!("{}\n", k.key_id),
                    None => anyhow::bail!(
                        "no Notation key: create one with `trustbridge-signer notation-key generate --subject ...`"
                    ),
                },
            }
        }
        Command::CosignKey(c) => {
            let store = admin::open(&config)?;
            match c {
                CosignCmd::Generate => admin::cosign_generate(&store)?,
                CosignCmd::Import { file } => {
                    let pass = std::env::var("COSIGN_PASSWORD").unwrap_or_default();
                    admin::cosign_import(&store, &file, &pass)?
                }
                CosignCmd::ExportPublic => admin::cosign_export_public(&store)?,
                CosignCmd::Id => match admin::cosign_key(&store)? {
                    Some(k) => format!("{}\n", k.key_id),
                    None => anyhow::bail!(
                        "no Cosign bridge key: create one with `trustbridge-signer cosign-key generate`"
                    ),
                },
            }
        }
    };
    print!("{out}");
    Ok(())
}
