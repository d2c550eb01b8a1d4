//! A run's record as the central catalog and MLflow's `metadata.json` keep it: status, times,
//! snapshot, the code commit (with a link and checksum per committed file), and every file's
//! Table I record by logical name.

use std::path::Path;

use serde_json::{json, Value};

use super::{files_metadata, CodeVersion, RunEntry, RunSnapshot};
use crate::engine::index::RunRow;

/// The record of run `run` (`snap` its snapshot, MLflow links filled in), over `entries`
/// (all of the snapshot's, or one job's).
pub fn run_record(run: &RunRow, snap: &RunSnapshot, entries: &[&RunEntry]) -> Value {
    json!({
        "status": if run.sealed_ns.is_some() { "sealed" } else { "open" },
        "created_ns": snap.created_ns,
        "sealed_ns": run.sealed_ns,
        "snapshot": run.snapshot,
        "code": snap.code.as_ref().map(code_record),
        "files": files_metadata(&run.workflow, &run.run_id, entries.iter().copied()),
    })
}

/// A run's record as its own file says it: with its workflow and run ID.
pub fn named(mut record: Value, workflow: &str, run_id: &str) -> Value {
    if let Some(m) = record.as_object_mut() {
        m.insert("workflow".into(), json!(workflow));
        m.insert("run_id".into(), json!(run_id));
    }
    record
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
