//! `store gc`: remove what nothing references (a dry run unless --yes).

use super::output::{human_bytes, print_json};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Actually remove.
    #[arg(long)]
    yes: bool,
    /// Keep only the newest N versions of each added path.
    #[arg(long, value_name = "N")]
    keep_last: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let r = s.gc_shown(args.yes, args.keep_last, ctx.progress())?;
    if args.json {
        print_json(&r)?;
        return Ok(store::exit::OK);
    }
    let verb = if args.yes { "removed" } else { "would remove" };
    println!(
        "{verb}: {} unreferenced objects ({}), {} packs deleted, {} packs repacked, {} orphan packs, {} stale temporary files, {} cached files, {} old versions",
        r.dead_objects,
        human_bytes(r.dead_bytes),
        r.packs_deleted.len(),
        r.packs_repacked.len(),
        r.orphan_packs.len(),
        r.stale_temp_files.len(),
        r.cache_files.len(),
        r.versions_dropped
    );
    for p in &r.adopted_packs {
        eprintln!("store: warning: adopted unindexed pack {p}: it holds live objects the index did not locate (run `store verify`)");
    }
    for p in &r.kept_unreadable_packs {
        eprintln!("store: warning: kept unreadable pack {p} (run `store verify`)");
    }
    if !args.yes
        && (r.dead_objects > 0 || !r.orphan_packs.is_empty() || !r.stale_temp_files.is_empty())
    {
        println!("run `store gc --yes` to remove them");
    }
    Ok(store::exit::OK)
}
