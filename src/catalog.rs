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

use serde_json::{json, Value};

use crate::engine::index::RunRow;
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::run::git::{GitCommit, GitFile};
use crate::run::{files_metadata, CodeVersion};

/// The branch the catalog is committed to.
const BRANCH: &str = "main";

/// The path of a run's record in the metadata repository.
pub fn run_record_path(workflow: &str, run_id: &str) -> String {
    format!(
        "runs/{}/{run_id}.json",
        crate::run::git::branch_name(workflow)
    )
}

/// The web page of `path` at `commit` in a GitHub or GitLab repository whose `origin` is
/// `origin` (https, ssh or scp-like), else `None`.
pub fn web_link(origin: &str, commit: &str, path: &str) -> Option<String> {
    let o = origin.trim().trim_end_matches('/');
    let o = o.strip_suffix(".git").unwrap_or(o);
    let (host, repo) = if let Some(rest) = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
        .or_else(|| o.strip_prefix("ssh://"))
    {
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        let (host, repo) = rest.split_once('/')?;
        (host.split(':').next().unwrap_or(host), repo)
    } else {
        // scp-like: git@github.com:owner/repo
        let (user_host, repo) = o.split_once(':')?;
        (
            user_host.rsplit_once('@').map_or(user_host, |(_, h)| h),
            repo,
        )
    };
    if repo.is_empty() || repo.contains("..") {
        return None;
    }
    let host = host.to_ascii_lowercase();
    if host == "github.com" || host.starts_with("github.") {
        Some(format!("https://{host}/{repo}/blob/{commit}/{path}"))
    } else if host == "gitlab.com" || host.starts_with("gitlab.") {
        Some(format!("https://{host}/{repo}/-/blob/{commit}/{path}"))
    } else {
        None
    }
}

/// The code section of a run's record: repository, branch, commit, and per committed file its
/// checksum and a link (the forge's web page, else the file's path in the repository).
fn code_record(code: &CodeVersion) -> Value {
    let origin = crate::run::git::origin_url(Path::new(&code.repo));
    let files: Vec<Value> = code
        .files
        .iter()
        .map(|(path, hash)| {
            let link = origin
                .as_deref()
                .and_then(|o| web_link(o, &code.commit.commit, path))
                .unwrap_or_else(|| format!("{}/{path}", code.repo.trim_end_matches('/')));
            json!({"path": path, "checksum": hash, "link": link})
        })
        .collect();
    json!({
        "repo": code.repo,
        "origin": origin,
        "branch": code.commit.branch,
        "commit": code.commit.commit,
        "files": files,
        "store_only": code.store_only,
    })
}

impl Store {
    /// A run's record in the catalog: status, times, snapshot, code commit (when `code.repo`
    /// committed it) and every file's Table I record by logical name.
    pub fn run_record(&self, run: &RunRow) -> Result<Value> {
        let mut snap = self.run_snapshot(run)?;
        self.mlflow_overlay(&mut snap)?;
        Ok(json!({
            "status": if run.sealed_ns.is_some() { "sealed" } else { "open" },
            "created_ns": snap.created_ns,
            "sealed_ns": run.sealed_ns,
            "snapshot": run.snapshot,
            "code": snap.code.as_ref().map(code_record),
            "files": files_metadata(&run.workflow, &run.run_id, &snap.entries),
        }))
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

/// A run's record as its own file says it: with its workflow and run ID.
fn named(mut record: Value, workflow: &str, run_id: &str) -> Value {
    if let Some(m) = record.as_object_mut() {
        m.insert("workflow".into(), json!(workflow));
        m.insert("run_id".into(), json!(run_id));
    }
    record
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forge_links_for_github_and_gitlab_remotes_only() {
        let c = "0123abcd";
        for origin in [
            "https://github.com/alice/flow.git",
            "https://alice:tok@github.com/alice/flow",
            "git@github.com:alice/flow.git",
            "ssh://git@github.com/alice/flow.git",
        ] {
            assert_eq!(
                web_link(origin, c, "bin/fl.py").as_deref(),
                Some("https://github.com/alice/flow/blob/0123abcd/bin/fl.py"),
                "{origin}"
            );
        }
        assert_eq!(
            web_link("git@gitlab.com:group/sub/flow.git", c, "a.py").as_deref(),
            Some("https://gitlab.com/group/sub/flow/-/blob/0123abcd/a.py")
        );
        for other in [
            "/srv/git/flow.git",
            "https://example.org/flow.git",
            "",
            "git@github.com:",
        ] {
            assert_eq!(web_link(other, c, "a.py"), None, "{other}");
        }
    }
}
