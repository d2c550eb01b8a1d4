//! MLflow artifacts and parameters of a sealed run: its parent MLflow run gets the run's
//! `metadata.json`
//! (Table I for every file, as the central catalog keeps it) and `files.json` (every file:
//! role, logical name, path, job, hash, size, remote and MLflow URLs); each child run gets the
//! same two files for its job's records. They go through the tracking server's artifact API
//! (`mlflow-artifacts:`, which `mlflow server` serves by default), written again with the same
//! bytes by a later seal or sync, so sending twice changes nothing. A server that does not
//! store artifacts itself gets none, and the caller warns: the runs still carry every tag.
//! Parameters from configuration files ([`super::params`]) are logged in the same pass: the
//! parent's from the plan, each child's from the file its job recorded under the name its
//! `mlflow_params` metadata gives.

use serde_json::{json, Value};

use super::client::{bounded, CallError, Client, NOT_PROXIED};
use super::params::{config_params, LARGEST};
use super::Links;
use crate::engine::index::RunRow;
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::run::{RunEntry, RunSnapshot};

/// The artifact names.
pub const METADATA: &str = "metadata.json";
/// See [`METADATA`].
pub const FILES: &str = "files.json";

/// `metadata.json` and `files.json` of `entries` (all of a run's, or one job's).
fn documents(snap: &RunSnapshot, row: &RunRow, entries: &[&RunEntry]) -> Result<[Vec<u8>; 2]> {
    let metadata = crate::run::record::named(
        crate::run::record::run_record(row, snap, entries),
        &row.workflow,
        &row.run_id,
    );
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
        self.published_overlay(&mut snap)?;
        let plan = self.mlflow_state(&row.run_id)?.map(|s| s.plan);
        let mut warnings = Vec::new();
        let all: Vec<&RunEntry> = snap.entries.iter().collect();
        let parent_params = plan.as_ref().map(|p| p.params.clone()).unwrap_or_default();
        let mut uploads = vec![(
            links.parent.run_id.clone(),
            documents(&snap, row, &all)?,
            parent_params,
        )];
        for (job, link) in &links.jobs {
            let mine: Vec<&RunEntry> = snap.entries.iter().filter(|e| &e.job_id == job).collect();
            let from = plan
                .as_ref()
                .and_then(|p| p.jobs.iter().find(|j| &j.job_id == job))
                .and_then(|j| j.params_from.as_deref());
            let params = match from {
                Some(name) => match self.job_params(&mine, job, name)? {
                    Ok(p) => p,
                    Err(why) => {
                        warnings.push(why);
                        Vec::new()
                    }
                },
                None => Vec::new(),
            };
            uploads.push((link.run_id.clone(), documents(&snap, row, &mine)?, params));
        }
        let results = c.block_on(bounded(uploads.iter().map(
            |(run, [metadata, files], params)| async move {
                if !params.is_empty() {
                    c.log_batch(run, params, &[]).await?;
                }
                let uri = c.get_run(run).await?.artifact_uri.unwrap_or_default();
                c.put_artifact(&uri, METADATA, metadata).await?;
                c.put_artifact(&uri, FILES, files).await
            },
        )));
        let mut not_served = None;
        for r in results {
            match r {
                Ok(()) => {}
                Err(CallError::Rejected { code, message, .. }) if code == NOT_PROXIED => {
                    not_served = Some(format!("no artifacts: {message}"));
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        warnings.extend(not_served);
        Ok(Ok((!warnings.is_empty()).then(|| warnings.join("; "))))
    }

    /// The parameters of job `job` from the file it recorded as `name` (its logical name, else
    /// its path), as the job read it; `Err(why)` when there is none or it is no mapping.
    fn job_params(
        &self,
        entries: &[&RunEntry],
        job: &str,
        name: &str,
    ) -> Result<std::result::Result<Vec<(String, String)>, String>> {
        let found = entries
            .iter()
            .filter(|e| e.kind == "file" && (e.lfn == name || e.path == name))
            .min_by_key(|e| e.direction.map(|d| d.as_str() != "consumed"));
        let Some(e) = found else {
            return Ok(Err(format!(
                "job {job}: mlflow_params names {name:?}, which the job did not record (track it \
                 as an input)"
            )));
        };
        if e.size > LARGEST {
            return Ok(Err(format!(
                "job {job}: {name} is above {LARGEST} bytes, not read for parameters"
            )));
        }
        let mut bytes = Vec::new();
        self.cat(&e.hash, &mut bytes)?;
        Ok(config_params(&bytes, name).map_err(|e| format!("job {job}: {e}")))
    }
}
