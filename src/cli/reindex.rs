//! `store reindex`: rebuild the index from the pack files.

use anyhow::Context;
use store::exit;

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Print the report as JSON (`packs`, `objects`, `bytes`, `problems`).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    // Whatever state the index is in: reindex replaces it.
    let s = ctx.open_for_repair()?;
    let r = s.reindex_shown(ctx.progress()).context("reindex")?;
    for p in &r.problems {
        match &p.object {
            Some(o) => eprintln!("not adopted: object {o} in {}: {}", p.pack, p.detail),
            None => eprintln!("skipped damaged pack {}: {}", p.pack, p.detail),
        }
    }
    if args.json {
        super::output::print_json(&r)?;
    } else if !ctx.quiet {
        println!("reindexed {} packs, {} objects", r.packs, r.objects);
    }
    if !r.problems.is_empty() {
        return Ok(exit::CORRUPT);
    }
    Ok(exit::OK)
}
