//! `store runs`: list workflow runs, newest first.

use std::io::Write;

use super::output::{human_bytes, human_time, print_json, printable};
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
        if runs.is_empty() {
            writeln!(out, "no runs yet (store run WORKFLOW.yml records one)")?;
        } else {
            writeln!(
                out,
                "{:<36}  {:<20}  {:<6}  {:<16}  {:>5}  {:>6}  {:>7}  {:>10}",
                "RUN", "WORKFLOW", "STATUS", "CREATED", "JOBS", "FILES", "RECORDS", "SIZE"
            )?;
        }
        for r in runs {
            let c = r.counts;
            writeln!(
                out,
                "{:<36}  {:<20}  {:<6}  {:<16}  {:>5}  {:>6}  {:>7}  {:>10}",
                printable(&r.run.run_id),
                printable(&r.run.workflow),
                r.status,
                human_time(r.run.created_ns),
                c.jobs,
                c.files,
                c.records,
                human_bytes(c.bytes)
            )?;
            if let Some(p) = &r.pending {
                writeln!(out, "    {}", printable(&p.describe()))?;
            }
        }
    }
    Ok(store::exit::OK)
}
