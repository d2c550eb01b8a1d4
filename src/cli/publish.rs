//! `store publish`: sealed runs as browsable folders on a remote.

use super::output::{human_bytes, print_json};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Run IDs or unique prefixes (default: every sealed run).
    runs: Vec<String>,
    /// The remote (default: the default remote).
    #[arg(long)]
    remote: Option<String>,
    /// Concurrent uploads and copies.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let r = s.publish(&store::PublishOptions {
        runs: args.runs,
        remote: args.remote,
        jobs: args.jobs,
        progress: ctx.progress(),
    })?;
    for p in &r.runs {
        s.clear_pending_publish(&p.run_id, &r.remote)?;
    }
    if args.json {
        print_json(&r)?;
    } else if !ctx.quiet {
        for p in &r.runs {
            println!(
                "published run {} ({}) to {}: {} files, {} uploaded ({}), {} copied server-side ({}), {} already there{}",
                p.run_id,
                p.workflow,
                r.remote,
                p.files,
                p.uploaded,
                human_bytes(p.bytes_uploaded),
                p.copied,
                human_bytes(p.bytes_copied),
                p.present,
                if p.metadata_written { "" } else { "; metadata.json unchanged" }
            );
            if let Some(u) = p.metadata_urls.first() {
                println!("  {u}");
            }
        }
        println!("{} requests", r.requests);
    }
    Ok(store::exit::OK)
}
