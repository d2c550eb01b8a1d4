//! `store remote gc`: one gc cycle on a remote (a dry run unless --yes).

use std::time::Duration;

use super::output::{human_bytes, human_time, print_json};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// The remote (default: the default remote).
    remote: Option<String>,
    /// Actually delete (otherwise print what would go).
    #[arg(long)]
    yes: bool,
    /// Nothing younger than this is deleted; must exceed the longest push or read (e.g. 90s,
    /// 30m, 2h, 1d; default 1h).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    grace: Option<Duration>,
    /// Remove all but the newest N sealed runs of each workflow (and, over two cycles, the
    /// packs only they needed).
    #[arg(long, value_name = "N")]
    keep_last: Option<usize>,
    /// Remove sealed runs sealed longer ago than DUR (with --keep-last: both must hold).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    older_than: Option<Duration>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `90`, `90s`, `500ms`, `30m`, `2h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: a duration is a number and a unit (90s, 30m, 2h, 7d)"))?;
    let secs = |k: u64| {
        n.checked_mul(k)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?}: too long"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h, d)")),
    }
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let r = s.remote_gc(
        args.remote.as_deref(),
        &store::RemoteGcOptions {
            yes: args.yes,
            grace: args.grace.unwrap_or(store::DEFAULT_GC_GRACE),
            keep_last: args.keep_last,
            older_than: args.older_than,
        },
    )?;
    if args.json {
        print_json(&r)?;
        return Ok(store::exit::OK);
    }
    let verb = if r.deleted { "deleted" } else { "would delete" };
    for i in r.packs.iter().chain(&r.segments).chain(&r.partial_uploads) {
        println!("{verb} {} ({}): {}", i.key, human_bytes(i.size), i.reason);
    }
    let removal = if r.deleted { "removed" } else { "would remove" };
    for run in &r.runs_selected {
        println!(
            "{removal} run {}/{} (sealed {}, {} only it uses)",
            run.workflow,
            run.run_id,
            human_time(run.sealed_ns),
            human_bytes(run.unique_bytes)
        );
    }
    let condemn = if r.deleted {
        "condemned"
    } else {
        "would condemn"
    };
    for i in &r.packs_condemned {
        println!(
            "{condemn} {} ({}): {}",
            i.key,
            human_bytes(i.size),
            i.reason
        );
    }
    for k in &r.packs_revived {
        println!(
            "{} {k}: a run needs it again",
            if r.deleted { "revived" } else { "would revive" }
        );
    }
    for h in &r.held_back {
        eprintln!("store: warning: {h}");
    }
    println!(
        "{verb}: {} packs, {} segments, {} partial uploads, {} merge claims ({}) on {}; kept {} unreferenced packs, {} superseded segments and {} condemned packs younger than the grace period ({} s); {} requests",
        r.packs.len(),
        r.segments.len(),
        r.partial_uploads.len(),
        r.claims.len(),
        human_bytes(r.bytes),
        r.remote,
        r.young_unreferenced_packs,
        r.young_superseded_segments,
        r.young_condemned_packs,
        r.grace_secs,
        r.requests
    );
    if !r.deleted && (r.bytes > 0 || !r.runs_selected.is_empty() || !r.packs_condemned.is_empty()) {
        println!("run `store remote gc {} --yes` to delete them", r.remote);
    }
    Ok(store::exit::OK)
}
