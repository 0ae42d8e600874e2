//! trustbridge: notary-compatible client CLI. Thin until the Client issue lands.

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "Notary-compatible trust client with migration verbs")]
struct Cli {
    /// Trust directory (default ~/.docker/trust)
    #[arg(short = 'd', long)]
    trust_dir: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _cli = Cli::parse();
    anyhow::bail!("no verbs are implemented yet: they land with the Client issue")
}
