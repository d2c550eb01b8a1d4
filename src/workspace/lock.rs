//! `store.lock`, the versions a workspace's tracked paths are at, as a file to commit to git
//! (DVC keeps the same in `.dvc` files): `store add` writes an entry per path it adds inside
//! the workspace, an in-place checkout moves an entry to the version it restored, and
//! `store checkout` with no argument makes the workspace match the file, so `git checkout
//! <commit> && store checkout` gives that commit's data. `store add` also lists each added
//! path in a `.gitignore` beside it when the workspace is in a git work tree, once.
//!
//! The file (YAML, keys sorted so that diffs stay small):
//!
//! ```yaml
//! # store.lock: ...
//! version: 1
//! paths:
//!   data:
//!     hash: 8f1c...   # 64 hex characters: a tree or file manifest
//!     kind: tree      # or file
//!     size: 1048576   # logical bytes
//!     files: 12       # regular files (1 for a file)
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::hash::Hash;
use crate::engine::store::Store;
use crate::engine::util::atomic_write;
use crate::error::{Error, Result};

/// The lock file's name, at the workspace root.
pub const LOCK_FILE: &str = "store.lock";

const HEADER: &str = "# store.lock: the version of each tracked path of this workspace, written by `store add`.\n# Commit it with your code; `store checkout` (no argument) makes the workspace match it.\n";

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// Format version (1).
    pub version: u32,
    /// Workspace-relative path (`/`-separated) -> its version.
    #[serde(default)]
    pub paths: BTreeMap<String, LockEntry>,
}

/// One tracked path's version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockEntry {
    /// Hash of its file or tree manifest (hex).
    pub hash: String,
    /// `file` or `tree`.
    pub kind: String,
    /// Logical size in bytes.
    pub size: u64,
    /// Regular files (1 for a file).
    pub files: u64,
}

impl LockEntry {
    /// The entry's hash, checked.
    pub fn hash(&self) -> Result<Hash> {
        self.hash
            .parse()
            .map_err(|_| Error::Invalid(format!("{LOCK_FILE}: {:?} is not a hash", self.hash)))
    }
}

impl Store {
    /// The workspace directory: the parent of `.store`, where run paths and `store.lock`'s
    /// paths are relative to.
    pub fn workspace(&self) -> PathBuf {
        let dir = std::fs::canonicalize(self.dir()).unwrap_or_else(|_| self.dir().to_path_buf());
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    }

    /// Where the workspace's lock file is.
    pub fn lock_file(&self) -> PathBuf {
        self.workspace().join(LOCK_FILE)
    }

    /// The workspace's `store.lock`, or None when there is none. A malformed file, or a path
    /// in it that leaves the workspace, is an error naming it.
    pub fn read_lock(&self) -> Result<Option<Lock>> {
        let path = self.lock_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let lock: Lock = serde_norway::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        if lock.version != 1 {
            return Err(Error::Invalid(format!(
                "{}: version {} is not one this store reads (1)",
                path.display(),
                lock.version
            )));
        }
        for (p, e) in &lock.paths {
            if !is_plain_relative(p) {
                return Err(Error::UnsafePath(format!("{}: {p}", path.display())));
            }
            e.hash()?;
            if e.kind != "file" && e.kind != "tree" {
                return Err(Error::Invalid(format!(
                    "{}: {p}: kind {:?} is neither file nor tree",
                    path.display(),
                    e.kind
                )));
            }
        }
        Ok(Some(lock))
    }

    /// The lock-file key of an absolute path: workspace-relative with `/`, or None outside
    /// the workspace.
    pub fn lock_key(&self, abs: &Path) -> Option<String> {
        let ws = self.workspace();
        let abs = canonical_parent(abs);
        let rel = abs.strip_prefix(&ws).ok()?;
        let parts: Vec<&str> = rel
            .components()
            .map(|c| match c {
                Component::Normal(s) => s.to_str(),
                _ => None,
            })
            .collect::<Option<_>>()?;
        (!parts.is_empty()).then(|| parts.join("/"))
    }

    /// Sets the entries of `updates` (absolute path -> entry) in `store.lock`, creating it,
    /// under a lock so concurrent adds lose nothing. Paths outside the workspace are left out.
    /// The file is rewritten (atomically) only when its content changes.
    pub fn update_lock(&self, updates: &[(PathBuf, LockEntry)]) -> Result<()> {
        let keyed: Vec<(String, &LockEntry)> = updates
            .iter()
            .filter_map(|(p, e)| self.lock_key(p).map(|k| (k, e)))
            .collect();
        if keyed.is_empty() {
            return Ok(());
        }
        let guard = self.dir().join("store.lock.flock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&guard)
            .map_err(|e| Error::io(&guard, e))?;
        f.lock().map_err(|e| Error::io(&guard, e))?;
        let mut lock = self.read_lock()?.unwrap_or(Lock {
            version: 1,
            paths: BTreeMap::new(),
        });
        let before = lock.clone();
        for (k, e) in keyed {
            lock.paths.insert(k, e.clone());
        }
        let path = self.lock_file();
        if lock != before || !path.exists() {
            let body = serde_norway::to_string(&lock)
                .map_err(|e| Error::Invalid(format!("cannot write {LOCK_FILE}: {e}")))?;
            atomic_write(&path, format!("{HEADER}{body}").as_bytes())?;
        }
        Ok(())
    }

    /// In a git work tree, has `.store/` ignore itself (a `.gitignore` of `*` inside it: its
    /// packs are the data, never for git). Whether the workspace is in a git work tree.
    pub fn ignore_store_in_git(&self) -> Result<bool> {
        if !self
            .workspace()
            .ancestors()
            .any(|d| d.join(".git").exists())
        {
            return Ok(false);
        }
        let own = self.dir().join(".gitignore");
        if !own.exists() {
            atomic_write(
                &own,
                b"# The store's packs and index: never committed to git.\n*\n",
            )?;
        }
        Ok(true)
    }

    /// Lists each of `paths` (absolute) in a `.gitignore` beside it (`/name`), once, when the
    /// workspace is inside a git work tree (and has `.store/` ignore itself); paths outside
    /// the workspace are left alone.
    pub fn ignore_in_git(&self, paths: &[PathBuf]) -> Result<()> {
        if !self.ignore_store_in_git()? {
            return Ok(());
        }
        for p in paths {
            if self.lock_key(p).is_none() {
                continue;
            }
            let p = canonical_parent(p);
            let (Some(dir), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str()))
            else {
                continue;
            };
            let line = format!("/{}", escape_gitignore(name));
            let file = dir.join(".gitignore");
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(Error::io(&file, e)),
            };
            if text.lines().any(|l| l.trim_end() == line) {
                continue;
            }
            let mut new = text;
            if !new.is_empty() && !new.ends_with('\n') {
                new.push('\n');
            }
            new.push_str(&line);
            new.push('\n');
            atomic_write(&file, new.as_bytes())?;
        }
        Ok(())
    }
}

/// `p` with its parent directory canonicalized (the last component kept as it is, so a
/// symlink added by name stays that name).
fn canonical_parent(p: &Path) -> PathBuf {
    match (p.parent(), p.file_name()) {
        (Some(d), Some(n)) => std::fs::canonicalize(d)
            .unwrap_or_else(|_| d.to_path_buf())
            .join(n),
        _ => p.to_path_buf(),
    }
}

/// A relative path of plain components only (no `..`, `.`, root or empty part).
fn is_plain_relative(p: &str) -> bool {
    !p.is_empty()
        && !p.contains('\\')
        && p.split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
}

/// A file name as a literal gitignore pattern.
fn escape_gitignore(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, c) in name.chars().enumerate() {
        if matches!(c, '*' | '?' | '[' | '\\') || (i == 0 && matches!(c, '#' | '!')) {
            out.push('\\');
        }
        out.push(c);
    }
    // Trailing spaces are ignored by git unless escaped.
    if out.ends_with(' ') {
        out.pop();
        out.push_str("\\ ");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_paths_must_stay_inside() {
        for ok in ["data", "a/b", "x y/z.txt"] {
            assert!(is_plain_relative(ok), "{ok}");
        }
        for bad in ["", "/etc", "../x", "a/../b", "a//b", "./a", "a\\b"] {
            assert!(!is_plain_relative(bad), "{bad}");
        }
    }

    #[test]
    fn gitignore_patterns_are_literal() {
        assert_eq!(escape_gitignore("data"), "data");
        assert_eq!(escape_gitignore("#x*"), "\\#x\\*");
        assert_eq!(escape_gitignore("a "), "a\\ ");
    }
}
