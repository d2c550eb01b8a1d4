//! `store run`: run a Pegasus workflow on this machine with tracking; and the local
//! augmentation that `rerun` shares.

use std::path::{Path, PathBuf};

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
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let tree = args.catalogs.load(&args.workflow)?;
    let name = tree.wf.name.clone();
    let policy = args.policy.map(|p| p.parse()).transpose()?;
    let run_id = args.run_id.unwrap_or_else(store::runner::new_run_id);
    let work = args
        .workdir
        .unwrap_or_else(|| PathBuf::from("runs").join(&run_id));
    let (tracked, report) = if args.no_track {
        let report = store::pegasus::AugmentReport {
            main_jobs: tree.main_jobs(),
            ..Default::default()
        };
        (tree, report)
    } else {
        augment_locally(
            &s,
            tree,
            policy,
            &run_id,
            &work,
            args.mlflow,
            args.strict,
            ctx.quiet,
        )?
    };
    let mut plan = tracked.plan()?;
    // A sub-workflow written at run time runs as a workflow of its own in the working
    // directory, through this binary, on this store.
    let store_bin = std::env::current_exe()?.to_string_lossy().into_owned();
    let store_dir = std::path::absolute(s.dir())?.to_string_lossy().into_owned();
    for j in &mut plan {
        j.run_nested(&store_bin, Some(&store_dir));
    }
    if args.no_containers {
        for (job, container) in store::runner::container::bypass(&mut plan, &report.jobs) {
            eprintln!(
                "store: warning: job {job} runs on the host, not in its container {container} \
                 (--no-containers)"
            );
        }
    }
    // Before anything is created: a container job with no engine here stops the run.
    let engines = store::runner::container::engines(&plan)?;
    if !ctx.quiet {
        eprintln!(
            "running {} ({} jobs + {} tracking) as run {run_id} in {}",
            name,
            report.main_jobs,
            report.added_jobs,
            work.display()
        );
        for j in &plan {
            if let (Some(c), Some(e)) = (&j.container, engines.get(&j.id)) {
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
    let out = store::runner::run_jobs_with(
        &plan,
        &tracked.replicas(),
        &run_id,
        &work,
        args.jobs,
        &engines,
    )?;
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
    println!("{run_id}");
    Ok(store::exit::OK)
}

/// Augments a workflow tree for this machine's `store run` as run `run_id`: tracking jobs call
/// this binary on this store; relative paths resolve against each workflow file's directory.
/// Nothing is written: the runner plans the augmented tree in memory.
#[allow(clippy::too_many_arguments)]
pub fn augment_locally(
    s: &Store,
    tree: store::pegasus::WorkflowTree,
    policy: Option<store::pegasus::Policy>,
    run_id: &str,
    work: &Path,
    mlflow: bool,
    strict: bool,
    quiet: bool,
) -> anyhow::Result<(store::pegasus::WorkflowTree, store::pegasus::AugmentReport)> {
    let opts = store::pegasus::AugmentOptions {
        policy,
        store_bin: std::env::current_exe()?.to_string_lossy().into_owned(),
        store_dir: Some(std::path::absolute(s.dir())?.to_string_lossy().into_owned()),
        site: "local".into(),
        run_id: Some(run_id.parse()?),
        output: work.join("workflow.tracked.yml"),
        strict,
        job_path: None,
        inherited: None,
    };
    let (mut tree, report) = store::pegasus::augment(tree, &opts)?;
    super::augment::explain(&report, true);
    // `full_track`, `job_auto` or `job_custom` ask for MLflow: linked when a tracking URI is
    // configured.
    let requested = report.mlflow_requested && store::mlflow::tracking_uri(s)?.is_some();
    if mlflow || requested {
        super::augment::link_mlflow(s, &mut tree, &report, run_id, quiet)?;
    }
    Ok((tree, report))
}
