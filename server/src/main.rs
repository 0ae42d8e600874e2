//! trustbridge-server: serve the Notary v1 API from a notary-server style config, or run a
//! whole dev deployment with `dev`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use trustbridge_server::{Config, dev};

#[derive(Parser)]
#[command(
    version,
    about = "Notary v1 server that mirrors signed tags to Cosign signatures"
)]
struct Cli {
    /// notary-server compatible JSON config (paths inside are relative to it)
    #[arg(long, default_value = "server.json")]
    config: PathBuf,
    /// Log format: text or json
    #[arg(long, default_value = "text")]
    log_format: String,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Development mode: dev certificates under DATA/certs, trustbridge-signer as a child
    /// process, SQLite under DATA, HTTPS on ADDR
    Dev {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "127.0.0.1:4443")]
        addr: String,
    },
    /// The Cosign bridge
    #[command(subcommand)]
    Bridge(BridgeCmd),
    /// Import exported metadata (DIR/<role>/<version>.json) for GUN into the configured
    /// storage, byte-for-byte (offline: run with the server stopped)
    Import {
        #[arg(long)]
        gun: String,
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum BridgeCmd {
    /// Mirror every stored target that has never been mirrored (run again: nothing to do)
    Backfill {
        /// Only GUNs starting with this
        #[arg(long, default_value = "")]
        gun: String,
        /// Deliver every current target again, also those mirrored before (after turning on
        /// `new_bundle_format`); what the registry already holds is not written twice
        #[arg(long)]
        redeliver: bool,
    },
    /// Read every mirrored tag back from its registry now: re-queue what is missing, remove
    /// ours that DCT no longer trusts, flag drift (the server also does this every
    /// `reconcile_seconds`)
    Verify {
        /// Only GUNs starting with this
        #[arg(long, default_value = "")]
        gun: String,
    },
    /// Requeue dead (gave up), not-configured and failed jobs now, attempts reset (safe while the server runs)
    Retry {
        /// Only GUNs starting with this
        #[arg(long, default_value = "")]
        gun: String,
    },
    /// Stop one job for good (its ID is in /_trustbridge/v1/status)
    Drop {
        #[arg(long)]
        job: i64,
    },
}

/// The configured store, opened directly (offline admin commands).
fn open_store(
    config: &Config,
) -> anyhow::Result<std::sync::Arc<dyn trustbridge_server::storage::MetaStore>> {
    Ok(trustbridge_server::storage::open(&config.storage, true)?)
}

fn init_logging(level: &str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// One malloc arena unless `MALLOC_ARENA_MAX` says otherwise. glibc gives threads that
/// allocate at once arenas of their own (up to 8 per core) and keeps what is freed in each: a
/// 100k-target publish, parsed on one thread and summarised on another, left its peak in
/// several (+80…112 MiB RSS above idle for a 50 MiB heap peak, bench/scale.sh); with one
/// arena RSS stays near the heap (+45…61 MiB), and GET and publish throughput measured the
/// same within noise (43–49k GET/s, 1.0–1.3k publishes/s either way, 2 cores).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tuning parameter of glibc's allocator, and this runs
        // first in main, before any other thread exists.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}

fn main() {
    one_malloc_arena();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("trustbridge-server: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    match cli.command {
        Some(Cmd::Dev { data, addr }) => {
            init_logging("info", &cli.log_format);
            let (config, signer) = dev::prepare(&data, &addr)?;
            let data = data.canonicalize()?;
            rt.block_on(trustbridge_server::run(&config, shutdown_signal(), |a| {
                eprintln!("{}", dev::instructions(&data, a));
            }))?;
            drop(signer);
        }
        Some(Cmd::Bridge(BridgeCmd::Backfill { gun, redeliver })) => {
            let config = Config::load(&cli.config)?;
            init_logging("warn", &cli.log_format);
            let report = rt.block_on(trustbridge_server::backfill(&config, &gun, redeliver))?;
            println!(
                "backfill: {} new job(s), {} mirrored, {} failed (retried by the server)",
                report.added, report.mirrored, report.failed
            );
        }
        Some(Cmd::Bridge(BridgeCmd::Verify { gun })) => {
            let config = Config::load(&cli.config)?;
            init_logging("warn", &cli.log_format);
            let (found, delivered) = rt.block_on(trustbridge_server::verify(&config, &gun))?;
            println!(
                "verify: {} tag(s) in {} GUN(s): {} verified, {} re-queued, {} of ours removed, {} drifted, {} of expired roles, {} unchecked; {} job(s) delivered, {} failed",
                found.tags,
                found.guns,
                found.verified,
                found.repushed,
                found.removed,
                found.drifted,
                found.expired,
                found.unchecked,
                delivered.mirrored,
                delivered.failed
            );
        }
        Some(Cmd::Bridge(BridgeCmd::Retry { gun })) => {
            let store = open_store(&Config::load(&cli.config)?)?;
            let n = store.requeue(&gun)?;
            println!("requeued {n} job(s)");
        }
        Some(Cmd::Bridge(BridgeCmd::Drop { job })) => {
            let store = open_store(&Config::load(&cli.config)?)?;
            if !store.drop_job(job)? {
                anyhow::bail!("job {job} is not open (mirrored, dropped, or unknown)");
            }
            println!("dropped job {job}");
        }
        Some(Cmd::Import { gun, dir }) => {
            let config = Config::load(&cli.config)?;
            let n = rt.block_on(trustbridge_server::import(&config, &gun, &dir))?;
            println!("imported {n} file(s) for {gun}");
        }
        None => {
            let config = Config::load(&cli.config)?;
            init_logging(&config.log_level, &cli.log_format);
            rt.block_on(trustbridge_server::run(&config, shutdown_signal(), |_| {}))?;
        }
    }
    Ok(())
}
