//! `store runs`: list workflow runs, newest first.

use std::io::Write;

use super::output::{human_bytes, human_time, plural, print_json, printable};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Only runs of this workflow.
    #[arg(long)]
    wf: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let runs = s.runs(args.wf.as_deref())?;
    if args.json {
        print_json(&runs)?;
    } else {
        let mut out = std::io::stdout().lock();
        for r in runs {
            writeln!(
                out,
                "{:<36}  {:<20}  {:<6}  {}  {} recording  {} records  {}",
                printable(&r.run.run_id),
                printable(&r.run.workflow),
                r.status,
                human_time(r.run.created_ns),
                plural(r.jobs, "job", "jobs"),
                r.files,
                human_bytes(r.bytes)
            )?;
            if let Some(p) = &r.pending {
                writeln!(out, "    {}", printable(&p.describe()))?;
            }
        }
    }
    Ok(store::exit::OK)
}
