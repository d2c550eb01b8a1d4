//! `store remote du`: what a remote holds per workflow and per run, shared and unique.

use super::output::{human_bytes, print_json};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// The remote (default: the default remote).
    remote: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let u = s.remote_usage(args.remote.as_deref())?;
    if args.json {
        print_json(&u)?;
        return Ok(store::exit::OK);
    }
    println!(
        "{}: {} packs ({}), {} objects, {} segments ({}); {} shared by several runs, {} used by no run",
        u.remote,
        u.packs,
        human_bytes(u.pack_bytes),
        u.objects,
        u.segments,
        human_bytes(u.segment_bytes),
        human_bytes(u.shared_bytes),
        human_bytes(u.other_bytes)
    );
    println!(
        "{:<24} {:<28} {:>8} {:>10} {:>10} {:>10}",
        "WORKFLOW", "RUN", "OBJECTS", "BYTES", "UNIQUE", "SHARED"
    );
    for w in &u.workflows {
        println!(
            "{:<24} {:<28} {:>8} {:>10} {:>10} {:>10}",
            w.workflow,
            format!("({} runs)", w.runs),
            w.objects,
            human_bytes(w.bytes),
            human_bytes(w.unique_bytes),
            human_bytes(w.shared_bytes)
        );
        for r in u.runs.iter().filter(|r| r.workflow == w.workflow) {
            println!(
                "{:<24} {:<28} {:>8} {:>10} {:>10} {:>10}{}",
                "",
                r.run_id,
                r.objects,
                human_bytes(r.bytes),
                human_bytes(r.unique_bytes),
                human_bytes(r.shared_bytes),
                if r.missing > 0 {
                    format!("  ({} missing)", r.missing)
                } else {
                    String::new()
                }
            );
        }
    }
    println!("{} requests", u.requests);
    Ok(store::exit::OK)
}
