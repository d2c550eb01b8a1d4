//! `store config`: read or change the store's configuration.

use clap::Subcommand;

use super::output::print_json;
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Set a key: code.repo, code.max_git_bytes, metadata.repo, mlflow.uri, zstd.level ("" unsets).
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Print the whole configuration.
    List,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let mut s = ctx.open()?;
    match args.cmd {
        Cmd::Set { key, value } => s.set_config(&key, &value)?,
        Cmd::List => print_json(s.config())?,
    }
    Ok(store::exit::OK)
}
