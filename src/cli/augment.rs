//! `store augment`: add tracking jobs to a Pegasus workflow; and what the MLflow linkage of a
//! workflow at generation (`store::mlflow::link_workflow`) tells the user, which `run` shares.

use std::path::{Path, PathBuf};

use anyhow::Context;
use store::Store;

use super::output::print_json;
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// The workflow YAML.
    workflow: PathBuf,
    /// Where to write the tracked workflow.
    #[arg(short, long)]
    output: PathBuf,
    /// Tracking policy: full, basic, inputs, outputs, transformations (default: the
    /// workflow's `store_track` metadata, else tags only).
    #[arg(long)]
    policy: Option<String>,
    /// Path of the `store` binary on the execution site (default: this binary).
    #[arg(long)]
    store_bin: Option<String>,
    /// Site the `store` transformation is registered for.
    #[arg(long, default_value = "local")]
    site: String,
    /// Store directory the tracking jobs use (default: this workspace's store, if any).
    #[arg(long)]
    store_dir: Option<PathBuf>,
    /// The run every tracking job records into (default: Pegasus's $PEGASUS_WF_UUID when
    /// the jobs run; a workflow with sub-workflows gets a new UUID, printed, since Pegasus
    /// gives each sub-workflow a UUID of its own).
    #[arg(long)]
    run_id: Option<String>,
    /// Print a JSON report.
    #[arg(long)]
    json: bool,
    /// Link the run to MLflow: create its runs now (one wait in total) and hand each job
    /// its run (MLFLOW_* profiles; tracking jobs get its URL). Fixes the run ID (--run-id,
    /// else a new UUID).
    #[arg(long)]
    mlflow: bool,
    /// (With --mlflow.) A JSON or YAML configuration file whose keys become the parent MLflow
    /// run's parameters (nested keys joined with `.`). A job's own: `mlflow_params` metadata.
    #[arg(long, value_name = "FILE", requires = "mlflow")]
    mlflow_params: Option<PathBuf>,
    /// Metadata keys that look like tracking tags but are none are errors, not warnings.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    catalogs: CatalogArgs,
    /// (Used by the job that augments a sub-workflow written at run time.) Its job path in
    /// the running tree: its jobs record under it, into --run-id, and it gets no seal.
    #[arg(long, hide = true, requires = "run_id")]
    job_path: Option<String>,
    /// (With --job-path.) The policy of its parent, for a workflow without its own.
    #[arg(long, hide = true, requires = "job_path")]
    inherit_policy: Option<String>,
}

/// Where the side catalogs are (shared by `augment` and `run`).
#[derive(clap::Args)]
pub struct CatalogArgs {
    /// Read `pegasus.properties`, `replicas.yml` and `transformations.yml` from DIR instead
    /// of the workflow's directory (like planning from DIR).
    #[arg(long, value_name = "DIR")]
    catalog_dir: Option<PathBuf>,
    /// An input directory (like `pegasus-plan --input-dir`): every file below it is a replica
    /// under its relative path; repeatable.
    #[arg(long, value_name = "DIR")]
    input_dir: Vec<PathBuf>,
}

impl CatalogArgs {
    /// Loads the workflow tree with these catalogs.
    pub fn load(&self, workflow: &Path) -> store::Result<store::pegasus::WorkflowTree> {
        store::pegasus::WorkflowTree::load_with_catalogs(
            workflow,
            &std::collections::HashMap::new(),
            &store::pegasus::CatalogOptions {
                catalog_dir: self.catalog_dir.clone(),
                input_dirs: self.input_dir.clone(),
            },
        )
    }
}

/// Prints what augmentation decided that a user must see: warnings, what each tag tracked,
/// and why nothing was, on stderr.
pub fn explain(report: &store::pegasus::AugmentReport, quiet: bool) {
    for w in &report.warnings {
        eprintln!("store: warning: {w}");
    }
    if let Some(why) = &report.nothing_tracked {
        eprintln!("store: warning: {why}");
    } else if report.added_jobs == 0 {
        eprintln!(
            "store: warning: nothing is tracked: the workflow has no tracking tags and no \
             `store_track` policy (try --policy full)"
        );
    }
    if !quiet && !report.by_tag.is_empty() {
        let parts: Vec<String> = report
            .by_tag
            .iter()
            .map(|(tag, n)| format!("{tag}: {n}"))
            .collect();
        eprintln!("tracked by tag: {}", parts.join(", "));
    }
    if !quiet && !report.catalogs.is_empty() {
        eprintln!("side catalogs read: {}", report.catalogs.join(", "));
    }
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let tree = args.catalogs.load(&args.workflow)?;
    let store_dir = match (args.store_dir, &ctx.store) {
        (Some(d), _) => Some(d),
        (None, Some(d)) => Some(d.clone()),
        (None, None) => Store::discover(Path::new(".")).ok(),
    }
    .map(|d| std::path::absolute(&d).map(|p| p.to_string_lossy().into_owned()))
    .transpose()?;
    let store_bin = match args.store_bin {
        Some(b) => b,
        None => std::env::current_exe()?.to_string_lossy().into_owned(),
    };
    let output = args.output;
    let opts = store::pegasus::AugmentOptions {
        policy: args.policy.map(|p| p.parse()).transpose()?,
        store_bin,
        store_dir,
        site: args.site,
        // MLflow runs are keyed by the store run ID, so --mlflow fixes it now.
        run_id: match (args.run_id, args.mlflow) {
            (Some(r), _) => Some(r.parse()?),
            (None, true) => Some(store::runner::new_run_id().parse()?),
            (None, false) => None,
        },
        output: output.clone(),
        strict: args.strict,
        job_path: args.job_path,
        inherited: args.inherit_policy.map(|p| p.parse()).transpose()?,
    };
    let (mut tracked, report) = store::pegasus::augment(tree, &opts)?;
    let mut linked = None;
    if !args.json {
        explain(&report, ctx.quiet);
    }
    if args.mlflow {
        let s = match &opts.store_dir {
            Some(d) => Store::open(Path::new(d)),
            None => Err(store::Error::NotAStore {
                start: PathBuf::from("."),
            }),
        }
        .context("--mlflow keeps the run's MLflow state in the tracking jobs' store")?;
        let run_id = report.run_id.clone().expect("fixed with --mlflow");
        let params = mlflow_params(args.mlflow_params.as_deref())?;
        linked = Some(link_mlflow(
            &s,
            &mut tracked,
            &report,
            &run_id,
            ctx.quiet,
            params,
        )?);
    }
    tracked.write(&output)?;
    // The process ends here: freeing a document of many small nodes one by one would
    // cost a sixth of the whole command.
    std::mem::forget(tracked);
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let (Some(start), Some(m)) = (&linked, v.as_object_mut()) {
            m.insert("mlflow".into(), store::mlflow::link_summary(start, &report));
        }
        print_json(&v)?;
    } else if !ctx.quiet {
        println!(
            "{}: {} main jobs, {} tracking jobs added, {} files and {} transformations tracked{}",
            output.display(),
            report.main_jobs,
            report.added_jobs,
            report.tracked.len(),
            report.transformations.len(),
            if report.workflow_tracked {
                ", workflow tracked"
            } else {
                ""
            }
        );
        if report.workflows.len() > 1 {
            println!(
                "{} sub-workflows written beside it; every tracking job records into run {}",
                report.workflows.len() - 1,
                report.run_id.as_deref().unwrap_or("")
            );
        } else if linked.is_some() {
            println!(
                "every tracking job records into run {} (MLflow-linked: plan this workflow once)",
                report.run_id.as_deref().unwrap_or("")
            );
        }
    }
    Ok(store::exit::OK)
}

/// The parameters of `--mlflow-params FILE`, read now (none without it).
pub fn mlflow_params(file: Option<&Path>) -> anyhow::Result<Vec<(String, String)>> {
    Ok(match file {
        Some(f) => store::mlflow::config_params_file(f).context("--mlflow-params")?,
        None => Vec::new(),
    })
}

/// `--mlflow` at generation ([`store::mlflow::link_workflow`]), saying what it did: the runs
/// created, or why MLflow was not reached (the run is then pending and its seal fills MLflow
/// in).
pub fn link_mlflow(
    s: &Store,
    tree: &mut store::pegasus::WorkflowTree,
    report: &store::pegasus::AugmentReport,
    run_id: &str,
    quiet: bool,
    params: Vec<(String, String)>,
) -> anyhow::Result<store::mlflow::StartReport> {
    let start = store::mlflow::link_workflow(s, tree, report, run_id, params)?;
    explain_link(&start, run_id, quiet);
    Ok(start)
}

/// Tells what an MLflow linkage did (on stderr).
pub fn explain_link(start: &store::mlflow::StartReport, run_id: &str, quiet: bool) {
    match &start.links {
        Some(links) => {
            if !quiet {
                eprintln!(
                    "MLflow: run {} with {} job runs ({} requests)",
                    links.parent.url,
                    links.jobs.len(),
                    start.requests
                );
            }
        }
        None => eprintln!(
            "store: MLflow not reached ({}); the jobs run without MLFLOW_* and run {run_id} is pending: its seal, or `store mlflow sync {run_id}`, fills MLflow in",
            start.pending.as_deref().unwrap_or("unknown")
        ),
    }
}
