//! The central metadata catalog: workflow -> run -> logical file name -> the file's record
//! (the paper's Table I, with its MLflow link), and its history in git.
//!
//! It joins what runs recorded with what MLflow knows of them, so it sits above both the run
//! layer and the MLflow layer.

use std::path::Path;

use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::run::files_metadata;

impl Store {
    /// Commits the catalog export as `metadata.json` on branch `main` of a git repository, so
    /// its history is versioned. Each commit is a fresh export from the index: concurrent
    /// runs never race on a shared file, and the branch moves by compare-and-swap.
    pub fn metadata_commit(&self, repo: &Path) -> Result<crate::run::git::GitCommit> {
        let export = self.metadata_export()?;
        let runs: usize = export
            .as_object()
            .map(|w| {
                w.values()
                    .filter_map(|r| r.as_object())
                    .map(|r| r.len())
                    .sum()
            })
            .unwrap_or(0);
        let mut content =
            serde_json::to_vec_pretty(&export).map_err(|e| Error::Invalid(e.to_string()))?;
        content.push(b'\n');
        let file = crate::run::git::GitFile {
            path: "metadata.json".into(),
            content,
            executable: false,
        };
        // (the caller reports a failed push: the commit stands)
        crate::run::git::commit_files(
            repo,
            "main",
            &[file],
            &format!("store metadata: {runs} runs"),
            std::time::Duration::from_secs(self.config().push_timeout_secs),
        )
    }

    /// The whole catalog: workflow -> run -> logical file name -> record.
    pub fn metadata_export(&self) -> Result<serde_json::Value> {
        let mut wfs = serde_json::Map::new();
        let runs = self.index().runs(None)?;
        for run in runs {
            let mut snap = self.run_snapshot(&run)?;
            self.mlflow_overlay(&mut snap)?;
            let files = files_metadata(&run.workflow, &run.run_id, &snap.entries);
            let entry = wfs
                .entry(run.workflow.clone())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if let Some(m) = entry.as_object_mut() {
                m.insert(
                    run.run_id.clone(),
                    serde_json::json!({
                        "status": if run.sealed_ns.is_some() { "sealed" } else { "open" },
                        "created_ns": snap.created_ns,
                        "sealed_ns": run.sealed_ns,
                        "snapshot": run.snapshot,
                        "files": files,
                    }),
                );
            }
        }
        Ok(serde_json::Value::Object(wfs))
    }
}
