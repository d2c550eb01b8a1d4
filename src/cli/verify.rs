//! `store verify`: re-hash the local store's packs (and check its index), or a remote's.

use store::{exit, Store};

use super::output::{human_bytes, print_json, printable};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Check this remote instead of the local store.
    #[arg(long, value_name = "NAME")]
    remote: Option<String>,
    /// With --remote: check only about N packs, spread over the remote.
    #[arg(long, value_name = "N", requires = "remote")]
    sample: Option<usize>,
    /// Concurrent downloads.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    match &args.remote {
        Some(remote) => verify_remote(&ctx.open()?, remote, &args, ctx.quiet),
        // A damaged index is reported with the rest, not a reason to check nothing.
        None => verify_local(&ctx.open_for_repair()?, args.json, ctx.quiet),
    }
}

fn verify_remote(s: &Store, remote: &str, args: &Args, quiet: bool) -> anyhow::Result<i32> {
    let r = s.verify_remote(Some(remote), args.sample, args.jobs)?;
    if args.json {
        print_json(&r)?;
    } else {
        for p in &r.problems {
            match &p.object {
                Some(o) => eprintln!(
                    "CORRUPT remote {} object {o}: {}",
                    p.pack,
                    printable(&p.detail)
                ),
                None => eprintln!("CORRUPT remote {}: {}", p.pack, printable(&p.detail)),
            }
        }
        if !quiet {
            println!(
                "checked {} packs, {} objects, {} on remote {}: {}",
                r.packs,
                r.objects,
                human_bytes(r.bytes),
                r.remote,
                if r.problems.is_empty() {
                    "ok".to_string()
                } else {
                    format!("{} problems", r.problems.len())
                }
            );
            if !r.unreferenced.is_empty() {
                println!(
                    "{} packs ({}) are named by no index segment: left by a push that \
                     stopped before its segment (pushing again reuses them), or being \
                     written by a push still running",
                    r.unreferenced.len(),
                    human_bytes(r.unreferenced.iter().map(|(_, n)| n).sum())
                );
            }
            if !r.partial_uploads.is_empty() {
                println!(
                    "{} partial uploads in tmp/ ({}), left by killed pushes or being \
                     written by a running one; the next push removes those older than \
                     {} minutes:",
                    r.partial_uploads.len(),
                    human_bytes(r.partial_uploads.iter().map(|p| p.size).sum()),
                    store::remote::STALE_UPLOAD_AGE.as_secs() / 60
                );
                for p in &r.partial_uploads {
                    println!(
                        "  {}  {}  {} s old",
                        printable(&p.key),
                        human_bytes(p.size),
                        p.age_secs
                    );
                }
            }
        }
    }
    if !r.problems.is_empty() {
        return Ok(exit::CORRUPT);
    }
    Ok(exit::OK)
}

fn verify_local(s: &Store, json: bool, quiet: bool) -> anyhow::Result<i32> {
    let r = s.verify_shown(!quiet)?;
    if json {
        print_json(&r)?;
    } else {
        let index = s.index_path().display().to_string();
        for p in &r.problems {
            let what = if p.pack == index { "index" } else { "pack" };
            match &p.object {
                Some(o) => eprintln!("CORRUPT {what} {} object {}: {}", p.pack, o, p.detail),
                None => eprintln!("CORRUPT {what} {}: {}", p.pack, p.detail),
            }
        }
        if !quiet {
            println!(
                "checked {} packs, {} objects, {}: {}",
                r.packs,
                r.objects,
                human_bytes(r.bytes),
                if r.problems.is_empty() {
                    "ok".to_string()
                } else {
                    format!("{} problems", r.problems.len())
                }
            );
        }
    }
    if !r.problems.is_empty() {
        return Ok(exit::CORRUPT);
    }
    Ok(exit::OK)
}
