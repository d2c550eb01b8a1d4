//! MLflow linkage: an experiment per workflow, a parent run per store run, a child run per
//! tracked job, linked both ways (MLflow runs carry the store's workflow, run and job IDs and
//! the run manifest's remote URL; the store records each MLflow run's URL as `mlflow_url`).
//!
//! This module (with `client`, the only code that speaks HTTP to MLflow) never keeps an event
//! log of things to send. Every operation *reconciles*: it makes MLflow match the store's
//! records for a run (and job) — find the runs by their `store.run_id` / `store.job_id` tags
//! first, create only what is absent, then set tags and parameters, which MLflow accepts again
//! with the same values. So a retry, a seal after an outage, or any number of later
//! `store mlflow sync` calls never duplicate a run. What could not be sent leaves one marker
//! file per store run (`.store/mlflow/pending/<run id>`); the sync removes it.
//!
//! Runs are created where that costs one wait in total, not one per job: when a workflow is
//! generated (`store run --mlflow`, `store augment --mlflow`) all runs are ensured at once with
//! concurrent requests, and each job is handed its run (`MLFLOW_RUN_ID` for user code, the
//! run's URL for its tracking jobs). Tracking jobs then send one `log-batch` each; the seal
//! marks the runs finished. Nothing here ever fails a tracking job or a seal: MLflow gets a
//! bounded time budget ([`budget`]), after which the run is marked pending and the user told.
//! The layout of `.store/mlflow/` is in `store-format.md` section 20.
//!
//! Layer: above runs, remotes and Pegasus workflows (it reads run snapshots and the manifest
//! URLs pushes give, and hands the jobs of an augmented workflow their runs before the local
//! runner runs them).

mod artifacts;
mod client;
mod link;
mod params;
mod records;
mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use client::{bounded, mlflow_error, Client, RunInfo};
pub use client::{check_uri, CallError};
pub use link::{augment_local_linked, link_summary, link_workflow, run_local, LocalRun};
pub use params::{config_params, config_params_file};
use records::{base_tags, job_data, timestamp, FileRecord, Pairs};

use crate::engine::index::RunRow;
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::run::{Role, RunSnapshot};

/// Seconds MLflow may take per command in all (default 10), for tests and slow links.
pub const BUDGET_VAR: &str = "STORE_MLFLOW_TIMEOUT";

/// Job IDs whose records describe the whole run (augment's tracking of the workflow file and
/// the transformations, and records made by hand): they go to the parent run.
pub const RUN_LEVEL_JOBS: &[&str] = &["workflow", "transformations", "cli"];

/// Format of the files under `.store/mlflow/`.
const STATE_FORMAT: u32 = 1;

/// The time MLflow may take per command: `STORE_MLFLOW_TIMEOUT` seconds, else 10 s.
pub fn budget() -> Duration {
    std::env::var(BUDGET_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(10), Duration::from_secs_f64)
}

/// The tracking URI: the store's `mlflow.uri`, else `MLFLOW_TRACKING_URI`; checked.
pub fn tracking_uri(store: &Store) -> Result<Option<String>> {
    let from_env = || {
        std::env::var("MLFLOW_TRACKING_URI")
            .ok()
            .filter(|v| !v.trim().is_empty())
    };
    store
        .config()
        .mlflow_uri
        .clone()
        .or_else(from_env)
        .map(|u| check_uri(&u))
        .transpose()
}

/// The URL of an MLflow run in the MLflow UI (and what `mlflow_url` records).
pub fn run_url(uri: &str, experiment_id: &str, run_id: &str) -> String {
    format!(
        "{}/#/experiments/{experiment_id}/runs/{run_id}",
        uri.trim_end_matches('/')
    )
}

/// Splits a [`run_url`] into (tracking URI, experiment ID, run ID).
pub fn parse_run_url(url: &str) -> Result<(String, String, String)> {
    let bad = || {
        Error::Invalid(format!(
            "{url:?} is not an MLflow run URL (<uri>/#/experiments/<id>/runs/<run id>)"
        ))
    };
    let (uri, rest) = url.split_once("/#/experiments/").ok_or_else(bad)?;
    let (exp, run) = rest.split_once("/runs/").ok_or_else(bad)?;
    let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !ok(exp) || !ok(run) {
        return Err(bad());
    }
    Ok((check_uri(uri)?, exp.to_string(), run.to_string()))
}

/// How one job's MLflow run is named: in the workflow's experiment after the job ("auto"), or
/// as the job's (or its files') metadata `mlflow_experiment` / `mlflow_run` say ("custom").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPlan {
    /// The job ID.
    pub job_id: String,
    /// Experiment name (default: the workflow name).
    #[serde(default)]
    pub experiment: Option<String>,
    /// Run name (default: the job ID).
    #[serde(default)]
    pub run_name: Option<String>,
    /// The logical name of a JSON or YAML file the job reads (`mlflow_params` metadata): its
    /// keys become the child run's parameters when the run is sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_from: Option<String>,
}

/// What MLflow should hold for one store run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Workflow name (the experiment of the parent run).
    pub workflow: String,
    /// The store run ID.
    pub run_id: String,
    /// Start of the run, ms (the parent's start time and the time in its name).
    pub started_ms: i64,
    /// The tracked jobs, each with a child run.
    pub jobs: Vec<JobPlan>,
    /// Parameters of the parent run (`--mlflow-params FILE`, read when the run was planned).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<(String, String)>,
}

/// One MLflow run, as the store refers to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLink {
    /// Experiment name.
    pub experiment: String,
    /// Experiment ID.
    pub experiment_id: String,
    /// MLflow run ID.
    pub run_id: String,
    /// Its page in the MLflow UI.
    pub url: String,
}

/// The MLflow runs of one store run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    /// The tracking URI they live on.
    pub uri: String,
    /// The parent run.
    pub parent: RunLink,
    /// Child runs by job ID.
    pub jobs: BTreeMap<String, RunLink>,
}

/// `.store/mlflow/runs/<run id>.json`: the plan and, once MLflow answered, the links.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// `STATE_FORMAT`.
    pub format: u32,
    /// What MLflow should hold.
    pub plan: Plan,
    /// What it holds, as far as the store knows.
    pub links: Option<Links>,
}

/// What a generation-time [`Store::mlflow_start`] did.
#[derive(Clone, Debug, Serialize)]
pub struct StartReport {
    /// The runs, when MLflow answered in time.
    pub links: Option<Links>,
    /// Why not, otherwise (the run is then pending).
    pub pending: Option<String>,
    /// Requests sent.
    pub requests: u64,
}

/// What one send to MLflow (a tracking job's, a seal's) came to.
#[derive(Clone, Debug, Serialize)]
pub struct Sent {
    /// Why the run is pending, if it is (nothing is lost: the seal or a sync sends it).
    pub pending: Option<String>,
    /// Requests sent.
    pub requests: u64,
    /// Why the run's artifacts (`metadata.json`, `files.json`) were not uploaded although
    /// everything else was: the server stores no artifacts. A warning; nothing is pending.
    pub warning: Option<String>,
}

/// A run's reconciliation: its links, how many MLflow runs it created, and why its artifacts
/// were not uploaded, if so.
type Reconciled = (Links, usize, Option<String>);

/// What [`Store::mlflow_sync`] did for one run.
#[derive(Clone, Debug, Serialize)]
pub struct SyncReport {
    /// The store run.
    pub run_id: String,
    /// Its parent run's URL, when reconciled.
    pub parent_url: Option<String>,
    /// Child runs it has.
    pub jobs: usize,
    /// Runs created by this sync (0 when MLflow already had them all).
    pub created: usize,
    /// Why it is still pending, if it is.
    pub pending: Option<String>,
    /// Requests sent.
    pub requests: u64,
    /// Why the artifacts were not uploaded (the server stores none), if so.
    pub warning: Option<String>,
}

/// Of several runs found for one role (a lost race), the first created.
fn earliest<'a>(runs: impl Iterator<Item = &'a RunInfo>) -> Option<&'a RunInfo> {
    runs.min_by(|a, b| (a.start_time, &a.run_id).cmp(&(b.start_time, &b.run_id)))
}

/// Makes MLflow hold the experiments, the parent run and one child run per planned job:
/// experiments by name (created if absent), then one search by the run's tag, then only the
/// missing runs created, concurrently. Returns the links and how many runs it created.
async fn ensure(
    c: &Client,
    plan: &Plan,
    manifest: Option<&str>,
    linked: &BTreeSet<String>,
) -> std::result::Result<(Links, usize), CallError> {
    let mut names: BTreeSet<String> = BTreeSet::from([plan.workflow.clone()]);
    names.extend(plan.jobs.iter().filter_map(|j| j.experiment.clone()));
    let names: Vec<String> = names.into_iter().collect();
    let ids = bounded(names.iter().map(|n| c.experiment(n))).await;
    let mut exp: BTreeMap<String, String> = BTreeMap::new();
    for (n, id) in names.iter().zip(ids) {
        exp.insert(n.clone(), id?);
    }
    // Also where the store's records say runs are (their `mlflow_url`): a store that lacks the
    // plan (a clone, a node's own store) still finds children in custom experiments.
    let mut exp_ids: Vec<String> = exp.values().chain(linked).cloned().collect();
    exp_ids.sort();
    exp_ids.dedup();
    // Run IDs are letters, digits and ._:@+- (16.3): no quoting issue in the filter.
    let found = c
        .search(
            &exp_ids,
            &format!("tags.`store.run_id` = '{}'", plan.run_id),
        )
        .await?;
    let kind = |r: &RunInfo, k: &str| r.tags.get("store.kind").map(String::as_str) == Some(k);
    let name_of = |id: &str| {
        exp.iter()
            .find(|(_, v)| v.as_str() == id)
            .map(|(n, _)| n.clone())
            .unwrap_or_default()
    };
    let link = |r: &RunInfo| RunLink {
        experiment: name_of(&r.experiment_id),
        experiment_id: r.experiment_id.clone(),
        run_id: r.run_id.clone(),
        url: run_url(c.uri(), &r.experiment_id, &r.run_id),
    };
    let base = base_tags(&plan.workflow, &plan.run_id, manifest);
    let mut created = 0;
    let parent = match earliest(found.iter().filter(|r| kind(r, "workflow"))) {
        Some(r) => link(r),
        None => {
            let mut tags = base.clone();
            tags.push(("store.kind".into(), "workflow".into()));
            let name = format!("{}_{}", timestamp(plan.started_ms), plan.workflow);
            let r = c
                .create_run(&exp[&plan.workflow], &name, plan.started_ms, &tags)
                .await?;
            created += 1;
            link(&r)
        }
    };
    let mut jobs = BTreeMap::new();
    let mut missing = Vec::new();
    for j in &plan.jobs {
        let have = earliest(found.iter().filter(|r| {
            kind(r, "job") && r.tags.get("store.job_id").map(String::as_str) == Some(&j.job_id)
        }));
        match have {
            Some(r) => {
                jobs.insert(j.job_id.clone(), link(r));
            }
            None => missing.push(j),
        }
    }
    let results = bounded(missing.iter().map(|j| {
        let mut tags = base.clone();
        tags.extend([
            ("store.kind".to_string(), "job".to_string()),
            ("store.job_id".to_string(), j.job_id.clone()),
            ("mlflow.parentRunId".to_string(), parent.run_id.clone()),
        ]);
        let e = j.experiment.as_ref().unwrap_or(&plan.workflow);
        let name = j.run_name.clone().unwrap_or_else(|| j.job_id.clone());
        let id = exp[e].clone();
        async move { c.create_run(&id, &name, plan.started_ms, &tags).await }
    }))
    .await;
    for (j, r) in missing.iter().zip(results) {
        jobs.insert(j.job_id.clone(), link(&r?));
        created += 1;
    }
    Ok((
        Links {
            uri: c.uri().to_string(),
            parent,
            jobs,
        },
        created,
    ))
}

/// Logs a job's parameters and tags. A batch refused with 400 is sent once more (a concurrent
/// insert of the same parameter loses with a 400), then with its parameters as tags: MLflow
/// refuses a parameter it holds with another value (a retried job recorded new content), and
/// tags it overwrites, so the call still lands.
async fn log_job(
    c: &Client,
    run_id: &str,
    params: &[(String, String)],
    tags: &[(String, String)],
) -> std::result::Result<(), CallError> {
    match c.log_batch(run_id, params, tags).await {
        Err(CallError::Rejected { status: 400, .. }) if !params.is_empty() => {
            // Two requests inserting the same new parameter at once: one loses the race with a
            // 400, and the same batch then finds it there with the same value.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            match c.log_batch(run_id, params, tags).await {
                Err(CallError::Rejected { status: 400, .. }) => {}
                r => return r,
            }
            let mut all = tags.to_vec();
            all.extend(params.iter().cloned());
            c.log_batch(run_id, &[], &all).await
        }
        r => r,
    }
}

impl Store {
    /// At workflow generation: ensures the experiment(s), the parent and every child run at
    /// once (concurrent requests, one time budget), and records the plan and links under
    /// `.store/mlflow/runs/`. If MLflow does not answer in time, the run is marked pending and
    /// the report says why; only a bad configuration is an error.
    pub fn mlflow_start(&self, uri: &str, plan: Plan) -> Result<StartReport> {
        let c = Client::new(uri, budget())?;
        let manifest = self.run_manifest_url(&plan.workflow, &plan.run_id)?;
        let r = c.block_on(ensure(&c, &plan, manifest.as_deref(), &BTreeSet::new()));
        let (links, pending) = match r {
            Ok((l, _)) => (Some(l), None),
            Err(e) => {
                let why = mlflow_error(c.uri(), e).to_string();
                self.mark_pending(&plan.run_id, &why)?;
                (None, Some(why))
            }
        };
        self.write_state(&RunState {
            format: STATE_FORMAT,
            plan,
            links: links.clone(),
        })?;
        Ok(StartReport {
            links,
            pending,
            requests: c.requests(),
        })
    }

    /// In a tracking job: tells the job's MLflow run (its URL, from generation) what this call
    /// recorded (`lfns`, the logical names given): one `log-batch` with each file's hash and
    /// size and the job's environment summary. Skipped when the run is already pending (the seal or a sync reconciles it
    /// whole); on any failure the run is marked pending, never an error for MLflow's sake.
    pub fn mlflow_log_job(
        &self,
        url: &str,
        workflow: &str,
        run_id: &str,
        job_id: &str,
        lfns: &[String],
    ) -> Result<Sent> {
        if self.mlflow_is_pending(run_id) {
            return Ok(Sent {
                pending: Some("the run was already pending".into()),
                requests: 0,
                warning: None,
            });
        }
        let (uri, _, mlflow_run) = parse_run_url(url)?;
        let files: Vec<FileRecord> = self
            .index()
            .job_entries(run_id, job_id)?
            .into_iter()
            // Only this call's files (and the job's environment): the job's other tracking job
            // may be sending its own files at this moment, and two concurrent inserts of one
            // parameter make MLflow refuse one of them.
            .filter(|(role, lfn, _, _)| {
                role == Role::Environment.as_str() || lfns.iter().any(|l| l == lfn)
            })
            .map(|(role, lfn, hash, size)| FileRecord {
                role,
                lfn,
                hash,
                size,
            })
            .collect();
        let (params, mut tags) = job_data(self, &files);
        if RUN_LEVEL_JOBS.contains(&job_id) {
            // The parent describes the run; a pseudo-job's environment is not the run's.
            tags.clear();
        } else {
            tags.push(("store.job_id".into(), job_id.into()));
        }
        tags.extend(base_tags(workflow, run_id, None));
        let c = Client::new(&uri, budget())?;
        let r = c.block_on(log_job(&c, &mlflow_run, &params, &tags));
        self.sent(run_id, &c, r)
    }

    /// The outcome of a send: on failure the run is marked pending with the reason.
    fn sent(
        &self,
        run_id: &str,
        c: &Client,
        r: std::result::Result<(), CallError>,
    ) -> Result<Sent> {
        let pending = match r {
            Ok(()) => None,
            Err(e) => {
                let why = mlflow_error(c.uri(), e).to_string();
                self.mark_pending(run_id, &why)?;
                Some(why)
            }
        };
        Ok(Sent {
            pending,
            requests: c.requests(),
            warning: None,
        })
    }

    /// Makes MLflow match the store's records for runs: the named ones, else every pending
    /// one. Per run: ensure the runs (found by tags, created if absent), log every job's
    /// files and environment, and, if the run is sealed, mark its runs finished with the
    /// manifest URL; then drop its pending marker. A run MLflow could not be reached for stays
    /// pending (reported, not an error).
    pub fn mlflow_sync(&self, runs: &[String]) -> Result<Vec<SyncReport>> {
        let rows: Vec<RunRow> = if runs.is_empty() {
            let pending = self.mlflow_pending()?;
            self.index()
                .runs(None)?
                .into_iter()
                .filter(|r| pending.contains(&r.run_id))
                .collect()
        } else {
            runs.iter()
                .map(|r| self.resolve_run(r))
                .collect::<Result<_>>()?
        };
        let _lock = self.mlflow_lock()?;
        // A fresh time budget per run; a server found unreachable is not tried again in this
        // sync (its remaining runs stay pending at once).
        let mut away: BTreeMap<String, String> = BTreeMap::new();
        let mut out = Vec::new();
        for row in rows {
            let uri = self.uri_for(&row.run_id)?.ok_or_else(|| {
                Error::Invalid(
                    "no MLflow tracking URI: `store config set mlflow.uri URL` or set MLFLOW_TRACKING_URI"
                        .into(),
                )
            })?;
            let mut report = SyncReport {
                run_id: row.run_id.clone(),
                parent_url: None,
                jobs: 0,
                created: 0,
                pending: None,
                requests: 0,
                warning: None,
            };
            if let Some(why) = away.get(&uri) {
                report.pending = Some(format!("not tried: {why}"));
                out.push(report);
                continue;
            }
            let c = Client::new(&uri, budget())?;
            match self.reconcile(&c, &row)? {
                Ok((links, created, warning)) => {
                    report.warning = warning;
                    report.parent_url = Some(links.parent.url.clone());
                    report.jobs = links.jobs.len();
                    report.created = created;
                    self.clear_pending(&row.run_id)?;
                }
                Err(e) => {
                    let unreachable = matches!(e, CallError::Unavailable(_));
                    let why = mlflow_error(c.uri(), e).to_string();
                    self.mark_pending(&row.run_id, &why)?;
                    if unreachable {
                        away.insert(uri.clone(), why.clone());
                    }
                    report.pending = Some(why);
                }
            }
            report.requests = c.requests();
            out.push(report);
        }
        Ok(out)
    }

    /// One run's reconciliation (the outer error is the store's, the inner MLflow's).
    fn reconcile(
        &self,
        c: &Client,
        row: &RunRow,
    ) -> Result<std::result::Result<Reconciled, CallError>> {
        let snap = self.run_snapshot(row)?;
        let state = self.mlflow_state(&row.run_id)?;
        let mut plan = match &state {
            Some(s) => s.plan.clone(),
            None => Plan {
                workflow: row.workflow.clone(),
                run_id: row.run_id.clone(),
                started_ms: snap.created_ns / 1_000_000,
                jobs: Vec::new(),
                params: Vec::new(),
            },
        };
        let mut by_job: BTreeMap<String, Vec<FileRecord>> = BTreeMap::new();
        let mut entries: Vec<_> = snap.entries.iter().collect();
        entries.sort_by_key(|e| e.recorded_ns);
        for e in entries {
            by_job
                .entry(e.job_id.clone())
                .or_default()
                .push(FileRecord {
                    role: e.role.as_str().to_string(),
                    lfn: e.lfn.clone(),
                    hash: e.hash,
                    size: e.size,
                });
        }
        for job in by_job.keys() {
            if !RUN_LEVEL_JOBS.contains(&job.as_str())
                && !plan.jobs.iter().any(|j| &j.job_id == job)
            {
                plan.jobs.push(JobPlan {
                    job_id: job.clone(),
                    experiment: None,
                    run_name: None,
                    params_from: None,
                });
            }
        }
        let manifest = self.run_manifest_url(&row.workflow, &row.run_id)?;
        let mut linked: BTreeSet<String> = snap
            .entries
            .iter()
            .filter_map(|e| e.mlflow_url.as_deref())
            .filter_map(|u| parse_run_url(u).ok())
            .filter(|(uri, _, _)| uri == c.uri())
            .map(|(_, exp, _)| exp)
            .collect();
        if let Some(l) = state.as_ref().and_then(|s| s.links.as_ref()) {
            linked.extend(
                std::iter::once(&l.parent)
                    .chain(l.jobs.values())
                    .map(|r| r.experiment_id.clone()),
            );
        }
        let (links, created) = match c.block_on(ensure(c, &plan, manifest.as_deref(), &linked)) {
            Ok(x) => x,
            Err(e) => return Ok(Err(e)),
        };
        // What each MLflow run is told: its job's files (run-level jobs: the parent's).
        let mut sends: BTreeMap<String, (Pairs, Pairs)> = BTreeMap::new();
        let base = base_tags(&row.workflow, &row.run_id, manifest.as_deref());
        sends.insert(links.parent.run_id.clone(), (Vec::new(), base.clone()));
        for (job, files) in &by_job {
            let (run, is_child) = match links.jobs.get(job) {
                Some(l) => (l.run_id.clone(), true),
                None => (links.parent.run_id.clone(), false),
            };
            let (p, t) = job_data(self, files);
            let slot = sends
                .entry(run)
                .or_insert_with(|| (Vec::new(), base.clone()));
            slot.0.extend(p);
            if is_child {
                slot.1.extend(t);
            }
        }
        let finish_ms = row.sealed_ns.map(|s| s / 1_000_000);
        let results = c.block_on(bounded(sends.iter().map(|(run, (p, t))| async move {
            log_job(c, run, p, t).await?;
            if let Some(end) = finish_ms {
                c.update_run(run, "FINISHED", end).await?;
            }
            Ok::<(), CallError>(())
        })));
        // Children without records (a job that never recorded) are finished too.
        let idle: Vec<&RunLink> = links
            .jobs
            .values()
            .filter(|l| !sends.contains_key(&l.run_id))
            .collect();
        let idle_results = match finish_ms {
            Some(end) => c.block_on(bounded(
                idle.iter()
                    .map(|l| c.update_run(&l.run_id, "FINISHED", end)),
            )),
            None => Vec::new(),
        };
        for r in results.into_iter().chain(idle_results) {
            if let Err(e) = r {
                return Ok(Err(e));
            }
        }
        self.write_state(&RunState {
            format: STATE_FORMAT,
            plan,
            links: Some(links.clone()),
        })?;
        // A sealed run's artifacts, once its runs are complete.
        let warning = if finish_ms.is_some() {
            match self.send_artifacts(c, row, &links)? {
                Ok(w) => w,
                Err(e) => return Ok(Err(e)),
            }
        } else {
            None
        };
        Ok(Ok((links, created, warning)))
    }

    /// After a seal. When the runs were created at generation and every tracking job's send
    /// landed (the run is not pending), only the end is missing: the parent is tagged with the
    /// manifest URL, every child told the manifest URL and the environment its job's sealed
    /// snapshot keeps, and every run marked finished (concurrent).
    /// Otherwise it reconciles the whole run (as `store mlflow sync RUN`), so MLflow ends up
    /// complete even if it was away while the jobs ran. Never an error for MLflow's sake.
    pub fn mlflow_after_seal(&self, run_id: &str) -> Result<Sent> {
        if self.uri_for(run_id)?.is_none() {
            let why = "no MLflow tracking URI (mlflow.uri or MLFLOW_TRACKING_URI)".to_string();
            self.mark_pending(run_id, &why)?;
            return Ok(Sent {
                pending: Some(why),
                requests: 0,
                warning: None,
            });
        }
        let row = self.resolve_run(run_id)?;
        let links = self.mlflow_state(&row.run_id)?.and_then(|s| s.links);
        if let (Some(links), Some(sealed), false) =
            (links, row.sealed_ns, self.mlflow_is_pending(&row.run_id))
        {
            let c = Client::new(&links.uri, budget())?;
            let manifest = self.run_manifest_url(&row.workflow, &row.run_id)?;
            let tags = base_tags(&row.workflow, &row.run_id, manifest.as_deref());
            let end = sealed / 1_000_000;
            // Each child learns the manifest URL (known only now), and the environment the
            // sealed snapshot keeps for its job: the job's two tracking processes may each have
            // captured one and tagged the child with theirs, in either order.
            let snap = self.run_snapshot(&row)?;
            let mut child_tags: BTreeMap<&str, Pairs> = links
                .jobs
                .keys()
                .map(|j| {
                    (
                        j.as_str(),
                        base_tags(&row.workflow, &row.run_id, manifest.as_deref()),
                    )
                })
                .collect();
            let mut has_env = BTreeSet::new();
            for e in snap.entries.iter().filter(|e| e.role == Role::Environment) {
                if let Some(t) = child_tags.get_mut(e.job_id.as_str()) {
                    if has_env.insert(e.job_id.as_str()) {
                        t.extend(records::env_tags(self, &e.hash));
                    }
                }
            }
            // Without a manifest or an environment there is nothing new to tell a child.
            child_tags.retain(|j, _| manifest.is_some() || has_env.contains(j));
            let runs: Vec<(&RunLink, Option<&Pairs>)> = std::iter::once((&links.parent, None))
                .chain(
                    links
                        .jobs
                        .iter()
                        .map(|(job, l)| (l, child_tags.get(job.as_str()))),
                )
                .collect();
            let r = c.block_on(async {
                log_job(&c, &links.parent.run_id, &[], &tags).await?;
                bounded(runs.iter().map(|&(l, more)| {
                    let c = &c;
                    async move {
                        if let Some(t) = more {
                            c.log_batch(&l.run_id, &[], t).await?;
                        }
                        c.update_run(&l.run_id, "FINISHED", end).await
                    }
                }))
                .await
                .into_iter()
                .collect::<std::result::Result<Vec<()>, CallError>>()
                .map(|_| ())
            });
            let mut warning = None;
            let r = match r {
                Ok(()) => match self.send_artifacts(&c, &row, &links)? {
                    Ok(w) => {
                        warning = w;
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            let mut sent = self.sent(&row.run_id, &c, r)?;
            sent.warning = warning;
            return Ok(sent);
        }
        let r = self.mlflow_sync(std::slice::from_ref(&row.run_id))?;
        let r = r.into_iter().next();
        Ok(Sent {
            pending: r.as_ref().and_then(|r| r.pending.clone()),
            requests: r.as_ref().map_or(0, |r| r.requests),
            warning: r.and_then(|r| r.warning),
        })
    }

    /// Fills in `mlflow_url` of entries recorded without one from the run's MLflow links (a
    /// run linked later by a sync), for `store show` and the catalog.
    pub fn mlflow_overlay(&self, snap: &mut RunSnapshot) -> Result<()> {
        let Some(links) = self.mlflow_state(&snap.run_id)?.and_then(|s| s.links) else {
            return Ok(());
        };
        for e in snap.entries.iter_mut().filter(|e| e.mlflow_url.is_none()) {
            let l = links.jobs.get(&e.job_id).unwrap_or(&links.parent);
            e.mlflow_url = Some(l.url.clone());
        }
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_urls_round_trip() {
        let u = run_url("http://127.0.0.1:5000/", "3", "abc123");
        assert_eq!(u, "http://127.0.0.1:5000/#/experiments/3/runs/abc123");
        let (uri, e, r) = parse_run_url(&u).expect("parse");
        assert_eq!(
            (uri.as_str(), e.as_str(), r.as_str()),
            ("http://127.0.0.1:5000", "3", "abc123")
        );
        assert!(parse_run_url("http://x/#/experiments/1/runs/").is_err());
        assert!(parse_run_url("http://u:p@x/#/experiments/1/runs/a").is_err());
    }
}
