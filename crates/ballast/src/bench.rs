//! `ballast bench`: placeholder until the load generator lands.
use crate::cli::BenchArgs;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProtocolArg {
    Http,
    Grpc,
}

pub async fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
