//! `store pull`: download runs from a remote.

use store::exit;

use super::output::{human_bytes, print_json, warn_damage};
use super::push::split_remote;
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// A remote name (first, optional) then run IDs or unique prefixes.
    args: Vec<String>,
    /// Only run records and manifests; content comes on demand at checkout.
    #[arg(long)]
    metadata_only: bool,
    /// Concurrent downloads.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let (remote, runs) = split_remote(&s, args.args)?;
    let r = s.pull(
        remote.as_deref(),
        &store::PullOptions {
            runs,
            jobs: args.jobs,
            progress: ctx.progress(),
            metadata_only: args.metadata_only,
        },
    )?;
    if args.json {
        print_json(&r)?;
    } else if !ctx.quiet {
        println!(
            "pulled {} objects ({}) from {}; {} runs, {} paths adopted; {} requests",
            r.objects,
            human_bytes(r.bytes),
            r.remote,
            r.runs.len(),
            r.roots,
            r.requests
        );
    }
    if warn_damage(&r) {
        return Ok(exit::PARTIAL);
    }
    Ok(exit::OK)
}
