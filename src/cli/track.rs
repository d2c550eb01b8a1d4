//! `store track`: record `ROLE:PATH` files into a run (what tracking jobs call).

use std::io::Write;
use std::path::PathBuf;

use store::AddOptions;

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// `ROLE:PATH` pairs, e.g. `input:f.a intermediate:f.b code:/usr/bin/tool`; `ROLE?:PATH`
    /// records PATH only if it exists.
    #[arg(required = true)]
    files: Vec<String>,
    /// The job the files belong to (default: $PEGASUS_DAG_JOB_ID or $STORE_JOB_ID).
    #[arg(long)]
    job: Option<String>,
    /// Workflow name (default: $PEGASUS_WF_LABEL or $STORE_WF_NAME).
    #[arg(long)]
    wf: Option<String>,
    /// Run ID (default: $PEGASUS_WF_UUID or $STORE_RUN_ID).
    #[arg(long)]
    run: Option<String>,
    /// Do not capture the job's environment.
    #[arg(long)]
    no_env: bool,
    /// `consumed` when recording what the job read (before it runs), `produced` for what it
    /// wrote (after); `lineage` reports it.
    #[arg(long, value_name = "consumed|produced")]
    direction: Option<String>,
    /// The URL of the job's MLflow run (given by `--mlflow` generation): recorded as the
    /// files' `mlflow_url`, and told the files' hashes and sizes and the environment.
    #[arg(long, value_name = "URL")]
    mlflow_run: Option<String>,
    /// Then push the run's records and data to the default remote (for jobs on nodes that
    /// do not share the store; the seal job pulls them before sealing).
    #[arg(long)]
    push: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let progress = ctx.progress();
    let mut paths = Vec::new();
    let mut roles = Vec::new();
    for f in &args.files {
        let (role, path) = f.split_once(':').ok_or_else(|| {
            store::Error::Invalid(format!("{f:?} is not ROLE:PATH (e.g. input:data.csv)"))
        })?;
        // `ROLE?:PATH` records PATH only if it exists (a checkpoint file before its first
        // writer ran).
        let (role, optional) = match role.strip_suffix('?') {
            Some(r) => (r, true),
            None => (role, false),
        };
        let role: store::run::Role = role.parse()?;
        if optional && std::fs::symlink_metadata(path).is_err() {
            if !ctx.quiet {
                eprintln!("store: {path} is not there yet; not recorded");
            }
            continue;
        }
        paths.push(PathBuf::from(path));
        roles.push((PathBuf::from(path), role));
    }
    // A malformed URL is a generation bug, not a reason to lose the records.
    let mlflow_run = args
        .mlflow_run
        .filter(|u| match store::mlflow::parse_run_url(u) {
            Ok(_) => true,
            Err(e) => {
                eprintln!("store: warning: ignoring --mlflow-run: {e}");
                false
            }
        });
    let run_ctx = store::run::RunContext::resolve(args.wf, args.run, args.job)?;
    if paths.is_empty() {
        return Ok(store::exit::OK);
    }
    let spec = store::run::RecordSpec {
        ctx: run_ctx.clone(),
        role: roles[0].1,
        roles,
        lfn: None,
        capture_env: !args.no_env,
        mlflow_url: mlflow_run.clone(),
        direction: args.direction.as_deref().map(str::parse).transpose()?,
    };
    let r = s.record(
        &paths,
        spec,
        &AddOptions {
            progress,
            ..AddOptions::default()
        },
    )?;
    let mut out = std::io::stdout().lock();
    for a in &r.added {
        writeln!(out, "{}  {}", a.hash, a.path.display())?;
    }
    for w in &r.warnings {
        eprintln!("store: warning: {w}");
    }
    if args.push {
        // One job of many: the seal merges, not every job at once.
        let opts = store::PushOptions {
            runs: vec![run_ctx.run_id.clone()],
            jobs: 8,
            progress,
            merge_at: 0,
        };
        s.push(None, &opts)?;
    }
    // Never fails the job: MLflow gets a bounded time, then the run is pending.
    if let Some(url) = &mlflow_run {
        let lfns: Vec<String> = args
            .files
            .iter()
            .filter_map(|f| f.split_once(':').map(|(_, p)| p.to_string()))
            .collect();
        match s.mlflow_log_job(
            url,
            &run_ctx.workflow,
            &run_ctx.run_id,
            &run_ctx.job_id,
            &lfns,
        ) {
            Ok(store::mlflow::Sent {
                pending: None,
                requests,
                ..
            }) => {
                if !ctx.quiet {
                    eprintln!("MLflow: logged to {url} ({requests} requests)");
                }
            }
            Ok(store::mlflow::Sent {
                pending: Some(why),
                ..
            }) => eprintln!(
                "store: MLflow pending for run {} ({why}); the seal or `store mlflow sync` sends it later",
                run_ctx.run_id
            ),
            Err(e) => eprintln!("store: warning: MLflow: {e}"),
        }
    }
    Ok(store::exit::OK)
}
