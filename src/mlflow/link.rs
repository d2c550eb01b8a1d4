//! The MLflow linkage of a workflow at generation (`store augment --mlflow`, `store run
//! --mlflow`, and the Python package's `augment(mlflow=True)` / `run(mlflow=True)`): the runs
//! are ensured at once, then each job of the augmented tree is handed its run; and a local run
//! (`store run`) with that linkage.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::{tracking_uri, JobPlan, Plan, StartReport};
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::pegasus::{add_to_jobs, AugmentReport, CatalogOptions, WorkflowTree};
use crate::runner::local::{augment_local, prepare, LocalOptions};
use crate::runner::RunOutcome;

/// Ensures the MLflow runs of run `run_id` of augmented `tree` at once (experiment, parent, a
/// child per tracked job; concurrent requests, one time budget), then hands each main job its
/// run (`MLFLOW_TRACKING_URI`, `MLFLOW_EXPERIMENT_NAME`, `MLFLOW_RUN_ID` profiles) and each
/// tracking job its run's URL (`--mlflow-run`); every tracking job and the seal record into
/// `run_id`. If MLflow does not answer in time, jobs get no `MLFLOW_*` (user code runs as
/// without MLflow), the run is pending (the report says why), and the seal fills MLflow in.
/// `params` (`--mlflow-params`, see [`super::config_params_file`]) go to the parent run; a
/// job's `mlflow_params` metadata names the file whose keys its child run gets at the seal.
/// Errors: no tracking URI configured, or a workflow that tracks nothing.
pub fn link_workflow(
    s: &Store,
    tree: &mut WorkflowTree,
    report: &AugmentReport,
    run_id: &str,
    params: Vec<(String, String)>,
) -> Result<StartReport> {
    let uri = tracking_uri(s)?.ok_or_else(|| {
        Error::Invalid(
            "--mlflow needs a tracking server: `store config set mlflow.uri URL` or set MLFLOW_TRACKING_URI".into(),
        )
    })?;
    // The seal (run ID already in its arguments) finishes the MLflow runs, or fills them in.
    if report.seal_job.is_empty() {
        return Err(Error::Invalid(
            "--mlflow: the workflow tracks nothing (no tags, no policy)".into(),
        ));
    }
    let tagged = report.jobs.iter().any(|j| j.mlflow_tag.is_some());
    let plan = Plan {
        workflow: tree.wf.name.clone(),
        run_id: run_id.to_string(),
        started_ms: crate::engine::util::now_ns() / 1_000_000,
        // When any job carries `job_auto` or `job_custom` (the paper's tags), only those get
        // MLflow runs: `job_auto` named after the job, `job_custom` as its `mlflow_experiment`
        // and `mlflow_run` say.
        jobs: report
            .jobs
            .iter()
            .filter(|j| !tagged || j.mlflow_tag.is_some())
            .map(|j| match j.mlflow_tag {
                Some("job_auto") => JobPlan {
                    job_id: j.id.clone(),
                    experiment: None,
                    run_name: None,
                    params_from: j.mlflow_params.clone(),
                },
                _ => JobPlan {
                    job_id: j.id.clone(),
                    experiment: j.mlflow_experiment.clone(),
                    run_name: j.mlflow_run.clone(),
                    params_from: j.mlflow_params.clone(),
                },
            })
            .collect(),
        params,
    };
    let start = s.mlflow_start(&uri, plan)?;
    // Keyed by (job path of the workflow, job ID): jobs live in the workflows of the tree.
    let key = |wf: &str, job: &str| (wf.to_string(), job.to_string());
    let mut env = BTreeMap::new();
    let mut args: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    args.insert(key("", &report.seal_job), vec!["--mlflow".to_string()]);
    env.insert(
        key("", &report.seal_job),
        vec![("MLFLOW_TRACKING_URI".to_string(), uri.clone())],
    );
    if let Some(links) = &start.links {
        for j in &report.jobs {
            let Some(l) = links.jobs.get(&j.id) else {
                continue;
            };
            env.insert(
                key(&j.workflow, &j.job),
                vec![
                    ("MLFLOW_TRACKING_URI".to_string(), uri.clone()),
                    ("MLFLOW_EXPERIMENT_NAME".to_string(), l.experiment.clone()),
                    ("MLFLOW_RUN_ID".to_string(), l.run_id.clone()),
                ],
            );
            for t in &j.trackers {
                args.insert(
                    key(&j.workflow, t),
                    vec!["--mlflow-run".to_string(), l.url.clone()],
                );
            }
        }
        for t in &report.run_level_trackers {
            args.insert(
                key("", t),
                vec!["--mlflow-run".to_string(), links.parent.url.clone()],
            );
        }
    }
    add_to_jobs(tree, &env, &args);
    Ok(start)
}

/// What `--json` adds to an augmentation report about the linkage: requests sent, tracked
/// jobs, why the run is pending (if it is), the parent run's URL.
pub fn link_summary(start: &StartReport, report: &AugmentReport) -> serde_json::Value {
    serde_json::json!({
        "requests": start.requests,
        "tracked_jobs": report.jobs.len(),
        "pending": start.pending,
        "parent_url": start.links.as_ref().map(|l| &l.parent.url),
    })
}

/// Augments `tree` for this machine's runner ([`crate::runner::local::augment_local`]) and
/// links it to MLflow when asked (`mlflow`) or when its tags ask for it (`full_track`,
/// `job_auto`, `job_custom`) and a tracking URI is configured: what `store run` does before it
/// plans (`params`: the parent run's, as [`link_workflow`] takes them). Returns the linkage
/// too, when there was one.
#[allow(clippy::type_complexity)]
pub fn augment_local_linked(
    s: &Store,
    tree: WorkflowTree,
    o: &LocalOptions,
    mlflow: bool,
    params: Vec<(String, String)>,
) -> Result<(WorkflowTree, AugmentReport, Option<StartReport>)> {
    let (mut tree, report) = augment_local(tree, o)?;
    let requested = report.mlflow_requested && tracking_uri(s)?.is_some();
    let start = if mlflow || requested {
        Some(link_workflow(s, &mut tree, &report, &o.run_id, params)?)
    } else {
        None
    };
    Ok((tree, report, start))
}

/// What [`run_local`] did: how the jobs ended, what augmentation decided, and the MLflow
/// linkage when there was one.
pub struct LocalRun {
    /// How the jobs ended.
    pub outcome: RunOutcome,
    /// What augmentation decided (only `main_jobs` without tracking).
    pub report: AugmentReport,
    /// The MLflow linkage, when the run is linked.
    pub mlflow: Option<StartReport>,
}

/// `store run` of the workflow at `path` (catalogs beside it, or as `catalogs` say): load,
/// augment unless `track` is false (linked to MLflow as [`augment_local_linked`] decides),
/// plan, run (`params`: the parent MLflow run's, as [`link_workflow`] takes them). A failed
/// job is in the outcome, not an error.
pub fn run_local(
    s: &Store,
    path: &Path,
    catalogs: &CatalogOptions,
    track: bool,
    mlflow: bool,
    params: Vec<(String, String)>,
    o: &LocalOptions,
) -> Result<LocalRun> {
    let tree = WorkflowTree::load_with_catalogs(path, &HashMap::new(), catalogs)?;
    let (tree, report, start) = if track {
        augment_local_linked(s, tree, o, mlflow, params)?
    } else {
        let report = AugmentReport {
            main_jobs: tree.main_jobs(),
            ..Default::default()
        };
        (tree, report, None)
    };
    let prepared = prepare(&tree, &report, o)?;
    let outcome = prepared.run(&tree.replicas(), o)?;
    Ok(LocalRun {
        outcome,
        report,
        mlflow: start,
    })
}
