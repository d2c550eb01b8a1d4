//! `store rerun`: restore a sealed run, run its recorded workflow again with the recorded code
//! and inputs only, and compare, job by job, code, inputs, environment and outputs.

use std::path::PathBuf;

use super::output::{print_json, printable};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Run ID or unique prefix.
    run: String,
    /// Jobs at once.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Tracking policy of the new run.
    #[arg(long, default_value = "full")]
    policy: String,
    /// Working directory (default: reruns/<new run id>).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Run jobs whose code the original run did not record with today's files at their
    /// original paths (the report marks those jobs).
    #[arg(long)]
    allow_unrecorded: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let r = store::reproduce::rerun(
        &s,
        &args.run,
        &store::reproduce::RerunOptions {
            jobs: args.jobs,
            policy: args.policy.parse()?,
            workdir: args.workdir,
            allow_unrecorded: args.allow_unrecorded,
            store_bin: std::env::current_exe()?.to_string_lossy().into_owned(),
            progress: ctx.progress(),
        },
    )?;
    let (new_id, all_same, jobs) = (&r.new_run, r.identical, &r.jobs);
    if args.json {
        print_json(&r)?;
    } else {
        println!("{new_id}");
        if !ctx.quiet {
            eprintln!(
                "rerun of {} as {new_id}: outputs {}",
                r.old_run,
                if all_same { "identical" } else { "DIFFER" }
            );
            for j in jobs {
                let mut notes = Vec::new();
                if !j.code_recorded {
                    notes.push("ran UNRECORDED code".to_string());
                }
                if !j.inputs_match {
                    notes.push(format!("inputs differ: {}", j.inputs_differ.join(", ")));
                }
                if !j.environment_match {
                    notes.push(format!("environment: {}", j.environment_changes.join("; ")));
                }
                if !j.outputs_match {
                    notes.push(format!("outputs differ: {}", j.outputs_differ.join(", ")));
                }
                if !notes.is_empty() {
                    eprintln!(
                        "  job {}: {}",
                        printable(&j.job),
                        printable(&notes.join("; "))
                    );
                }
            }
        }
    }
    Ok(store::exit::OK)
}
