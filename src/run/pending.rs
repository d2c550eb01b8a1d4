//! Work a seal could not finish because a network was away: pushing the sealed run to the
//! default remote, and pushing the code commit to the code repository's `origin`. The seal
//! itself never needs the network; what is left is recorded here, shown by `store runs` and
//! `store show`, and completed by `store push` or `store sync`.
//!
//! One file per run, `.store/pending/push/<run id>.json` (written atomically; removed when nothing
//! is left). Errors are kept redacted: never a credential.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::store::Store;
use crate::error::{Error, Result};

/// A git push left to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingGit {
    /// The code repository.
    pub repo: String,
    /// The branch to push.
    pub branch: String,
    /// Why the push failed (redacted).
    pub error: String,
}

/// What is left of a run's publication.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPush {
    /// The run.
    pub run_id: String,
    /// The remote the run is still to be pushed to (its name), with why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<(String, String)>,
    /// The remote the run's browsable view is still to be published on (its name), with why
    /// it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<(String, String)>,
    /// The code commit still to be pushed to `origin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<PendingGit>,
    /// The catalog commit (`metadata.repo`) still to be pushed to `origin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PendingGit>,
    /// When it was first left pending, ns since the epoch.
    pub since_ns: i64,
}

impl PendingPush {
    /// A line for people: what is pending and why.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((remote, why)) = &self.remote {
            parts.push(format!("push to {remote} pending ({why})"));
        }
        if let Some((remote, why)) = &self.publish {
            parts.push(format!("publication on {remote} pending ({why})"));
        }
        if let Some(g) = &self.git {
            parts.push(format!(
                "git push of {} to origin pending ({})",
                g.branch, g.error
            ));
        }
        if let Some(g) = &self.metadata {
            parts.push(format!(
                "git push of the catalog ({} of {}) to origin pending ({})",
                g.branch, g.repo, g.error
            ));
        }
        parts.join("; ")
    }
}

impl Store {
    fn push_pending_dir(&self) -> PathBuf {
        self.dir().join("pending").join("push")
    }

    fn push_pending_path(&self, run_id: &str) -> Result<PathBuf> {
        crate::run::check_name("run ID", run_id)?;
        Ok(self.push_pending_dir().join(format!("{run_id}.json")))
    }

    /// What is pending for one run, if anything.
    pub fn pending_push(&self, run_id: &str) -> Result<Option<PendingPush>> {
        let path = self.push_pending_path(run_id)?;
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::corrupt(path.display().to_string(), e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Every run with something pending, by run ID.
    pub fn pending_pushes(&self) -> Result<Vec<PendingPush>> {
        let dir = self.push_pending_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let name = e.map_err(|e| Error::io(&dir, e))?.file_name();
            let name = name.to_string_lossy();
            if let Some(run) = name.strip_suffix(".json") {
                if crate::run::valid_name(run) {
                    out.extend(self.pending_push(run)?);
                }
            }
        }
        out.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        Ok(out)
    }

    /// Records what is left for `run_id` (merged with what was already pending).
    pub fn mark_push_pending(
        &self,
        run_id: &str,
        remote: Option<(String, String)>,
        git: Option<PendingGit>,
    ) -> Result<PendingPush> {
        let mut p = self.pending_or_new(run_id)?;
        let redact = crate::run::git::redact;
        if let Some((name, why)) = remote {
            p.remote = Some((name, redact(&why)));
        }
        if let Some(mut g) = git {
            g.error = redact(&g.error);
            p.git = Some(g);
        }
        self.write_pending(&p)?;
        Ok(p)
    }

    /// Records that run `run_id`'s catalog commit is not on the metadata repository's
    /// `origin` yet.
    pub fn mark_metadata_pending(&self, run_id: &str, mut g: PendingGit) -> Result<PendingPush> {
        let mut p = self.pending_or_new(run_id)?;
        g.error = crate::run::git::redact(&g.error);
        p.metadata = Some(g);
        self.write_pending(&p)?;
        Ok(p)
    }

    /// What is pending for `run_id`, or a new empty record left pending from now.
    fn pending_or_new(&self, run_id: &str) -> Result<PendingPush> {
        Ok(self.pending_push(run_id)?.unwrap_or(PendingPush {
            run_id: run_id.to_string(),
            since_ns: crate::engine::util::now_ns(),
            ..PendingPush::default()
        }))
    }

    fn write_pending(&self, p: &PendingPush) -> Result<()> {
        let path = self.push_pending_path(&p.run_id)?;
        if p.remote.is_none() && p.publish.is_none() && p.git.is_none() && p.metadata.is_none() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, e)),
                _ => Ok(()),
            };
        }
        std::fs::create_dir_all(self.push_pending_dir())
            .map_err(|e| Error::io(self.push_pending_dir(), e))?;
        let json = serde_json::to_vec_pretty(p).map_err(|e| Error::Invalid(e.to_string()))?;
        crate::engine::util::atomic_write(&path, &json)
    }

    /// Records that run `run_id`'s view is still to be published on remote `name`.
    pub fn mark_publish_pending(&self, run_id: &str, name: &str, why: &str) -> Result<()> {
        let mut p = self.pending_or_new(run_id)?;
        p.publish = Some((name.to_string(), crate::run::git::redact(why)));
        self.write_pending(&p)
    }

    /// The publication of `run_id` on remote `name` is done: forgets it.
    pub fn clear_pending_publish(&self, run_id: &str, name: &str) -> Result<()> {
        if let Some(mut p) = self.pending_push(run_id)? {
            if p.publish.as_ref().is_some_and(|(n, _)| n == name) {
                p.publish = None;
                self.write_pending(&p)?;
            }
        }
        Ok(())
    }

    /// The remote push of `run_id` is done (to remote `name`): forgets it.
    pub fn clear_pending_remote(&self, run_id: &str, name: &str) -> Result<()> {
        if let Some(mut p) = self.pending_push(run_id)? {
            if p.remote.as_ref().is_some_and(|(n, _)| n == name) {
                p.remote = None;
                self.write_pending(&p)?;
            }
        }
        Ok(())
    }

    /// Pushes a pending code commit and a pending catalog commit to their `origin` again
    /// (each within `timeout`); forgets each when done, keeps the new error when not (the
    /// first error is returned).
    pub fn retry_git_push(&self, run_id: &str, timeout: std::time::Duration) -> Result<()> {
        let Some(mut p) = self.pending_push(run_id)? else {
            return Ok(());
        };
        let mut first = None;
        for slot in [&mut p.git, &mut p.metadata] {
            let Some(g) = slot.clone() else { continue };
            match crate::run::git::push_branch(std::path::Path::new(&g.repo), &g.branch, timeout) {
                Ok(()) => *slot = None,
                Err(e) => {
                    *slot = Some(PendingGit {
                        error: crate::run::git::redact(&e.to_string()),
                        ..g
                    });
                    first.get_or_insert(e);
                }
            }
        }
        self.write_pending(&p)?;
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
