//! MLflow artifacts of a sealed run: its parent MLflow run gets the run's `metadata.json`
//! (Table I for every file, as the central catalog keeps it) and `files.json` (every file:
//! role, logical name, path, job, hash, size, remote and MLflow URLs); each child run gets the
//! same two files for its job's records. They go through the tracking server's artifact API
//! (`mlflow-artifacts:`, which `mlflow server` serves by default), written again with the same
//! bytes by a later seal or sync, so sending twice changes nothing. A server that does not
//! store artifacts itself gets none, and the caller warns: the runs still carry every tag.

use serde_json::{json, Value};

use super::client::{bounded, CallError, Client, NOT_PROXIED};
use super::Links;
use crate::engine::index::RunRow;
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::run::{files_metadata, RunEntry, RunSnapshot};

/// The artifact names.
pub const METADATA: &str = "metadata.json";
/// See [`METADATA`].
pub const FILES: &str = "files.json";

/// `metadata.json` and `files.json` of `entries` (all of a run's, or one job's).
fn documents(snap: &RunSnapshot, row: &RunRow, entries: &[&RunEntry]) -> Result<[Vec<u8>; 2]> {
    let metadata = json!({
        "workflow": row.workflow,
        "run_id": row.run_id,
        "status": if row.sealed_ns.is_some() { "sealed" } else { "open" },
        "created_ns": snap.created_ns,
        "sealed_ns": row.sealed_ns,
        "snapshot": row.snapshot,
        "files": files_metadata(&row.workflow, &row.run_id, entries.iter().copied()),
    });
    let files: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "role": e.role,
                "lfn": e.lfn,
                "path": e.path,
                "job_id": e.job_id,
                "hash": e.hash,
                "size": e.size,
                "remote_urls": e.remote_urls,
                "mlflow_url": e.mlflow_url,
            })
        })
        .collect();
    let bytes = |v: &Value| {
        serde_json::to_vec_pretty(v).map_err(|e| Error::Invalid(format!("MLflow artifact: {e}")))
    };
    Ok([bytes(&metadata)?, bytes(&Value::Array(files))?])
}

impl Store {
    /// Uploads the artifacts of sealed run `row` to its MLflow runs (`links`). The outer error
    /// is the store's; the inner one MLflow's (the run stays pending). `Ok(Some(why))`: the
    /// server stores no artifacts, nothing was sent (a warning, not pending).
    pub(super) fn send_artifacts(
        &self,
        c: &Client,
        row: &RunRow,
        links: &Links,
    ) -> Result<std::result::Result<Option<String>, CallError>> {
        let mut snap = self.run_snapshot(row)?;
        self.mlflow_overlay(&mut snap)?;
        let all: Vec<&RunEntry> = snap.entries.iter().collect();
        let mut uploads = vec![(links.parent.run_id.clone(), documents(&snap, row, &all)?)];
        for (job, link) in &links.jobs {
            let mine: Vec<&RunEntry> = snap.entries.iter().filter(|e| &e.job_id == job).collect();
            uploads.push((link.run_id.clone(), documents(&snap, row, &mine)?));
        }
        let results = c.block_on(bounded(uploads.iter().map(
            |(run, [metadata, files])| async move {
                let uri = c.get_run(run).await?.artifact_uri.unwrap_or_default();
                c.put_artifact(&uri, METADATA, metadata).await?;
                c.put_artifact(&uri, FILES, files).await
            },
        )));
        for r in results {
            match r {
                Ok(()) => {}
                Err(CallError::Rejected { code, message, .. }) if code == NOT_PROXIED => {
                    return Ok(Ok(Some(message)));
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(None))
    }
}
