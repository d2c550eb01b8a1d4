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
    /// Do not push the sealed run to the default remote (pushed when one is configured).
    #[arg(long)]
    no_push: bool,
    /// Make MLflow match the sealed run (also done when the run was generated with
    /// --mlflow in this store); never fails the seal.
    #[arg(long)]
    mlflow: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let progress = ctx.progress();
    let id = args
        .run
        .or_else(store::run::RunContext::run_id_from_env)
        .ok_or_else(|| {
            store::Error::Invalid(
                "which run? give RUN or set PEGASUS_WF_UUID / STORE_RUN_ID".into(),
            )
        })?;
    if !args.no_push && s.remotes()?.default.is_some() {
        // Records pushed by jobs on other nodes join the run before it is sealed.
        warn_damage(&s.pull_run_records(&id, progress)?);
    }
    let (run, snap, fresh) = s.seal(&id)?;
    // The seal job of an augmented workflow publishes the run when a remote is set.
    if !args.no_push && s.remotes()?.default.is_some() {
        let r = s.push(
            None,
            &store::PushOptions {
                runs: vec![run.run_id.clone()],
                jobs: 8,
                progress,
                merge_at: super::push::merge_at(),
            },
        )?;
        if !ctx.quiet && !args.json {
            eprintln!(
                "pushed run {} to {} ({} objects, {})",
                run.run_id,
                r.remote,
                r.objects,
                human_bytes(r.bytes_uploaded)
            );
        }
    }
    // MLflow never fails a seal: at worst the run stays pending, and the user is told.
    if args.mlflow || s.mlflow_linked(&run.run_id) {
        match s.mlflow_after_seal(&run.run_id) {
            Ok(store::mlflow::Sent {
                pending: None,
                requests,
            }) => {
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
