//! `store env`: capture the execution environment.

use super::output::print_json;
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON (the default and only format).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, _ctx: &Ctx) -> anyhow::Result<i32> {
    // JSON is the only format: the flag is accepted for symmetry with the other commands.
    let Args { json: _ } = args;
    print_json(&store::env::capture())?;
    Ok(store::exit::OK)
}
