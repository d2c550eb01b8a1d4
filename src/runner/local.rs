//! A workflow tree run on this machine, as `store run` (and `rerun`, and the Python package)
//! run it: augmented for the local runner (tracking jobs call the `store` binary on this
//! store), planned into one job graph, checked for container engines before anything starts,
//! then executed. The MLflow layer above puts these steps together with its linkage
//! (`run_local` there).

use std::collections::HashMap;
use std::path::PathBuf;

use super::container::{self, Engine};
use super::{run_jobs_with, RunOutcome};
use crate::error::Result;
use crate::pegasus::{AugmentOptions, AugmentReport, PlannedJob, Policy, WorkflowTree};

/// How to run a tree here.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// The store the tracking jobs record into (absolute).
    pub store_dir: PathBuf,
    /// The `store` binary tracking jobs and nested sub-workflows run.
    pub store_bin: String,
    /// The run.
    pub run_id: String,
    /// The shared working directory of the jobs.
    pub work: PathBuf,
    /// Main jobs at once (and as many tracking jobs).
    pub jobs: usize,
    /// Tracking policy (default: each workflow's own, else tags only).
    pub policy: Option<Policy>,
    /// Near-miss tag keys are errors.
    pub strict: bool,
    /// Jobs that name a container run on the host instead (recorded).
    pub no_containers: bool,
}

/// Augments `tree` for [`prepare`]: tracking jobs call `store_bin` on `store_dir` and record
/// into `run_id`. Nothing is written; warnings are in the report.
pub fn augment_local(
    tree: WorkflowTree,
    o: &LocalOptions,
) -> Result<(WorkflowTree, AugmentReport)> {
    let opts = AugmentOptions {
        policy: o.policy,
        store_bin: o.store_bin.clone(),
        store_dir: Some(o.store_dir.to_string_lossy().into_owned()),
        site: "local".into(),
        run_id: Some(o.run_id.parse()?),
        output: o.work.join("workflow.tracked.yml"),
        strict: o.strict,
        job_path: None,
        inherited: None,
    };
    crate::pegasus::augment(tree, &opts)
}

/// A planned run, ready to start.
pub struct Prepared {
    /// The job graph.
    pub plan: Vec<PlannedJob>,
    /// The engine chosen for each container job.
    pub engines: HashMap<String, Engine>,
    /// Container jobs run on the host (`no_containers`): (job, container).
    pub bypassed: Vec<(String, String)>,
    /// Count the jobs done on a terminal (off unless set).
    pub progress: bool,
}

/// Plans `tree` (tracked or not; `tracked_jobs` from its augmentation report): a sub-workflow
/// written at run time runs as a nested `store run` of this binary on this store; container
/// jobs get an engine, or, without one, an error before anything starts.
pub fn prepare(tree: &WorkflowTree, report: &AugmentReport, o: &LocalOptions) -> Result<Prepared> {
    let mut plan = tree.plan()?;
    let store_dir = o.store_dir.to_string_lossy().into_owned();
    for j in &mut plan {
        j.run_nested(&o.store_bin, Some(&store_dir));
    }
    let bypassed = if o.no_containers {
        container::bypass(&mut plan, &report.jobs)
    } else {
        Vec::new()
    };
    let engines = container::engines(&plan)?;
    Ok(Prepared {
        plan,
        engines,
        bypassed,
        progress: false,
    })
}

impl Prepared {
    /// Runs the plan in `o.work`, inputs staged from `replicas`.
    pub fn run(&self, replicas: &HashMap<String, String>, o: &LocalOptions) -> Result<RunOutcome> {
        run_jobs_with(
            &self.plan,
            replicas,
            &o.run_id,
            &o.work,
            o.jobs,
            &self.engines,
            self.progress,
        )
    }
}
