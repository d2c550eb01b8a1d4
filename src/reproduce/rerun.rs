//! `rerun`: a sealed run restored re-plannable, its recorded workflow run again with the
//! recorded code and inputs only (as a new run), and the two compared: every output and
//! intermediate file, and job by job code, inputs, environment and outputs.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use serde::Serialize;

use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::pegasus::{Policy, WorkflowTree};
use crate::run::{JobComparison, Role};
use crate::runner::local::{augment_local, prepare, LocalOptions};
use crate::workspace::checkout::{CheckoutOptions, LinkMode};

/// How to rerun.
#[derive(Clone, Debug)]
pub struct RerunOptions {
    /// Main jobs at once.
    pub jobs: usize,
    /// Tracking policy of the new run.
    pub policy: Policy,
    /// Working directory (`restored/` and `work/` inside; default `reruns/<new run id>`).
    pub workdir: Option<PathBuf>,
    /// Run jobs whose code the original did not record with today's files (marked).
    pub allow_unrecorded: bool,
    /// The `store` binary tracking jobs call.
    pub store_bin: String,
    /// Show progress (restoring, then the jobs) on a terminal.
    pub progress: bool,
}

/// One recorded output or intermediate file, compared.
#[derive(Clone, Debug, Serialize)]
pub struct OutputComparison {
    /// Its logical name.
    pub lfn: String,
    /// Its role in the original run.
    pub role: Role,
    /// The rerun produced the same bytes.
    pub identical: bool,
}

/// What a rerun did (`store rerun --json`).
#[derive(Clone, Debug, Serialize)]
pub struct RerunReport {
    /// The original run.
    pub old_run: String,
    /// The new run.
    pub new_run: String,
    /// Every recorded output and intermediate file, compared.
    pub outputs: Vec<OutputComparison>,
    /// All of them identical.
    pub identical: bool,
    /// Job by job.
    pub jobs: Vec<JobComparison>,
    /// Jobs that ran code the original did not record (`allow_unrecorded`).
    pub unrecorded_code: BTreeSet<String>,
    /// Where the original was restored.
    pub restored: PathBuf,
}

/// Reruns sealed run `run` of `s` (see the module documentation). Refuses, naming each
/// transformation, when the run did not record the code of a job, unless
/// `allow_unrecorded`; a job that fails is an error naming it.
pub fn rerun(s: &Store, run: &str, o: &RerunOptions) -> Result<RerunReport> {
    let old = s.resolve_run(run)?;
    let snap = s.run_snapshot(&old)?;
    let new_id = crate::runner::new_run_id();
    let base = o
        .workdir
        .clone()
        .unwrap_or_else(|| PathBuf::from("reruns").join(&new_id));
    let restored = std::path::absolute(base.join("restored")).map_err(|e| Error::io(&base, e))?;
    let work = base.join("work");
    // Everything the run recorded, with its workflows rewritten to name the restored code,
    // inputs and sub-workflows: nothing is read from where they were then.
    let (_, r) = super::checkout_replannable(
        s,
        &old.run_id,
        &restored,
        &[],
        false,
        false,
        &CheckoutOptions {
            link: LinkMode::Copy,
            progress: o.progress,
        },
    )?;
    let root = r.root_workflow.clone().ok_or_else(|| {
        Error::Invalid(format!(
            "run {} did not track its workflow description (track it with policy full or wf_track)",
            old.run_id
        ))
    })?;
    if !r.unrecorded.is_empty() && !o.allow_unrecorded {
        let missing: Vec<String> = r
            .unrecorded
            .iter()
            .map(|(_, name, pfn)| format!("transformation {name} ({pfn})"))
            .collect();
        return Err(Error::Invalid(format!(
            "run {} did not record the code of {}: a rerun would run today's files. Track code \
             (policy full or transformations, or track_trans metadata), or pass \
             --allow-unrecorded to run them as they are now",
            old.run_id,
            missing.join(", ")
        )));
    }
    let tree = WorkflowTree::load_with(&root, &super::descriptions(&snap, &restored)?)?;
    // A main job whose executable is not a restored file runs code the run did not record.
    let unrecorded: BTreeSet<String> = tree
        .plan()?
        .into_iter()
        .filter(|j| {
            j.executable
                .as_ref()
                .is_some_and(|x| !std::path::Path::new(x).starts_with(&restored))
        })
        .map(|j| j.id)
        .collect();
    std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    let local = LocalOptions {
        store_dir: std::path::absolute(s.dir()).map_err(|e| Error::io(s.dir(), e))?,
        store_bin: o.store_bin.clone(),
        run_id: new_id.clone(),
        work: work.clone(),
        jobs: o.jobs,
        policy: Some(o.policy),
        strict: false,
        no_containers: false,
    };
    let (tracked, report) = augment_local(tree, &local)?;
    // Inputs come from the restored run, not from wherever the catalog pointed then.
    let mut replicas = tracked.replicas();
    for e in snap.entries.iter().filter(|e| e.role == Role::Input) {
        let p = restored.join(&e.path);
        replicas.insert(e.lfn.clone(), p.to_string_lossy().into_owned());
    }
    // (A sub-workflow the original wrote at run time was recorded, and is planned from the
    // record above; one still unrecorded runs nested, as in `store run`.)
    let mut prepared = prepare(&tracked, &report, &local)?;
    prepared.progress = o.progress;
    let out = prepared.run(&replicas, &local)?;
    if let Some((job, why)) = &out.failed {
        return Err(Error::JobFailed {
            run: new_id,
            job: job.clone(),
            why: why.clone(),
        });
    }
    // Same results? Compare each recorded output and intermediate file with what the
    // rerun produced (an intermediate recorded twice, by producer and consumer, once).
    let mut outputs = Vec::new();
    let mut seen = HashSet::new();
    for e in snap
        .entries
        .iter()
        .filter(|e| matches!(e.role, Role::Output | Role::Intermediate))
    {
        if !seen.insert((e.lfn.clone(), e.hash)) {
            continue;
        }
        let p = work.join(&e.lfn);
        let now = if p.exists() {
            Some(s.hash_path(&p)?)
        } else {
            None
        };
        outputs.push(OutputComparison {
            lfn: e.lfn.clone(),
            role: e.role,
            identical: now == Some(e.hash),
        });
    }
    // Job by job: the new run is sealed by its own seal job.
    let jobs = match s.resolve_run(&new_id).and_then(|n| s.run_snapshot(&n)) {
        Ok(new) => s.compare_jobs(&snap, &new, &unrecorded)?,
        Err(_) => Vec::new(),
    };
    Ok(RerunReport {
        old_run: old.run_id,
        new_run: new_id,
        identical: outputs.iter().all(|c| c.identical),
        outputs,
        jobs,
        unrecorded_code: unrecorded,
        restored: r.report.path,
    })
}
