//! A tracked path restored where it is, as `dvc checkout` does: `store checkout data` puts
//! back the last added version of `data` (or an earlier one, `--rev`), refusing to overwrite
//! changes made since that add unless forced; and the hash a path has on disk now.

use std::path::Path;

use crate::engine::hash::{Hash, ObjectKind};
use crate::engine::store::{LockMode, Store};
use crate::error::{Error, Result};
use crate::workspace::add::{absolute, path_key, AddOptions};
use crate::workspace::checkout::{CheckoutOptions, CheckoutReport};

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
            .chunk_file(f, p, None, &indicatif::ProgressBar::hidden())?
            .hash())
    }

    /// Whether `p` is a tracked path (added at least once).
    pub fn is_tracked(&self, p: &Path) -> Result<bool> {
        let key = path_key(&absolute(p)?);
        Ok(!self.index().root_history(Some(&key))?.is_empty())
    }

    /// Restores tracked path `p` in place to version `rev` (default: its last added one). If
    /// what is on disk is no version the store holds of `p` (changed since its last add or
    /// checkout), nothing is written unless `force` ([`Error::WouldOverwrite`]). Files of a directory that the version does not
    /// hold are left alone. A `rev` that is no version of `p` is an error.
    pub fn checkout_path(
        &self,
        p: &Path,
        rev: Option<&Hash>,
        force: bool,
        opts: &CheckoutOptions,
    ) -> Result<(Hash, CheckoutReport)> {
        let abs = absolute(p)?;
        let history = self.index().root_history(Some(&path_key(&abs)))?;
        let last = history
            .first()
            .ok_or_else(|| Error::Invalid(format!("{} is not a tracked path", p.display())))?;
        let target = match rev {
            None => last,
            Some(h) => history.iter().find(|r| r.hash == *h).ok_or_else(|| {
                Error::Invalid(format!(
                    "{h} is not a version of {} (`store log {}` lists them)",
                    p.display(),
                    p.display()
                ))
            })?,
        };
        if abs.exists() {
            let now = self.hash_path(&abs)?;
            if now == target.hash {
                return Ok((target.hash, CheckoutReport::default()));
            }
            // Content the store holds as a version of the path loses nothing; anything else is
            // a change not yet added.
            if !force && !history.iter().any(|r| r.hash == now) {
                return Err(Error::WouldOverwrite(abs));
            }
        }
        let parent = abs
            .parent()
            .ok_or_else(|| Error::Invalid(format!("{} has no parent", abs.display())))?;
        let _lock = self.lock(LockMode::Shared)?;
        self.ensure_local(&[target.hash])?;
        let kind = if target.kind == "tree" {
            ObjectKind::Tree
        } else {
            ObjectKind::File
        };
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let r = self.restore_to(&target.hash, kind, parent, &abs, None, opts)?;
        Ok((target.hash, r))
    }
}
