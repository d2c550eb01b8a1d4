//! Versioning with git (the only module that uses git2): a workflow's code is committed to a
//! branch named after the workflow, one commit per run; the metadata catalog is committed to a
//! metadata repository. Commits are made without a work tree (blobs and trees written straight
//! into the object database) and the branch is moved with a compare-and-swap, so concurrent
//! seals of different runs never lose each other's commits. Any git remote configured in the
//! repository as `origin` is pushed to (no hosting-service API involved).

use std::path::Path;

use git2::{build::TreeUpdateBuilder, FileMode, Oid, Repository, Signature};

use crate::error::{Error, Result};

/// One file to commit.
pub struct GitFile {
    /// Path inside the repository (relative, `/`-separated).
    pub path: String,
    /// Content.
    pub content: Vec<u8>,
    /// Executable bit.
    pub executable: bool,
}

/// What was committed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GitCommit {
    /// The branch.
    pub branch: String,
    /// The commit ID (hex).
    pub commit: String,
    /// Whether it was pushed to `origin`.
    pub pushed: bool,
}

fn err(what: &str, repo: &Path, e: git2::Error) -> Error {
    Error::Git(format!(
        "git {what} in {}: {}",
        repo.display(),
        redact(e.message())
    ))
}

/// A valid branch name for `name` (characters git forbids become `_`).
pub fn branch_name(name: &str) -> String {
    let mut b: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-+@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    while b.contains("..") {
        b = b.replace("..", "_.");
    }
    if b.starts_with('.')
        || b.ends_with('.')
        || b.ends_with(".lock")
        || b.is_empty()
        || b.contains("@{")
    {
        b = format!("wf_{b}_");
    }
    b
}

/// Commits `files` on top of `branch` in the repository at `repo_path` (created if missing),
/// unless the branch tip already has exactly this tree with the same message (idempotent
/// retries). Moves the branch with a compare-and-swap, retrying on a concurrent update.
pub fn commit_files(
    repo_path: &Path,
    branch: &str,
    files: &[GitFile],
    message: &str,
) -> Result<GitCommit> {
    let repo = match Repository::open(repo_path) {
        Ok(r) => r,
        Err(e) if e.code() == git2::ErrorCode::NotFound => {
            Repository::init(repo_path).map_err(|e| err("init", repo_path, e))?
        }
        Err(e) => return Err(err("open", repo_path, e)),
    };
    let refname = format!("refs/heads/{branch}");
    if !git2::Reference::is_valid_name(&refname) {
        return Err(Error::Invalid(format!(
            "{branch:?} is not a valid git branch name"
        )));
    }
    let sig =
        Signature::now("store", "store@localhost").map_err(|e| err("signature", repo_path, e))?;
    for attempt in 0..50u32 {
        if attempt > 0 {
            // A lost race or a ref lock held by another writer: back off (full jitter, up to
            // 200 ms) so a busy moment does not burn every attempt at once.
            let cap = 2u64.saturating_pow(attempt.min(8)).min(200);
            let jitter = crate::util::now_ns().unsigned_abs() % (cap + 1);
            std::thread::sleep(std::time::Duration::from_millis(jitter));
        }
        let parent = match repo.find_reference(&refname) {
            Ok(r) => Some(
                r.peel_to_commit()
                    .map_err(|e| err("read branch", repo_path, e))?,
            ),
            Err(e) if e.code() == git2::ErrorCode::NotFound => None,
            Err(e) => return Err(err("read branch", repo_path, e)),
        };
        let mut update = TreeUpdateBuilder::new();
        for f in files {
            let oid = repo
                .blob(&f.content)
                .map_err(|e| err("write blob", repo_path, e))?;
            let mode = if f.executable {
                FileMode::BlobExecutable
            } else {
                FileMode::Blob
            };
            update.upsert(f.path.as_str(), oid, mode);
        }
        let base = match &parent {
            Some(p) => p.tree().map_err(|e| err("read tree", repo_path, e))?,
            None => {
                let empty = repo
                    .treebuilder(None)
                    .and_then(|b| b.write())
                    .map_err(|e| err("write tree", repo_path, e))?;
                repo.find_tree(empty)
                    .map_err(|e| err("read tree", repo_path, e))?
            }
        };
        let tree_oid = update
            .create_updated(&repo, &base)
            .map_err(|e| err("write tree", repo_path, e))?;
        if let Some(p) = &parent {
            if p.tree_id() == tree_oid && p.message() == Some(message) {
                return finish(&repo, repo_path, branch, p.id());
            }
        }
        let tree = repo
            .find_tree(tree_oid)
            .map_err(|e| err("read tree", repo_path, e))?;
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let oid = repo
            .commit(None, &sig, &sig, message, &tree, &parents)
            .map_err(|e| err("commit", repo_path, e))?;
        let moved = match &parent {
            Some(p) => repo.reference_matching(&refname, oid, true, p.id(), message),
            None => repo.reference(&refname, oid, false, message),
        };
        match moved {
            Ok(_) => return finish(&repo, repo_path, branch, oid),
            // Someone else moved the branch: rebuild on the new tip.
            Err(e)
                if matches!(
                    e.code(),
                    git2::ErrorCode::Modified | git2::ErrorCode::Exists | git2::ErrorCode::Locked
                ) =>
            {
                continue
            }
            Err(e) => return Err(err("update branch", repo_path, e)),
        }
    }
    Err(Error::Busy(format!(
        "branch {branch} in {} keeps moving",
        repo_path.display()
    )))
}

fn finish(repo: &Repository, repo_path: &Path, branch: &str, oid: Oid) -> Result<GitCommit> {
    let pushed = match repo.find_remote("origin") {
        Ok(mut remote) => {
            let spec = format!("refs/heads/{branch}:refs/heads/{branch}");
            push(&mut remote, repo_path, &spec)?;
            true
        }
        Err(_) => false,
    };
    Ok(GitCommit {
        branch: branch.to_string(),
        commit: oid.to_string(),
        pushed,
    })
}

/// Pushes `spec` to `origin`. The git command line is used when present, so any remote works
/// with the user's own transports and credential helpers (ssh keys, https tokens), which
/// never pass through the store; libgit2 (built without network transports) is the fallback
/// for local and file remotes.
fn push(remote: &mut git2::Remote<'_>, repo_path: &Path, spec: &str) -> Result<()> {
    // The spec names the local branch, whose tip contains every commit made here so far, so a
    // push never moves the remote backwards; concurrent pushes that collide on the remote's
    // ref lock are retried.
    let mut last = String::new();
    for attempt in 0..6u32 {
        let cli = std::process::Command::new("git")
            .arg("-C")
            .arg(repo_path)
            .args(["push", "--quiet", "origin", spec])
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .output();
        match cli {
            Ok(o) if o.status.success() => return Ok(()),
            Ok(o) => last = redact(String::from_utf8_lossy(&o.stderr).trim()),
            Err(_) => {
                return remote
                    .push(&[spec], None)
                    .map_err(|e| err("push to origin", repo_path, e))
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50 << attempt));
    }
    Err(Error::Git(format!(
        "git push to origin from {} failed: {last}",
        repo_path.display()
    )))
}

/// Removes credentials embedded in URLs (`scheme://user:token@host`) from a message.
pub fn redact(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***@");
                rest = &tail[at + 1..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// The content of `path` at `commit` in the repository, if present.
pub fn read_file(repo_path: &Path, commit: &str, path: &str) -> Result<Option<Vec<u8>>> {
    let repo = Repository::open(repo_path).map_err(|e| err("open", repo_path, e))?;
    let oid = Oid::from_str(commit).map_err(|e| err("parse commit id", repo_path, e))?;
    let c = repo
        .find_commit(oid)
        .map_err(|e| err("find commit", repo_path, e))?;
    let tree = c.tree().map_err(|e| err("read tree", repo_path, e))?;
    match tree.get_path(Path::new(path)) {
        Ok(entry) => {
            let blob = repo
                .find_blob(entry.id())
                .map_err(|e| err("read blob", repo_path, e))?;
            Ok(Some(blob.content().to_vec()))
        }
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            super::redact(
                "fatal: unable to access 'https://bob:ghp_secret@example.org/r.git/': denied"
            ),
            "fatal: unable to access 'https://***@example.org/r.git/': denied"
        );
        assert_eq!(super::redact("plain /path/repo"), "plain /path/repo");
    }
}
