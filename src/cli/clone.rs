//! `store clone`: create a workspace from a remote.

use std::path::PathBuf;

use store::exit;

use super::output::{human_bytes, print_json, warn_damage};
use super::remote::RemoteOpts;
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// The remote URL.
    url: String,
    /// The new workspace directory.
    dir: PathBuf,
    #[command(flatten)]
    opts: RemoteOpts,
    /// Concurrent downloads.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let spec = args.opts.spec(args.url)?;
    let (s, r) = store::clone_remote(spec, &args.dir, args.jobs, ctx.progress())?;
    if args.json {
        print_json(&r)?;
    } else if !ctx.quiet {
        println!(
            "cloned into {}: {} runs, {} paths known ({} of metadata); content is fetched on checkout",
            s.workspace().display(),
            r.runs.len(),
            r.roots,
            human_bytes(r.bytes)
        );
    }
    if warn_damage(&r) {
        return Ok(exit::PARTIAL);
    }
    Ok(exit::OK)
}
