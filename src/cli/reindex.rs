//! `store reindex`: rebuild the index from the pack files.

use anyhow::Context;
use store::exit;

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    // Whatever state the index is in: reindex replaces it.
    let s = ctx.open_for_repair()?;
    let r = s.reindex().context("reindex")?;
    for p in &r.problems {
        match &p.object {
            Some(o) => eprintln!("not adopted: object {o} in {}: {}", p.pack, p.detail),
            None => eprintln!("skipped damaged pack {}: {}", p.pack, p.detail),
        }
    }
    if !ctx.quiet {
        println!("reindexed {} packs, {} objects", r.packs, r.objects);
    }
    if !r.problems.is_empty() {
        return Ok(exit::CORRUPT);
    }
    Ok(exit::OK)
}
