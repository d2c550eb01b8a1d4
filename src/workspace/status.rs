//! `status`: what changed in tracked paths since their last add, from the stat cache and the
//! trust rule of [`super::add`] (a stat per file; only files whose stat differs, or whose row
//! is not trusted, are re-hashed).

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::engine::hash::Hash;
use crate::engine::index::{Root, StatEntry};
use crate::engine::manifest::EntryKind;
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::workspace::add::{path_key, same_stat, stat_of};

impl Store {
    /// What changed in tracked paths since each was last added, from the stat cache
    /// (re-hashing only files whose stat differs or whose cache entry is not trusted).
    pub fn status(&self) -> Result<Vec<StatusEntry>> {
        let store_id = self.store_dir_id()?;
        let mut out = Vec::new();
        let mut to_check: Vec<(String, PathBuf, Hash)> = Vec::new();
        let roots = self.index().roots()?;
        let locked = self.lock_differences(&roots)?;
        for root in roots {
            let path = PathBuf::from(&root.path);
            let meta = match fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    out.push(StatusEntry {
                        path: root.path.clone(),
                        change: Change::Deleted,
                    });
                    continue;
                }
                Err(e) => return Err(Error::io(&path, e)),
            };
            // The index side (stat cache rows, the links of the tree as added: links are not in
            // the stat cache) is read while the workspace is listed.
            let (index_side, listing) = rayon::join(
                || -> Result<(Cached, HashMap<String, Vec<u8>>)> {
                    let mut added = HashMap::new();
                    if root.kind != "tree" {
                        let cached = self.index().stat(&root.path)?;
                        let cached = cached.map(|s| (root.path.clone(), s));
                        return Ok((cached.into_iter().collect(), added));
                    }
                    let cached = self.index().stats_under(&root.path)?.into_iter().collect();
                    self.tree_links(&root.hash, &path, &mut added)?;
                    Ok((cached, added))
                },
                || {
                    if meta.is_dir() {
                        list_files(&path, store_id)
                    } else {
                        Ok(Listing {
                            files: vec![(path.clone(), stat_of(&meta, Hash([0; 32]), false))],
                            links: Vec::new(),
                        })
                    }
                },
            );
            let (mut cached, mut added) = index_side?;
            let Listing { files, links } = listing?;
            if root.kind == "tree" {
                for (p, target) in links {
                    let key = path_key(&p);
                    let change = match added.remove(&key) {
                        None => Some(Change::New),
                        Some(t) if t != target => Some(Change::Modified),
                        Some(_) => None,
                    };
                    out.extend(change.map(|change| StatusEntry { path: key, change }));
                }
                out.extend(added.into_keys().map(|path| StatusEntry {
                    path,
                    change: Change::Deleted,
                }));
            }
            for (p, now) in files {
                let key = path_key(&p);
                match cached.remove(&key) {
                    None => out.push(StatusEntry {
                        path: key,
                        change: Change::New,
                    }),
                    Some(c) => {
                        if !(c.trusted && same_stat(&c, &now)) {
                            if c.size != now.size {
                                out.push(StatusEntry {
                                    path: key,
                                    change: Change::Modified,
                                });
                            } else {
                                to_check.push((key, p, c.hash));
                            }
                        }
                    }
                }
            }
            for (p, _) in cached {
                out.push(StatusEntry {
                    path: p,
                    change: Change::Deleted,
                });
            }
        }
        let hidden = crate::engine::progress::hidden();
        let rehashed: Vec<Option<StatusEntry>> = to_check
            .par_iter()
            .map(|(key, p, old)| {
                let f = File::open(p).map_err(|e| Error::io(p, e))?;
                let h = self.chunk_file(&f, p, None, &hidden)?.hash();
                Ok((h != *old).then(|| StatusEntry {
                    path: key.clone(),
                    change: Change::Modified,
                }))
            })
            .collect::<Result<_>>()?;
        out.extend(rehashed.into_iter().flatten());
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out.dedup();
        // A path both gone and new changed kind (a file became a link, or a link a file).
        let mut merged: Vec<StatusEntry> = Vec::with_capacity(out.len());
        for e in out {
            match merged.last_mut() {
                Some(last) if last.path == e.path => last.change = Change::Modified,
                _ => merged.push(e),
            }
        }
        merged.extend(locked);
        merged.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(merged)
    }

    /// The paths `store.lock` puts at another version than the one last added here.
    fn lock_differences(&self, roots: &[Root]) -> Result<Vec<StatusEntry>> {
        let Some(lock) = self.read_lock()? else {
            return Ok(Vec::new());
        };
        let here: HashMap<String, Hash> = roots
            .iter()
            .filter_map(|r| Some((self.lock_key(Path::new(&r.path))?, r.hash)))
            .collect();
        let ws = self.workspace();
        let mut out = Vec::new();
        for (key, e) in &lock.paths {
            if here.get(key) != Some(&e.hash()?) {
                out.push(StatusEntry {
                    path: path_key(&ws.join(key)),
                    change: Change::LockDiffers,
                });
            }
        }
        Ok(out)
    }

    /// The symbolic links of a tree as added: absolute path key -> target bytes.
    fn tree_links(&self, tree: &Hash, at: &Path, out: &mut HashMap<String, Vec<u8>>) -> Result<()> {
        for e in self.tree_manifest(tree)?.entries {
            let p = at.join(std::ffi::OsStr::from_bytes(&e.name));
            match e.kind {
                EntryKind::Symlink(target) => {
                    out.insert(path_key(&p), target);
                }
                EntryKind::Dir(h) => self.tree_links(&h, &p, out)?,
                EntryKind::File(_) => {}
            }
        }
        Ok(())
    }
}

/// The regular files (with their stat, as the stat cache records it) and symbolic links (with
/// their targets) under `dir`, outside the store's own directory. Each directory is read through
/// its own descriptor (`statat` resolves one name, not the whole path) and subdirectories are
/// listed in parallel.
fn list_files(dir: &Path, store_id: (u64, u64)) -> Result<Listing> {
    use rustix::fs::FileType;
    let mut out = Listing::default();
    let mut subdirs = Vec::new();
    // Closed before descending: at most one directory is open per thread, however deep.
    super::walk::each_entry(dir, |fd, name, p, st| {
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory if (st.st_dev, st.st_ino) != store_id => subdirs.push(p),
            FileType::RegularFile => out.files.push((p, super::walk::stat_entry(st))),
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(fd, name, Vec::new())
                    .map_err(|e| Error::io(&p, e.into()))?;
                out.links.push((p, target.into_bytes()));
            }
            _ => {}
        }
        Ok(())
    })?;
    let below: Vec<Listing> = subdirs
        .par_iter()
        .map(|d| list_files(d, store_id))
        .collect::<Result<_>>()?;
    for l in below {
        out.files.extend(l.files);
        out.links.extend(l.links);
    }
    Ok(out)
}

/// Stat-cache rows by path key.
type Cached = HashMap<String, StatEntry>;

/// What [`list_files`] found.
#[derive(Default)]
struct Listing {
    files: Vec<(PathBuf, StatEntry)>,
    links: Vec<(PathBuf, Vec<u8>)>,
}

/// A change reported by [`Store::status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusEntry {
    /// Absolute path.
    pub path: String,
    /// What happened to it.
    pub change: Change,
}

/// Kinds of change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Not present at the last add.
    New,
    /// Content differs from the last add.
    Modified,
    /// Gone since the last add.
    Deleted,
    /// `store.lock` names another version than the one last added (or checked out) here,
    /// e.g. after `git checkout` of an older commit: `store checkout` restores the lock's.
    #[serde(rename = "lock_differs")]
    LockDiffers,
}
