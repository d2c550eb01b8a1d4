//! `store run`: run a Pegasus workflow on this machine with tracking; and the local
//! augmentation that `rerun` shares.

use std::path::PathBuf;

use store::Store;

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// The workflow YAML.
    workflow: PathBuf,
    /// Jobs at once.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Tracking policy (default: the workflow's `store_track` metadata, else tags only).
    #[arg(long)]
    policy: Option<String>,
    /// Shared working directory of the jobs (default: runs/<run id>).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Run ID (default: a new UUID).
    #[arg(long)]
    run_id: Option<String>,
    /// Run without any tracking (the baseline for measuring tracking overhead).
    #[arg(long)]
    no_track: bool,
    /// Link the run to MLflow (an experiment per workflow, a run per job; user code gets
    /// MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME and MLFLOW_RUN_ID).
    #[arg(long, conflicts_with = "no_track")]
    mlflow: bool,
    /// (With --mlflow.) A JSON or YAML configuration file whose keys become the parent MLflow
    /// run's parameters (nested keys joined with `.`). A job's own: `mlflow_params` metadata.
    #[arg(long, value_name = "FILE", requires = "mlflow")]
    mlflow_params: Option<PathBuf>,
    /// Metadata keys that look like tracking tags but are none are errors, not warnings.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    catalogs: super::augment::CatalogArgs,
    /// Run jobs whose transformation names a container on the host instead (a warning per
    /// job; each one's recorded environment has STORE_CONTAINER_BYPASSED=<container>).
    /// Without it, a container job with no engine here (podman, docker, apptainer,
    /// singularity) stops the run before anything starts.
    #[arg(long)]
    no_containers: bool,
    /// Print what ran as JSON (`run_id`, `workflow`, `workdir`, `main_jobs`, `tracking_jobs`,
    /// `succeeded`) instead of the run ID.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let tree = args.catalogs.load(&args.workflow)?;
    let name = tree.wf.name.clone();
    let run_id = args.run_id.unwrap_or_else(store::runner::new_run_id);
    let o = local_options(
        &s,
        &run_id,
        args.workdir
            .unwrap_or_else(|| PathBuf::from("runs").join(&run_id)),
        args.jobs,
        args.policy.map(|p| p.parse()).transpose()?,
        args.strict,
        args.no_containers,
    )?;
    let (tracked, report) = if args.no_track {
        let report = store::pegasus::AugmentReport {
            main_jobs: tree.main_jobs(),
            ..Default::default()
        };
        (tree, report)
    } else {
        let params = super::augment::mlflow_params(args.mlflow_params.as_deref())?;
        augment_locally(&s, tree, &o, args.mlflow, ctx.quiet, params)?
    };
    let mut prepared = store::runner::local::prepare(&tracked, &report, &o)?;
    prepared.progress = ctx.progress();
    for (job, container) in &prepared.bypassed {
        eprintln!(
            "store: warning: job {job} runs on the host, not in its container {container} \
             (--no-containers)"
        );
    }
    if !ctx.quiet {
        eprintln!(
            "running {} ({} jobs + {} tracking) as run {run_id} in {}",
            name,
            report.main_jobs,
            report.added_jobs,
            o.work.display()
        );
        for j in &prepared.plan {
            if let (Some(c), Some(e)) = (&j.container, prepared.engines.get(&j.id)) {
                eprintln!(
                    "job {} runs in container {} ({}) with {}",
                    j.id,
                    c.name,
                    c.image,
                    e.program.display()
                );
            }
        }
    }
    let out = prepared.run(&tracked.replicas(), &o)?;
    if let Some((job, why)) = &out.failed {
        anyhow::bail!(
            "job {job} of run {run_id} failed: {why}\n{} jobs not started: {}",
            out.not_started.len(),
            out.not_started.join(" ")
        );
    }
    if args.mlflow && s.mlflow_is_pending(&run_id) {
        eprintln!(
            "store: MLflow pending for run {run_id}; `store mlflow sync {run_id}` sends it when the server is back"
        );
    }
    if args.json {
        super::output::print_json(&serde_json::json!({
            "run_id": run_id,
            "workflow": name,
            "workdir": std::path::absolute(&o.work)?,
            "main_jobs": report.main_jobs,
            "tracking_jobs": report.added_jobs,
            "succeeded": out.succeeded.len(),
        }))?;
    } else {
        println!("{run_id}");
    }
    Ok(store::exit::OK)
}

/// How `run` and `rerun` run here: tracking jobs and nested sub-workflows call this binary on
/// this store.
pub fn local_options(
    s: &Store,
    run_id: &str,
    work: PathBuf,
    jobs: usize,
    policy: Option<store::pegasus::Policy>,
    strict: bool,
    no_containers: bool,
) -> anyhow::Result<store::runner::local::LocalOptions> {
    Ok(store::runner::local::LocalOptions {
        store_dir: std::path::absolute(s.dir())?,
        store_bin: std::env::current_exe()?.to_string_lossy().into_owned(),
        run_id: run_id.to_string(),
        work,
        jobs,
        policy,
        strict,
        no_containers,
    })
}

/// Augments a workflow tree for this machine's `store run` ([`store::runner::local`]), prints
/// what augmentation decided, and links MLflow when asked (`--mlflow`) or requested by tags
/// with a tracking URI configured ([`store::mlflow::augment_local_linked`]). Nothing is
/// written: the runner plans the tree in memory.
pub fn augment_locally(
    s: &Store,
    tree: store::pegasus::WorkflowTree,
    o: &store::runner::local::LocalOptions,
    mlflow: bool,
    quiet: bool,
    params: Vec<(String, String)>,
) -> anyhow::Result<(store::pegasus::WorkflowTree, store::pegasus::AugmentReport)> {
    let (tree, report, start) = store::mlflow::augment_local_linked(s, tree, o, mlflow, params)?;
    super::augment::explain(&report, true);
    if let Some(start) = &start {
        super::augment::explain_link(start, &o.run_id, quiet);
    }
    Ok((tree, report))
}
