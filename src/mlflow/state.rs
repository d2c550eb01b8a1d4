//! The store's MLflow state, `.store/mlflow/` (store-format.md section 20): per run, the plan
//! and links (`runs/<run id>.json`, rewritten whole and atomically), the pending markers
//! (`pending/<run id>`, created once, removed by a sync) and the lock that serializes the
//! store's own reconciliations.

use std::fs;
use std::path::PathBuf;

use super::{tracking_uri, RunState};
use crate::engine::store::Store;
use crate::error::{Error, Result};

/// Refuses a run ID that is not one path component (see [`crate::run::valid_name`]).
fn check_run_id(run_id: &str) -> Result<()> {
    if crate::run::valid_name(run_id) {
        Ok(())
    } else {
        Err(Error::corrupt(
            "MLflow state",
            crate::run::name_problem("run ID", run_id),
        ))
    }
}

impl Store {
    pub(super) fn mlflow_dir(&self, sub: &str) -> PathBuf {
        self.dir().join("mlflow").join(sub)
    }

    /// `.store/mlflow/runs/<run id>.json`. The run ID becomes a file name: one that breaks the
    /// rule of run IDs (`../x`, a `/`, control bytes) is refused here whatever its source, even
    /// though every decoder already refuses it, so no path outside `.store/mlflow/` is built.
    pub(super) fn state_path(&self, run_id: &str) -> Result<PathBuf> {
        check_run_id(run_id)?;
        Ok(self.mlflow_dir("runs").join(format!("{run_id}.json")))
    }

    /// `.store/mlflow/pending/<run id>`; refuses an invalid run ID as [`Store::state_path`] does.
    pub(super) fn pending_path(&self, run_id: &str) -> Result<PathBuf> {
        check_run_id(run_id)?;
        Ok(self.mlflow_dir("pending").join(run_id))
    }

    /// The MLflow state of a run (`.store/mlflow/runs/<run id>.json`), if it has one.
    pub fn mlflow_state(&self, run_id: &str) -> Result<Option<RunState>> {
        let p = self.state_path(run_id)?;
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
        let p = self.state_path(&state.plan.run_id)?;
        let dir = self.mlflow_dir("runs");
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let json = serde_json::to_vec_pretty(state).map_err(|e| Error::Invalid(e.to_string()))?;
        crate::engine::util::atomic_write(&p, &json)
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
        self.mlflow_is_pending(run_id) || self.state_path(run_id).is_ok_and(|p| p.exists())
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
            // Temporary files start with `.`; anything else that is no run ID is not ours.
            .filter(|n| !n.starts_with('.') && crate::run::valid_name(n))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Whether a run has something not yet sent to MLflow.
    pub fn mlflow_is_pending(&self, run_id: &str) -> bool {
        self.pending_path(run_id).is_ok_and(|p| p.exists())
    }

    /// Marks a run pending: its marker is created whole (temporary file, then a hard link that
    /// fails if the marker exists), so the first reason is kept and nothing is rewritten.
    pub(super) fn mark_pending(&self, run_id: &str, why: &str) -> Result<()> {
        let target = self.pending_path(run_id)?;
        let dir = self.mlflow_dir("pending");
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        if target.exists() {
            return Ok(());
        }
        let tmp = dir.join(format!(
            ".{run_id}.{}.tmp",
            crate::engine::util::unique_suffix()
        ));
        let body = serde_json::json!({"run_id": run_id, "since_ns": crate::engine::util::now_ns(), "reason": why});
        let r = (|| {
            fs::write(&tmp, format!("{body}\n")).map_err(|e| Error::io(&tmp, e))?;
            match fs::hard_link(&tmp, &target) {
                Ok(()) => crate::engine::util::fsync_dir(&dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(Error::io(&target, e)),
            }
        })();
        let _ = fs::remove_file(&tmp);
        r
    }

    pub(super) fn clear_pending(&self, run_id: &str) -> Result<()> {
        let p = self.pending_path(run_id)?;
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

#[cfg(test)]
mod tests {
    use crate::engine::store::{InitOptions, Store};

    /// A run ID that is no path component never becomes a path: nothing is written outside
    /// `.store/mlflow/`, and the refusal is corrupt data (exit 5), not a crash.
    #[test]
    fn invalid_run_ids_build_no_path() {
        let ws = tempfile::tempdir().expect("tmp");
        let s = Store::init(&ws.path().join(".store"), &InitOptions::default()).expect("init");
        for bad in [
            "../x",
            "../../escaped",
            "a/b",
            "..",
            "",
            "esc\u{1b}[2J",
            "nl\nx",
        ] {
            let e = s.mark_pending(bad, "test").expect_err(bad);
            assert_eq!(e.exit_code(), crate::exit::CORRUPT, "{bad}: {e}");
            assert!(s.mlflow_state(bad).is_err(), "{bad}");
            assert!(s.clear_pending(bad).is_err(), "{bad}");
            assert!(!s.mlflow_is_pending(bad) && !s.mlflow_linked(bad), "{bad}");
        }
        assert!(!ws.path().join(".store/x").exists());
        assert!(!ws.path().join("escaped").exists());
        assert!(!ws.path().join(".store/mlflow/x").exists());
        s.mark_pending("good-run", "test").expect("a valid run ID");
        assert_eq!(
            s.mlflow_pending().expect("pending"),
            vec!["good-run".to_string()]
        );
        // A stray file in pending/ that is no run ID is not reported as a run.
        std::fs::write(ws.path().join(".store/mlflow/pending/bad name"), b"x").expect("write");
        assert_eq!(
            s.mlflow_pending().expect("pending"),
            vec!["good-run".to_string()]
        );
    }
}
