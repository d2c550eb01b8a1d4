//! A tracked path restored where it is, as `dvc checkout` does: `store checkout data` puts
//! back the version `store.lock` names for `data` (else its last added one, or an earlier one
//! with `--rev`), refusing to overwrite changes made since that add unless forced;
//! `store checkout` alone does so for every path of `store.lock`; and the hash a path has on
//! disk now.

use std::path::{Path, PathBuf};

use crate::engine::hash::{Hash, ObjectKind};
use crate::engine::store::{LockMode, Store};
use crate::engine::util::unique_suffix;
use crate::error::{Error, Result};
use crate::workspace::add::{absolute, path_key, AddOptions};
use crate::workspace::checkout::{CheckoutOptions, CheckoutReport};
use crate::workspace::lock::LOCK_FILE;

impl Store {
    /// The hash a file or directory on disk has now (without storing anything).
    pub fn hash_path(&self, p: &Path) -> Result<Hash> {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.is_dir() {
            // A directory's hash needs its tree manifests: compute them without storing.
            let opts = AddOptions {
                dry_run: true,
                ..AddOptions::default()
            };
            let r = self.add(&[p.to_path_buf()], &opts)?;
            return Ok(r.added[0].hash);
        }
        let f = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
        Ok(self
            .chunk_file(&f, p, None, &crate::engine::progress::hidden())?
            .hash())
    }

    /// Whether `p` is a tracked path: added at least once, or listed in `store.lock`.
    pub fn is_tracked(&self, p: &Path) -> Result<bool> {
        let abs = absolute(p)?;
        if !self.index().root_history(Some(&path_key(&abs)))?.is_empty() {
            return Ok(true);
        }
        Ok(match (self.lock_key(&abs), self.read_lock()?) {
            (Some(k), Some(lock)) => lock.paths.contains_key(&k),
            _ => false,
        })
    }

    /// Restores tracked path `p` in place to version `rev`, or else to the version
    /// `store.lock` names for it, or else to its last added one. If what is on disk is no
    /// version the store holds of `p` (changed since its last add or checkout), nothing is
    /// written unless `force` ([`Error::WouldOverwrite`]). A directory is restored exactly:
    /// built beside it, then swapped in, so files the version does not hold are gone. The
    /// path is then added again, so `status` is clean and `store.lock` names the version.
    /// A `rev` that is no version of `p` is an error.
    pub fn checkout_path(
        &self,
        p: &Path,
        rev: Option<&Hash>,
        force: bool,
        opts: &CheckoutOptions,
    ) -> Result<(Hash, CheckoutReport)> {
        let t = self.checkout_target(p, rev)?;
        if let Some(r) = self.check_overwrite(&t, force)? {
            return Ok((t.hash, r));
        }
        let r = self.restore_in_place(&t, opts)?;
        Ok((t.hash, r))
    }

    /// Makes the workspace match `store.lock`: every path it lists is restored in place to
    /// its version (see [`Store::checkout_path`]). Nothing is written if any path holds
    /// changes not yet added (unless `force`); the error names the first.
    pub fn checkout_locked(
        &self,
        force: bool,
        opts: &CheckoutOptions,
    ) -> Result<Vec<(String, Hash, CheckoutReport)>> {
        let lock = self.read_lock()?.ok_or_else(|| {
            Error::Invalid(format!(
                "no {} in {}: `store add PATH` writes it; or give a run, hash or path",
                LOCK_FILE,
                self.workspace().display()
            ))
        })?;
        let ws = self.workspace();
        let mut targets = Vec::new();
        for key in lock.paths.keys() {
            let t = self.checkout_target(&ws.join(key), None)?;
            let done = self.check_overwrite(&t, force)?;
            targets.push((key.clone(), t, done));
        }
        let mut out = Vec::new();
        for (key, t, done) in targets {
            let r = match done {
                Some(r) => r,
                None => self.restore_in_place(&t, opts)?,
            };
            out.push((key, t.hash, r));
        }
        Ok(out)
    }

    /// What an in-place checkout of `p` restores.
    fn checkout_target(&self, p: &Path, rev: Option<&Hash>) -> Result<Target> {
        let abs = absolute(p)?;
        let history = self.index().root_history(Some(&path_key(&abs)))?;
        let locked = match (self.lock_key(&abs), self.read_lock()?) {
            (Some(k), Some(lock)) => lock.paths.get(&k).cloned(),
            _ => None,
        };
        let known: Vec<Hash> = history.iter().map(|r| r.hash).collect();
        let (hash, kind) = match (rev, &locked) {
            (Some(h), _) => match history.iter().find(|r| r.hash == *h) {
                Some(r) => (r.hash, r.kind.clone()),
                None => match &locked {
                    Some(e) if e.hash()? == *h => (*h, e.kind.clone()),
                    _ => {
                        return Err(Error::Invalid(format!(
                            "{h} is not a version of {} (`store log {}` lists them)",
                            p.display(),
                            p.display()
                        )))
                    }
                },
            },
            (None, Some(e)) => (e.hash()?, e.kind.clone()),
            (None, None) => {
                let last = history.first().ok_or_else(|| {
                    Error::Invalid(format!("{} is not a tracked path", p.display()))
                })?;
                (last.hash, last.kind.clone())
            }
        };
        let kind = if kind == "tree" {
            ObjectKind::Tree
        } else {
            ObjectKind::File
        };
        let mut known = known;
        known.extend(locked.map(|e| e.hash()).transpose()?);
        Ok(Target {
            abs,
            hash,
            kind,
            known,
        })
    }

    /// Some(empty report) when `t` is already on disk; an error when what is there is no
    /// version the store knows of the path (unless `force`); None when it is to be restored.
    fn check_overwrite(&self, t: &Target, force: bool) -> Result<Option<CheckoutReport>> {
        if std::fs::symlink_metadata(&t.abs).is_err() {
            return Ok(None);
        }
        let now = self.hash_path(&t.abs)?;
        if now == t.hash {
            return Ok(Some(CheckoutReport::default()));
        }
        // Content the store holds as a version of the path loses nothing; anything else is
        // a change not yet added.
        if !force && !t.known.contains(&now) {
            return Err(Error::WouldOverwrite(t.abs.clone()));
        }
        Ok(None)
    }

    /// Restores `t` where it is (a tree built beside it and swapped in), then adds it again.
    fn restore_in_place(&self, t: &Target, opts: &CheckoutOptions) -> Result<CheckoutReport> {
        let abs = &t.abs;
        let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) else {
            return Err(Error::Invalid(format!("{} has no parent", abs.display())));
        };
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let r = {
            let _lock = self.lock(LockMode::Shared)?;
            self.ensure_manifests(&[t.hash])?;
            let side = |what: &str| {
                parent.join(format!(
                    ".{}.store-{what}-{}",
                    name.to_string_lossy(),
                    unique_suffix()
                ))
            };
            let fresh = side("new");
            let built = self.restore_to(&t.hash, t.kind, parent, &fresh, None, opts);
            let r = match built {
                Ok(r) => r,
                Err(e) => {
                    remove_any(&fresh);
                    return Err(e);
                }
            };
            match std::fs::symlink_metadata(abs) {
                Ok(_) => {
                    let old = side("old");
                    std::fs::rename(abs, &old).map_err(|e| Error::io(abs, e))?;
                    if let Err(e) = std::fs::rename(&fresh, abs) {
                        // Put the old content back: nothing is lost.
                        let _ = std::fs::rename(&old, abs);
                        remove_any(&fresh);
                        return Err(Error::io(abs, e));
                    }
                    remove_any(&old);
                }
                Err(_) => std::fs::rename(&fresh, abs).map_err(|e| Error::io(abs, e))?,
            }
            r
        };
        // Added again: the stat cache learns the restored files, the lock names the version.
        self.add(std::slice::from_ref(abs), &AddOptions::default())?;
        Ok(r)
    }
}

/// What an in-place checkout restores, and the versions of the path that may be replaced.
struct Target {
    abs: PathBuf,
    hash: Hash,
    kind: ObjectKind,
    known: Vec<Hash>,
}

/// Removes a file or directory tree, ignoring errors (cleanup of our own side paths).
fn remove_any(p: &Path) {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(p);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(p);
        }
        Err(_) => {}
    }
}
