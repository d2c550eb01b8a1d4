//! Versioning with git (the only module that uses git2): a workflow's code is committed to a
//! branch named after the workflow, one commit per run; the metadata catalog is committed to a
//! metadata repository. Commits are made without a work tree (blobs and trees written straight
//! into the object database) and the branch is moved with a compare-and-swap, so concurrent
//! seals of different runs never lose each other's commits; a ref lock stranded by a killed
//! writer is recovered rather than blocking the branch for good. Any git remote configured in
//! the repository as `origin` is pushed to (no hosting-service API involved).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

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

pub use crate::engine::run_object::GitCommit;

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
/// retries). Moves the branch with a compare-and-swap, retrying on a concurrent update. A ref
/// lock file in the way is waited for; one left by a process that died holding it (untouched
/// for [`LOCK_STALE_VAR`] seconds, 10 by default) is removed, and one a live writer keeps
/// holding fails the update as busy, naming the lock file.
pub fn commit_files(
    repo_path: &Path,
    branch: &str,
    files: &[GitFile],
    message: &str,
    timeout: Duration,
) -> Result<GitCommit> {
    commit(repo_path, branch, files, message, timeout, false)
}

/// [`commit_files`], except that a branch whose tip already holds exactly these files makes no
/// new commit whatever its message (the tip is returned, pushed again): for files that say
/// everything themselves, like a catalog record.
pub fn commit_files_if_changed(
    repo_path: &Path,
    branch: &str,
    files: &[GitFile],
    message: &str,
    timeout: Duration,
) -> Result<GitCommit> {
    commit(repo_path, branch, files, message, timeout, true)
}

fn commit(
    repo_path: &Path,
    branch: &str,
    files: &[GitFile],
    message: &str,
    timeout: Duration,
    any_message: bool,
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
    let stale_after = lock_stale_after();
    // Long enough for any lock present when we started waiting to become stale (then it is
    // removed), short enough that a seal facing a lock kept fresh by a live writer gives up.
    let give_up = stale_after.min(Duration::from_secs(60)) + Duration::from_secs(2);
    let mut waiting_since: Option<Instant> = None;
    let mut watched: Option<Watched> = None;
    let mut races = 0u32;
    loop {
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
            if p.tree_id() == tree_oid && (any_message || p.message() == Some(message)) {
                return finish(&repo, repo_path, branch, p.id(), timeout);
            }
        }
        let tree = repo
            .find_tree(tree_oid)
            .map_err(|e| err("read tree", repo_path, e))?;
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let oid = repo
            .commit(None, &sig, &sig, message, &tree, &parents)
            .map_err(|e| err("commit", repo_path, e))?;
        // Held from the ref update through any lock recovery, so that no other store process
        // is between creating and renaming a ref lock while we judge one.
        let guard = match RefsGuard::try_acquire(&repo) {
            Some(g) => g,
            None => {
                // Another store process is updating a ref of this repository right now.
                let since = *waiting_since.get_or_insert_with(Instant::now);
                if since.elapsed() > give_up {
                    return Err(Error::Busy(format!(
                        "branch {branch} in {}: another store process has held the lock on {} \
                         for {} s while updating a branch (a stopped process?)",
                        repo_path.display(),
                        refs_dir(&repo).display(),
                        since.elapsed().as_secs()
                    )));
                }
                pause(100);
                continue;
            }
        };
        let moved = match &parent {
            Some(p) => repo.reference_matching(&refname, oid, true, p.id(), message),
            None => repo.reference(&refname, oid, false, message),
        };
        match moved {
            Ok(_) => {
                drop(guard);
                return finish(&repo, repo_path, branch, oid, timeout);
            }
            Err(e) if e.code() == git2::ErrorCode::Locked => {
                let since = *waiting_since.get_or_insert_with(Instant::now);
                match held_lock(&repo, &refname) {
                    // Released between libgit2's attempt and our look: an ordinary race.
                    None => races += 1,
                    Some((lock, meta)) => {
                        let id = LockId::of(&meta);
                        let seen = match &watched {
                            Some(w) if w.path == lock && w.id == id => w.since,
                            _ => {
                                watched = Some(Watched {
                                    path: lock.clone(),
                                    id,
                                    since: Instant::now(),
                                });
                                Instant::now()
                            }
                        };
                        // Stale: older than the bound by its mtime, and seen unchanged by us for
                        // a while too, so a clock that differs between this host and the
                        // file system's cannot make a live writer's lock look old.
                        if age(&meta) >= stale_after
                            && seen.elapsed() >= stale_after.min(Duration::from_secs(1))
                        {
                            remove_stale_lock(&lock, id, stale_after)?;
                            watched = None;
                            continue;
                        }
                        if since.elapsed() > give_up {
                            return Err(lock_held(branch, repo_path, &lock, &meta, stale_after));
                        }
                        drop(guard);
                        pause(100);
                        continue;
                    }
                }
            }
            // Someone else moved or created the branch: rebuild on the new tip.
            Err(e)
                if matches!(
                    e.code(),
                    git2::ErrorCode::Modified | git2::ErrorCode::Exists
                ) =>
            {
                races += 1
            }
            Err(e) => return Err(err("update branch", repo_path, e)),
        }
        drop(guard);
        if races >= 50 {
            return Err(Error::Busy(format!(
                "branch {branch} in {} keeps moving",
                repo_path.display()
            )));
        }
        // A lost race: back off (full jitter, cap doubling up to 200 ms) so a busy moment does
        // not burn every attempt at once.
        pause(2u64.saturating_pow(races.min(8)).min(200));
    }
}

/// Sleeps a random time up to `cap_ms` (full jitter).
fn pause(cap_ms: u64) {
    let jitter = crate::engine::util::now_ns().unsigned_abs() % (cap_ms + 1);
    std::thread::sleep(Duration::from_millis(jitter));
}

/// Environment variable: seconds after which a ref lock is taken for one left by a killed
/// writer (default 10).
pub const LOCK_STALE_VAR: &str = "STORE_GIT_LOCK_STALE_SECS";

/// How old a ref lock must be to be removed. git writes a ref lock and renames it within
/// milliseconds, so one held for seconds was left by a process that died holding it (a killed
/// seal leaves `refs/heads/<branch>.lock`, which would otherwise block the branch for good).
fn lock_stale_after() -> Duration {
    std::env::var(LOCK_STALE_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(Duration::from_secs(10), Duration::from_secs_f64)
}

/// The directory holding the repository's shared refs (that of the main work tree).
fn refs_dir(repo: &Repository) -> PathBuf {
    repo.commondir().join("refs")
}

/// An advisory lock (flock) on the repository's `refs` directory, held by store processes
/// while they update a ref. git ignores it; among store processes it means that whoever
/// holds it knows no other store process is between creating and renaming a ref lock, and it
/// goes away with its holder, so a lock file found by the holder was not left by a live store
/// process. Nothing is created in the repository.
struct RefsGuard {
    _dir: Option<File>,
}

impl RefsGuard {
    /// `None` if another store process holds it; a guard holding nothing where the file system
    /// does not support the lock (then staleness rests on age alone).
    fn try_acquire(repo: &Repository) -> Option<RefsGuard> {
        let Ok(dir) = File::open(refs_dir(repo)) else {
            return Some(RefsGuard { _dir: None });
        };
        match dir.try_lock() {
            Ok(()) => Some(RefsGuard { _dir: Some(dir) }),
            Err(std::fs::TryLockError::WouldBlock) => None,
            Err(std::fs::TryLockError::Error(_)) => Some(RefsGuard { _dir: None }),
        }
    }
}

/// The lock file in the way of updating `refname`, if any: the ref's own, else `packed-refs`'s
/// (which git takes to delete or pack refs).
fn held_lock(repo: &Repository, refname: &str) -> Option<(PathBuf, std::fs::Metadata)> {
    let common = repo.commondir();
    [
        common.join(format!("{refname}.lock")),
        common.join("packed-refs.lock"),
    ]
    .into_iter()
    .find_map(|p| std::fs::symlink_metadata(&p).ok().map(|m| (p, m)))
}

/// Which file a lock is: a lock removed and taken again by a live writer is another file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LockId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl LockId {
    fn of(m: &std::fs::Metadata) -> LockId {
        LockId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
        }
    }
}

/// A lock file seen unchanged since `since`.
struct Watched {
    path: PathBuf,
    id: LockId,
    since: Instant,
}

/// How long ago a file was last written (zero if its time is ahead of ours).
fn age(m: &std::fs::Metadata) -> Duration {
    m.modified()
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// Removes the stale lock `lock`, known as `id`. It is first renamed aside (atomic), and only
/// the very file judged stale is deleted: should another file have taken its place between
/// the look and the rename (a live git writer's fresh lock), that one is put back.
fn remove_stale_lock(lock: &Path, id: LockId, stale_after: Duration) -> Result<()> {
    let name = lock
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
    let aside = lock.with_file_name(format!(
        "{name}.stale-{}-{}",
        std::process::id(),
        crate::engine::util::now_ns()
    ));
    match std::fs::rename(lock, &aside) {
        Ok(()) => {}
        // Someone removed it first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(cannot_remove(lock, e)),
    }
    let meta = std::fs::symlink_metadata(&aside).map_err(|e| Error::io(&aside, e))?;
    if LockId::of(&meta) == id && age(&meta) >= stale_after {
        std::fs::remove_file(&aside).map_err(|e| Error::io(&aside, e))?;
        return Ok(());
    }
    // Not the file we judged: put it back unless yet another lock is there now (hard_link
    // never replaces), then drop our name for it.
    let _ = std::fs::hard_link(&aside, lock);
    std::fs::remove_file(&aside).map_err(|e| Error::io(&aside, e))
}

fn cannot_remove(lock: &Path, e: std::io::Error) -> Error {
    Error::Busy(format!(
        "the git ref lock {} is stale (left by a killed process) but cannot be removed: {e}; \
         remove it by hand",
        lock.display()
    ))
}

/// The error for a ref lock that a live writer keeps holding.
fn lock_held(
    branch: &str,
    repo_path: &Path,
    lock: &Path,
    meta: &std::fs::Metadata,
    stale_after: Duration,
) -> Error {
    Error::Busy(format!(
        "branch {branch} in {} is locked by {} (last written {} s ago: its writer is still \
         at work); if no git process is working in that repository, remove the lock file \
         (rm '{}') and try again (store removes a ref lock untouched for {} s; {LOCK_STALE_VAR} \
         sets that bound)",
        repo_path.display(),
        lock.display(),
        age(meta).as_secs(),
        lock.display(),
        stale_after.as_secs_f64()
    ))
}

fn finish(
    repo: &Repository,
    repo_path: &Path,
    branch: &str,
    oid: Oid,
    timeout: Duration,
) -> Result<GitCommit> {
    // The commit stands whatever the network does: a failed push is reported, not fatal.
    let (pushed, push_error) = match repo.find_remote("origin") {
        Ok(mut remote) => {
            let spec = format!("refs/heads/{branch}:refs/heads/{branch}");
            match push(&mut remote, repo_path, &spec, timeout) {
                Ok(()) => (true, None),
                Err(e) => (false, Some(redact(&e.to_string()))),
            }
        }
        Err(_) => (false, None),
    };
    Ok(GitCommit {
        branch: branch.to_string(),
        commit: oid.to_string(),
        pushed,
        push_error,
    })
}

/// The URL of the repository's `origin` (credentials removed), if it has one.
pub fn origin_url(repo_path: &Path) -> Option<String> {
    let repo = Repository::open(repo_path).ok()?;
    let remote = repo.find_remote("origin").ok()?;
    remote.url().map(redact)
}

/// Pushes `branch` of the repository at `repo_path` to its `origin` (a pending push being
/// completed), within `timeout`.
pub fn push_branch(repo_path: &Path, branch: &str, timeout: Duration) -> Result<()> {
    let repo = Repository::open(repo_path).map_err(|e| err("open", repo_path, e))?;
    let mut remote = repo
        .find_remote("origin")
        .map_err(|e| err("find origin", repo_path, e))?;
    let spec = format!("refs/heads/{branch}:refs/heads/{branch}");
    push(&mut remote, repo_path, &spec, timeout)
}

/// Runs `cmd` to its end or until `deadline` (then kills it): its output, or why not.
fn output_until(
    mut cmd: std::process::Command,
    deadline: Instant,
) -> std::io::Result<std::process::Output> {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    loop {
        if child.try_wait()?.is_some() {
            return child.wait_with_output();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out",
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pushes `spec` to `origin`. The git command line is used when present, so any remote works
/// with the user's own transports and credential helpers (ssh keys, https tokens), which
/// never pass through the store; libgit2 (built without network transports) is the fallback
/// for local and file remotes.
fn push(
    remote: &mut git2::Remote<'_>,
    repo_path: &Path,
    spec: &str,
    timeout: Duration,
) -> Result<()> {
    // The spec names the local branch, whose tip contains every commit made here so far, so a
    // push never moves the remote backwards; concurrent pushes that collide on the remote's
    // ref lock are retried, all within `timeout`.
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    for attempt in 0..6u32 {
        let mut cmd = std::process::Command::new("git");
        cmd.arg("-C")
            .arg(repo_path)
            .args(["push", "--quiet", "origin", spec])
            .env("GIT_TERMINAL_PROMPT", "0");
        match output_until(cmd, deadline) {
            Ok(o) if o.status.success() => return Ok(()),
            Ok(o) => last = redact(String::from_utf8_lossy(&o.stderr).trim()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = format!("no answer within {} s", timeout.as_secs_f64());
                break;
            }
            Err(_) => {
                return remote
                    .push(&[spec], None)
                    .map_err(|e| err("push to origin", repo_path, e))
            }
        }
        if Instant::now() >= deadline {
            break;
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
    crate::engine::redact::redact(msg)
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
