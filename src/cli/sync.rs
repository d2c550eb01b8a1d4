//! `store sync`: complete everything a seal left pending because a network was away: pushes
//! of sealed runs to their remote, code commits to their git origin, and MLflow.

use super::output::print_json;
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let pending = s.pending_pushes()?;
    let timeout = std::time::Duration::from_secs(s.config().push_timeout_secs);
    let mut failed = Vec::new();
    let mut done = Vec::new();
    // Runs waiting for a remote, grouped by it: one push each.
    let mut by_remote: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for p in &pending {
        if let Some((name, _)) = &p.remote {
            by_remote
                .entry(name.clone())
                .or_default()
                .push(p.run_id.clone());
        }
    }
    for (name, runs) in by_remote {
        let opts = store::PushOptions {
            runs: runs.clone(),
            jobs: 8,
            progress: false,
            merge_at: super::push::merge_at(),
        };
        let to = name.clone();
        match super::seal::within(&s, timeout, move |t| t.push(Some(&to), &opts)) {
            Ok(_) => {
                for run in &runs {
                    s.clear_pending_remote(run, &name)?;
                }
                done.push(format!("pushed {} runs to {name}", runs.len()));
            }
            Err(e) => {
                let why = store::git::redact(&e);
                for run in &runs {
                    s.mark_push_pending(run, Some((name.clone(), why.clone())), None)?;
                }
                failed.push(format!("push to {name}: {why}"));
            }
        }
    }
    // Publications wait for their run's push: a run still unpushed stays pending.
    for p in s.pending_pushes()? {
        let (Some((name, _)), None) = (&p.publish, &p.remote) else {
            continue;
        };
        let opts = store::PublishOptions {
            runs: vec![p.run_id.clone()],
            remote: Some(name.clone()),
            jobs: 8,
            progress: false,
        };
        match super::seal::within(&s, timeout, move |t| t.publish(&opts)) {
            Ok(_) => {
                s.clear_pending_publish(&p.run_id, name)?;
                done.push(format!("published run {} on {name}", p.run_id));
            }
            Err(e) => {
                let why = store::git::redact(&e);
                s.mark_publish_pending(&p.run_id, name, &why)?;
                failed.push(format!("publication of run {} on {name}: {why}", p.run_id));
            }
        }
    }
    for p in pending
        .iter()
        .filter(|p| p.git.is_some() || p.metadata.is_some())
    {
        match s.retry_git_push(&p.run_id, timeout) {
            Ok(()) => done.push(format!(
                "pushed the {} of run {} to origin",
                match (&p.git, &p.metadata) {
                    (Some(_), Some(_)) => "code and catalog commits",
                    (Some(_), None) => "code commit",
                    _ => "catalog commit",
                },
                p.run_id
            )),
            Err(e) => failed.push(format!("git push of run {}: {e}", p.run_id)),
        }
    }
    let mlflow = s.mlflow_pending()?;
    if !mlflow.is_empty() {
        match s.mlflow_sync(&mlflow) {
            Ok(reports) => {
                let left = reports.iter().filter(|r| r.pending.is_some()).count();
                if left > 0 {
                    failed.push(format!("MLflow: {left} runs still pending"));
                } else {
                    done.push(format!("MLflow: {} runs synced", reports.len()));
                }
            }
            Err(e) => failed.push(format!("MLflow: {e}")),
        }
    }
    if args.json {
        print_json(&serde_json::json!({"done": done, "failed": failed}))?;
    } else {
        for d in &done {
            if !ctx.quiet {
                println!("{d}");
            }
        }
        for f in &failed {
            eprintln!("store: still pending: {f}");
        }
        if done.is_empty() && failed.is_empty() && !ctx.quiet {
            println!("nothing pending");
        }
    }
    Ok(if failed.is_empty() {
        store::exit::OK
    } else {
        store::exit::REMOTE
    })
}
