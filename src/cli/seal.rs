//! `store seal`: merge a run's job records into one immutable snapshot, then publish it.

use super::output::{human_bytes, print_json, warn_damage};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Run ID or unique prefix (default: $PEGASUS_WF_UUID or $STORE_RUN_ID).
    run: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Do not push the sealed run to the default remote (pushed when one is configured,
    /// within `push.timeout`; else left pending).
    #[arg(long)]
    no_push: bool,
    /// Make MLflow match the sealed run (also done when the run was generated with
    /// --mlflow in this store); never fails the seal.
    #[arg(long)]
    mlflow: bool,
}

/// Runs `f` on a store handle of its own in a thread and waits at most `timeout` for it: its
/// result, or why not (the error, or the time out; a step still running is abandoned, and
/// what it uploaded is completed or cleaned by a later push).
pub fn within<T: Send + 'static>(
    s: &store::Store,
    timeout: std::time::Duration,
    f: impl FnOnce(&store::Store) -> store::Result<T> + Send + 'static,
) -> Result<T, String> {
    let dir = s.dir().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = store::Store::open(&dir).and_then(|t| f(&t));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs_f64())),
    }
}

/// A remote with `publish = true` gets the sealed run's browsable view too (19.12), within
/// `timeout`; when it cannot, the publication is left pending for `store sync`.
fn publish_after_seal(
    s: &store::Store,
    run_id: &str,
    name: &str,
    timeout: std::time::Duration,
    quiet: bool,
) -> anyhow::Result<()> {
    if !s.remote_spec(Some(name))?.1.flag("publish") {
        return Ok(());
    }
    let opts = store::PublishOptions {
        runs: vec![run_id.to_string()],
        remote: Some(name.to_string()),
        jobs: 8,
        progress: false,
    };
    match within(s, timeout, move |t| t.publish(&opts)) {
        Ok(r) => {
            s.clear_pending_publish(run_id, name)?;
            if let (false, Some(p)) = (quiet, r.runs.first()) {
                eprintln!(
                    "published run {run_id} on {name}: {} files ({} uploaded, {} copied server-side)",
                    p.files, p.uploaded, p.copied
                );
            }
        }
        Err(why) => {
            s.mark_publish_pending(run_id, name, &why)?;
            eprintln!(
                "store: warning: run {run_id} sealed and pushed; its publication on {name} is pending ({}); `store sync` or `store publish` completes it",
                store::git::redact(&why)
            );
        }
    }
    Ok(())
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let id = args
        .run
        .or_else(store::run::RunContext::run_id_from_env)
        .ok_or_else(|| {
            store::Error::Invalid(
                "which run? give RUN or set PEGASUS_WF_UUID / STORE_RUN_ID".into(),
            )
        })?;
    // The network never fails a seal: each remote step gets `push.timeout`, then is left
    // pending (told once, named, redacted) for `store push` or `store sync`.
    let timeout = std::time::Duration::from_secs(s.config().push_timeout_secs);
    let default = s.remotes()?.default.filter(|_| !args.no_push);
    if let Some(name) = &default {
        // Records pushed by jobs on other nodes join the run before it is sealed.
        let run = id.clone();
        match within(&s, timeout, move |t| t.pull_run_records(&run, false)) {
            Ok(r) => {
                warn_damage(&r);
            }
            Err(why) => eprintln!(
                "store: warning: could not fetch records of other nodes from {name} ({why}); sealing with the records here"
            ),
        }
    }
    let (run, snap, fresh) = s.seal(&id)?;
    if let Some(g) = s.pending_push(&run.run_id)?.and_then(|p| p.git) {
        eprintln!(
            "store: warning: run {} sealed; its code commit is not on origin yet ({}); `store push` or `store sync` pushes it later",
            run.run_id, g.error
        );
    }
    // The seal job of an augmented workflow publishes the run when a remote is set.
    if let Some(name) = &default {
        let opts = store::PushOptions {
            runs: vec![run.run_id.clone()],
            jobs: 8,
            progress: false,
            merge_at: super::push::merge_at(),
        };
        match within(&s, timeout, move |t| t.push(None, &opts)) {
            Ok(r) => {
                s.clear_pending_remote(&run.run_id, name)?;
                if !ctx.quiet && !args.json {
                    eprintln!(
                        "pushed run {} to {} ({} objects, {})",
                        run.run_id,
                        r.remote,
                        r.objects,
                        human_bytes(r.bytes_uploaded)
                    );
                }
                publish_after_seal(&s, &run.run_id, name, timeout, ctx.quiet || args.json)?;
            }
            Err(why) => {
                s.mark_push_pending(&run.run_id, Some((name.clone(), why.clone())), None)?;
                if s.remote_spec(Some(name))?.1.flag("publish") {
                    s.mark_publish_pending(&run.run_id, name, &why)?;
                }
                eprintln!(
                    "store: warning: run {} sealed; push to {name} pending ({}); `store push` or `store sync` completes it",
                    run.run_id,
                    store::git::redact(&why)
                );
            }
        }
    }
    // The central catalog (`metadata.repo`) gets the sealed run's record; a failed push leaves
    // the commit pending, a failed commit only warns: the run is sealed either way.
    match s.metadata_commit_run(&run.run_id) {
        Ok(Some(c)) => {
            if let Some(why) = &c.push_error {
                eprintln!(
                    "store: warning: run {} is in the catalog (commit {}), not on its origin yet ({why}); `store push` or `store sync` pushes it later",
                    run.run_id,
                    &c.commit[..c.commit.len().min(12)]
                );
            } else if !ctx.quiet && !args.json {
                eprintln!(
                    "catalog: run {} committed ({})",
                    run.run_id,
                    &c.commit[..c.commit.len().min(12)]
                );
            }
        }
        Ok(None) => {}
        Err(e) => eprintln!(
            "store: warning: run {} sealed, but the catalog commit failed: {}; `store metadata commit` writes it",
            run.run_id,
            store::git::redact(&e.to_string())
        ),
    }
    // MLflow never fails a seal: at worst the run stays pending, and the user is told.
    if args.mlflow || s.mlflow_linked(&run.run_id) {
        match s.mlflow_after_seal(&run.run_id) {
            Ok(store::mlflow::Sent {
                pending: None,
                requests,
                warning,
            }) => {
                if let Some(why) = warning {
                    eprintln!(
                        "store: warning: MLflow has run {}'s tags but not its artifacts: {why}",
                        run.run_id
                    );
                }
                if !ctx.quiet {
                    eprintln!("MLflow: run {} finished ({requests} requests)", run.run_id);
                }
            }
            Ok(store::mlflow::Sent {
                pending: Some(why), ..
            }) => eprintln!(
                "store: MLflow pending for run {} ({why}); `store mlflow sync {}` sends it later",
                run.run_id, run.run_id
            ),
            Err(e) => eprintln!("store: warning: MLflow: {e}"),
        }
    }
    if args.json {
        print_json(
            &serde_json::json!({"run_id": run.run_id, "workflow": run.workflow, "snapshot": snap, "newly_sealed": fresh}),
        )?;
    } else {
        println!(
            "{snap}  {} {}{}",
            run.workflow,
            run.run_id,
            if fresh { "" } else { " (already sealed)" }
        );
    }
    Ok(store::exit::OK)
}
