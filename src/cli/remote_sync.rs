//! `store remote sync`: copy to one remote what it lacks of another.

use super::output::{human_bytes, print_json};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// The source remote (a configured name).
    src: String,
    /// The destination remote (a configured name).
    dst: String,
    /// Runs to copy (ID or unique prefix on SRC); default: everything.
    runs: Vec<String>,
    /// Concurrent pack copies.
    #[arg(long, default_value_t = 4)]
    jobs: usize,
    /// Also publish on DST the browsable views the runs have on SRC (`store publish`).
    #[arg(long)]
    published: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let r = s.remote_sync(
        &args.src,
        &args.dst,
        &store::RemoteSyncOptions {
            runs: args.runs,
            jobs: args.jobs,
            progress: ctx.progress(),
            published: args.published,
        },
    )?;
    if args.json {
        print_json(&r)?;
    } else if !ctx.quiet {
        println!(
            "copied {} packs ({}, {} objects checked) from {} to {}; {} packs already there; {} runs published, {} manifests; {} requests to {}, {} to {}",
            r.packs_copied,
            human_bytes(r.bytes),
            r.objects_checked,
            r.src,
            r.dst,
            r.packs_found,
            r.runs.len(),
            r.manifests,
            r.src_requests,
            r.src,
            r.dst_requests,
            r.dst
        );
        if let Some(p) = &r.published {
            println!(
                "published {} runs on {} ({} files uploaded, {} copied server-side); {} requests",
                p.runs.len(),
                r.dst,
                p.runs.iter().map(|x| x.uploaded).sum::<u64>(),
                p.runs.iter().map(|x| x.copied).sum::<u64>(),
                p.requests
            );
        }
    }
    Ok(store::exit::OK)
}
