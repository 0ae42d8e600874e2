//! `trustbridge-certs DIR`: write a throwaway dev/test PKI into DIR.

use clap::Parser;

/// Write a dev CA and the server, signer and signer-client certificates into a directory.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Directory to write root-ca.crt, server.{crt,key}, signer.{crt,key}, signer-client.{crt,key}
    dir: std::path::PathBuf,
    /// Validity in days
    #[arg(long, default_value_t = 825)]
    days: i64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    trustbridge_certs::generate(args.days)?.write(&args.dir)?;
    println!(
        "dev PKI written to {} (clients trust {}/root-ca.crt)",
        args.dir.display(),
        args.dir.display()
    );
    Ok(())
}
