//! The store's MLflow state, `.store/mlflow/` (store-format.md section 20): per run, the plan
//! and links (`runs/<run id>.json`, rewritten whole and atomically), the pending markers
//! (`pending/<run id>`, created once, removed by a sync) and the lock that serializes the
//! store's own reconciliations.

use std::fs;
use std::path::PathBuf;

use super::{tracking_uri, RunState};
use crate::error::{Error, Result};
use crate::store::Store;

impl Store {
    pub(super) fn mlflow_dir(&self, sub: &str) -> PathBuf {
        self.dir().join("mlflow").join(sub)
    }

    pub(super) fn state_path(&self, run_id: &str) -> PathBuf {
        self.mlflow_dir("runs").join(format!("{run_id}.json"))
    }

    pub(super) fn pending_path(&self, run_id: &str) -> PathBuf {
        self.mlflow_dir("pending").join(run_id)
    }

    /// The MLflow state of a run (`.store/mlflow/runs/<run id>.json`), if it has one.
    pub fn mlflow_state(&self, run_id: &str) -> Result<Option<RunState>> {
        let p = self.state_path(run_id);
        match fs::read(&p) {
            Ok(b) => {
                let what = p.display().to_string();
                let v: serde_json::Value = serde_json::from_slice(&b)
                    .map_err(|e| Error::corrupt(what.clone(), e.to_string()))?;
                let format = v.get("format").and_then(|f| f.as_u64()).unwrap_or(0);
                if format > u64::from(super::STATE_FORMAT) {
                    return Err(Error::NewerFormat {
                        what,
                        found: format as u32,
                        supported: super::STATE_FORMAT,
                    });
                }
                serde_json::from_value(v)
                    .map(Some)
                    .map_err(|e| Error::corrupt(what, e.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&p, e)),
        }
    }

    pub(super) fn write_state(&self, state: &RunState) -> Result<()> {
        let p = self.state_path(&state.plan.run_id);
        let dir = self.mlflow_dir("runs");
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let json = serde_json::to_vec_pretty(state).map_err(|e| Error::Invalid(e.to_string()))?;
        crate::util::atomic_write(&p, &json)
    }

    /// The tracking server of a run: `mlflow.uri`, else `MLFLOW_TRACKING_URI`, else the one its
    /// runs were created on.
    pub(super) fn uri_for(&self, run_id: &str) -> Result<Option<String>> {
        if let Some(u) = tracking_uri(self)? {
            return Ok(Some(u));
        }
        Ok(self
            .mlflow_state(run_id)?
            .and_then(|s| s.links)
            .map(|l| l.uri))
    }

    /// Whether the store has MLflow state for a run (generated with `--mlflow`, or pending).
    pub fn mlflow_linked(&self, run_id: &str) -> bool {
        self.mlflow_is_pending(run_id) || self.state_path(run_id).exists()
    }

    /// Store runs with something not yet sent to MLflow.
    pub fn mlflow_pending(&self) -> Result<Vec<String>> {
        let dir = self.mlflow_dir("pending");
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut out: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Whether a run has something not yet sent to MLflow.
    pub fn mlflow_is_pending(&self, run_id: &str) -> bool {
        self.pending_path(run_id).exists()
    }

    /// Marks a run pending: its marker is created whole (temporary file, then a hard link that
    /// fails if the marker exists), so the first reason is kept and nothing is rewritten.
    pub(super) fn mark_pending(&self, run_id: &str, why: &str) -> Result<()> {
        let dir = self.mlflow_dir("pending");
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let target = self.pending_path(run_id);
        if target.exists() {
            return Ok(());
        }
        let tmp = dir.join(format!(".{run_id}.{}.tmp", crate::util::unique_suffix()));
        let body =
            serde_json::json!({"run_id": run_id, "since_ns": crate::util::now_ns(), "reason": why});
        let r = (|| {
            fs::write(&tmp, format!("{body}\n")).map_err(|e| Error::io(&tmp, e))?;
            match fs::hard_link(&tmp, &target) {
                Ok(()) => crate::util::fsync_dir(&dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(Error::io(&target, e)),
            }
        })();
        let _ = fs::remove_file(&tmp);
        r
    }

    pub(super) fn clear_pending(&self, run_id: &str) -> Result<()> {
        let p = self.pending_path(run_id);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&p, e)),
        }
    }

    /// Serializes the store's own reconciliations (seal and sync of one store do not race to
    /// create the same runs); tracking jobs never take it.
    pub(super) fn mlflow_lock(&self) -> Result<fs::File> {
        let dir = self.dir().join("mlflow");
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let p = dir.join("lock");
        let f = fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| Error::io(&p, e))?;
        f.lock().map_err(|e| Error::io(&p, e))?;
        Ok(f)
    }
}
