//! trustbridge-server: the Notary v1 HTTP API. This binary is thin until the Server issue
//! lands; today `dev` prepares the dev PKI that the server and signer will use.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Notary v1 server that mirrors signed tags to Cosign signatures"
)]
struct Cli {
    /// notary-server compatible JSON config (serving is not implemented yet)
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Development mode: dev certificates under DATA/certs, SQLite under DATA
    Dev {
        #[arg(long)]
        data: std::path::PathBuf,
        #[arg(long, default_value = "127.0.0.1:4443")]
        addr: String,
    },
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Dev { data, addr }) => {
            let certs = data.join("certs");
            if !certs.join("root-ca.crt").exists() {
                trustbridge_certs::generate(825)?.write(&certs)?;
            }
            eprintln!(
                "dev certificates are in {} (trust {}/root-ca.crt)",
                certs.display(),
                certs.display()
            );
            anyhow::bail!(
                "serving {addr} is not implemented yet: the Notary v1 API lands with the Server issue"
            )
        }
        None => anyhow::bail!(
            "serving is not implemented yet: the Notary v1 API lands with the Server issue"
        ),
    }
}
