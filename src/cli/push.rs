//! `store push`: upload runs to a remote.

use store::Store;

use super::output::{human_bytes, print_json};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// A remote name (first, optional) then run IDs or unique prefixes.
    args: Vec<String>,
    /// Concurrent uploads.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let (remote, runs) = split_remote(&s, args.args)?;
    let r = s.push(
        remote.as_deref(),
        &store::PushOptions {
            runs,
            jobs: args.jobs,
            progress: ctx.progress(),
            merge_at: merge_at(),
        },
    )?;
    let git = complete_pending(&s, &r)?;
    if args.json {
        print_json(&r)?;
    } else if !ctx.quiet {
        println!(
            "pushed {} objects in {} packs ({}) to {}; {} packs already there; {} runs published; {} requests",
            r.objects,
            r.packs_uploaded,
            human_bytes(r.bytes_uploaded),
            r.remote,
            r.packs_skipped,
            r.runs.len(),
            r.requests
        );
        if !r.stale_uploads_removed.is_empty() {
            println!(
                "removed {} partial uploads ({}) that killed pushes left in tmp/ of {}",
                r.stale_uploads_removed.len(),
                human_bytes(r.stale_uploads_removed.iter().map(|p| p.size).sum()),
                r.remote
            );
        }
    }
    if git.iter().any(|(_, e)| e.is_some()) {
        return Ok(store::exit::REMOTE);
    }
    Ok(store::exit::OK)
}

/// After a push: the runs it published are no longer pending for that remote, and every code
/// commit left pending by a seal is pushed to its origin again. Returns each git retry: (run,
/// error if it failed again), and warns about each failure.
pub fn complete_pending(
    s: &Store,
    r: &store::PushReport,
) -> anyhow::Result<Vec<(String, Option<String>)>> {
    let timeout = std::time::Duration::from_secs(s.config().push_timeout_secs);
    let mut git = Vec::new();
    for p in s.pending_pushes()? {
        if r.runs.contains(&p.run_id) {
            s.clear_pending_remote(&p.run_id, &r.remote)?;
        }
        if p.git.is_some() || p.metadata.is_some() {
            let e = s
                .retry_git_push(&p.run_id, timeout)
                .err()
                .map(|e| e.to_string());
            if let Some(e) = &e {
                eprintln!(
                    "store: warning: run {}: git commit still not pushed to origin: {e}",
                    p.run_id
                );
            }
            git.push((p.run_id, e));
        }
    }
    Ok(git)
}

/// Segments a push lets accumulate outside a merged segment before it writes a new one:
/// `STORE_MERGE_SEGMENTS` (0: never), else 16.
pub fn merge_at() -> usize {
    std::env::var("STORE_MERGE_SEGMENTS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(16)
}

/// `push`/`pull` arguments: a leading configured remote name, then runs.
pub fn split_remote(
    s: &Store,
    mut args: Vec<String>,
) -> anyhow::Result<(Option<String>, Vec<String>)> {
    let remotes = s.remotes()?;
    if args
        .first()
        .is_some_and(|a| remotes.remotes.contains_key(a))
    {
        let name = args.remove(0);
        return Ok((Some(name), args));
    }
    Ok((None, args))
}
