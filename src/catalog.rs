//! The central metadata catalog: workflow -> run -> logical file name -> the file's record
//! (the paper's Table I, with its MLflow link) and the run's code commit, and its history in
//! git.
//!
//! With `metadata.repo` configured, every seal commits the sealed run's record as
//! `runs/<workflow>/<run id>.json` on branch `main` of that repository. Each commit adds one
//! file onto the branch's newest tree and moves the branch by compare-and-swap, so concurrent
//! seals never lose each other's runs; `store metadata commit` writes every run's file and the
//! whole catalog as `metadata.json`. A failed push to the repository's `origin` leaves the
//! commit standing and the push pending, like a remote push.
//!
//! It joins what runs recorded with what MLflow knows of them, so it sits above both the run
//! layer and the MLflow layer.

use std::path::Path;

use serde_json::Value;

use crate::engine::index::RunRow;
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::run::git::{GitCommit, GitFile};
use crate::run::record::{named, run_record};
use crate::run::RunEntry;

/// The branch the catalog is committed to.
const BRANCH: &str = "main";

/// The path of a run's record in the metadata repository.
pub fn run_record_path(workflow: &str, run_id: &str) -> String {
    format!(
        "runs/{}/{run_id}.json",
        crate::run::git::branch_name(workflow)
    )
}

impl Store {
    /// A run's record in the catalog: status, times, snapshot, code commit (when `code.repo`
    /// committed it) and every file's Table I record by logical name.
    pub fn run_record(&self, run: &RunRow) -> Result<Value> {
        let mut snap = self.run_snapshot(run)?;
        self.mlflow_overlay(&mut snap)?;
        self.published_overlay(&mut snap)?;
        let all: Vec<&RunEntry> = snap.entries.iter().collect();
        Ok(run_record(run, &snap, &all))
    }

    /// Commits the catalog export as `metadata.json` on branch `main` of a git repository, with
    /// every run's record as `runs/<workflow>/<run id>.json`, so its history is versioned.
    /// Each commit is a fresh export from the index and the branch moves by compare-and-swap.
    pub fn metadata_commit(&self, repo: &Path) -> Result<GitCommit> {
        let export = self.metadata_export()?;
        let mut files = Vec::new();
        let mut runs = 0usize;
        for (wf, rs) in export.as_object().into_iter().flatten() {
            for (run_id, record) in rs.as_object().into_iter().flatten() {
                runs += 1;
                files.push(json_file(
                    run_record_path(wf, run_id),
                    &named(record.clone(), wf, run_id),
                )?);
            }
        }
        files.push(json_file("metadata.json".into(), &export)?);
        // (the caller reports a failed push: the commit stands)
        crate::run::git::commit_files(
            repo,
            BRANCH,
            &files,
            &format!("store metadata: {runs} runs"),
            std::time::Duration::from_secs(self.config().push_timeout_secs),
        )
    }

    /// At a seal: commits sealed run `run_id`'s record to `metadata.repo` (nothing without
    /// one). Sealing again commits nothing new. A failed push to `origin` is in the returned
    /// commit (`push_error`) and left pending for `store push` / `store sync`.
    pub fn metadata_commit_run(&self, run_id: &str) -> Result<Option<GitCommit>> {
        let Some(repo) = self.config().metadata_repo.clone() else {
            return Ok(None);
        };
        let run = self.resolve_run(run_id)?;
        if run.sealed_ns.is_none() {
            return Err(Error::Invalid(format!(
                "run {} is not sealed: only sealed runs go to the catalog",
                run.run_id
            )));
        }
        let record = named(self.run_record(&run)?, &run.workflow, &run.run_id);
        let file = json_file(run_record_path(&run.workflow, &run.run_id), &record)?;
        let commit = crate::run::git::commit_files_if_changed(
            Path::new(&repo),
            BRANCH,
            &[file],
            &format!("store: workflow {} run {}", run.workflow, run.run_id),
            std::time::Duration::from_secs(self.config().push_timeout_secs),
        )?;
        if let Some(why) = &commit.push_error {
            self.mark_metadata_pending(
                &run.run_id,
                crate::run::PendingGit {
                    repo,
                    branch: BRANCH.into(),
                    error: why.clone(),
                },
            )?;
        }
        Ok(Some(commit))
    }

    /// The whole catalog: workflow -> run -> record ([`Store::run_record`]).
    pub fn metadata_export(&self) -> Result<Value> {
        let mut wfs = serde_json::Map::new();
        // (The index guard is dropped before each run is read.)
        let runs = self.index().runs(None)?;
        for run in runs {
            let record = self.run_record(&run)?;
            let entry = wfs
                .entry(run.workflow.clone())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Some(m) = entry.as_object_mut() {
                m.insert(run.run_id.clone(), record);
            }
        }
        Ok(Value::Object(wfs))
    }
}

/// A JSON document as a file of the repository (pretty, ending in a newline).
fn json_file(path: String, v: &Value) -> Result<GitFile> {
    let mut content = serde_json::to_vec_pretty(v).map_err(|e| Error::Invalid(e.to_string()))?;
    content.push(b'\n');
    Ok(GitFile {
        path,
        content,
        executable: false,
    })
}
