//! trustbridge-signer: the key-holding gRPC process. Thin until the Signer issue lands.

use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "Holds server-side private keys and signs over gRPC with mutual TLS (notary-signer compatible)"
)]
struct Cli {
    /// notary-signer compatible JSON config
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _cli = Cli::parse();
    anyhow::bail!("the signer service is not implemented yet: it lands with the Signer issue")
}
