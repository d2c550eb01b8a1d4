//! A remote in a local or network-mounted directory. Values are written to `tmp/` under the
//! remote root, fsynced, then hard-linked to their key: `link` fails when the key exists, so a
//! value is never replaced and never visible half-written (on NFS too, where `link` is atomic).
//! A writer killed before its link leaves its file in `tmp/`: [`Backend::partial_uploads`]
//! lists those (for `verify --remote`) and each push removes the stale ones.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::{remote_error, Backend, Listed, PartialUpload};
use crate::error::{Error, Result};

/// A directory remote.
pub struct DirBackend {
    root: PathBuf,
    requests: AtomicU64,
}

impl DirBackend {
    /// Opens (creating if needed) the directory remote at `root`.
    pub fn open(root: &Path) -> Result<DirBackend> {
        if root.as_os_str().is_empty() {
            return Err(Error::Invalid("empty remote directory path".into()));
        }
        fs::create_dir_all(root.join("tmp")).map_err(|e| Error::io(root, e))?;
        Ok(DirBackend {
            root: root.to_path_buf(),
            requests: AtomicU64::new(0),
        })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        let bad = key.is_empty()
            || key.starts_with('/')
            || key
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..");
        if bad {
            return Err(remote_error(&self.describe(), key, "invalid key"));
        }
        Ok(self.root.join(key))
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes a new value with `fill` into a file under `tmp/`, then links it to `dest`: false
    /// when `dest` exists by then.
    fn write_new(&self, dest: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<bool> {
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}.tmp", crate::engine::util::unique_suffix()));
        let result = (|| {
            fill(&tmp)?;
            let dir = dest.parent().unwrap_or(&self.root);
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            match fs::hard_link(&tmp, dest) {
                Ok(()) => {
                    crate::engine::util::fsync_dir(dir)?;
                    Ok(true)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(Error::io(dest, e)),
            }
        })();
        let _ = fs::remove_file(&tmp);
        result
    }
}

impl Backend for DirBackend {
    fn put_new(&self, key: &str, data: Vec<u8>) -> Result<bool> {
        self.count();
        let dest = self.path(key)?;
        if dest.exists() {
            return Ok(false);
        }
        self.write_new(&dest, |tmp| {
            let mut f = fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
            f.write_all(&data).map_err(|e| Error::io(tmp, e))?;
            f.sync_all().map_err(|e| Error::io(tmp, e))
        })
    }

    fn copy(&self, from: &str, to: &str) -> Result<bool> {
        self.count();
        let src = self.path(from)?;
        let dest = self.path(to)?;
        if !src.is_file() {
            return Ok(false);
        }
        if dest.exists() {
            return Ok(true);
        }
        // A copy, not a link: a person editing one published file must not change another.
        self.write_new(&dest, |tmp| {
            fs::copy(&src, tmp).map_err(|e| Error::io(&src, e))?;
            let f = fs::File::open(tmp).map_err(|e| Error::io(tmp, e))?;
            f.sync_all().map_err(|e| Error::io(tmp, e))
        })?;
        Ok(true)
    }

    fn urls(&self, key: &str) -> Result<Vec<String>> {
        let p = self.path(key)?;
        let abs = std::path::absolute(&p).map_err(|e| Error::io(&p, e))?;
        Ok(vec![format!(
            "file://{}",
            super::escape_url_path(&abs.to_string_lossy())
        )])
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.count();
        let p = self.path(key)?;
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&p, e)),
        }
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.count();
        let p = self.path(key)?;
        let mut f = fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
        f.seek(SeekFrom::Start(range.start))
            .map_err(|e| Error::io(&p, e))?;
        let mut buf = Vec::with_capacity((range.end - range.start) as usize);
        f.take(range.end - range.start)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(&p, e))?;
        if buf.len() as u64 != range.end - range.start {
            return Err(remote_error(
                &self.describe(),
                key,
                format!("short read: {} of {:?}", buf.len(), range),
            ));
        }
        Ok(buf)
    }

    fn head(&self, key: &str) -> Result<Option<u64>> {
        self.count();
        let p = self.path(key)?;
        match fs::metadata(&p) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&p, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        self.count();
        let mut out = Vec::new();
        let start = self.root.join(prefix.trim_end_matches('/'));
        walk(&self.root, &start, &mut |rel, meta| {
            out.push((rel, meta.len()))
        })?;
        out.sort();
        Ok(out)
    }

    fn list_aged(&self, prefix: &str) -> Result<Vec<Listed>> {
        self.count();
        let mut out = Vec::new();
        let start = self.root.join(prefix.trim_end_matches('/'));
        let now = SystemTime::now();
        walk(&self.root, &start, &mut |rel, meta| {
            out.push(Listed {
                key: rel,
                size: meta.len(),
                age: meta
                    .modified()
                    .ok()
                    .map(|m| now.duration_since(m).unwrap_or(Duration::ZERO)),
            })
        })?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.count();
        let p = self.path(key)?;
        // unlink(2) removes the name at once: readers open the whole value or nothing.
        match fs::remove_file(&p) {
            Ok(()) => {
                if let Some(dir) = p.parent() {
                    crate::engine::util::fsync_dir(dir)?;
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&p, e)),
        }
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn partial_uploads(&self) -> Result<Vec<PartialUpload>> {
        self.count();
        let dir = self.root.join("tmp");
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let now = SystemTime::now();
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(&dir, e))?;
            // Linked and removed by its writer meanwhile: not partial after all.
            let Ok(meta) = ent.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let age_secs = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .map_or(0, |d| d.as_secs());
            out.push(PartialUpload {
                key: format!("tmp/{}", ent.file_name().to_string_lossy()),
                size: meta.len(),
                age_secs,
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn remove_stale_uploads(&self, min_age: Duration) -> Result<Vec<PartialUpload>> {
        let mut removed = Vec::new();
        for p in self.partial_uploads()? {
            if p.age_secs < min_age.as_secs() {
                continue;
            }
            // A writer whose file is removed under it fails at its link (ENOENT) and writes
            // nothing: removing never exposes a partial value, at worst it fails a stalled push.
            if fs::remove_file(self.root.join(&p.key)).is_ok() {
                removed.push(p);
            }
        }
        if !removed.is_empty() {
            let dir = self.root.join("tmp");
            let _ = crate::engine::util::fsync_dir(&dir);
        }
        Ok(removed)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut dyn FnMut(String, fs::Metadata)) -> Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(dir, e))?;
        let p = ent.path();
        let ft = ent.file_type().map_err(|e| Error::io(&p, e))?;
        if ft.is_dir() {
            walk(root, &p, out)?;
        } else if ft.is_file() {
            // Removed meanwhile (`remote gc`, a writer's own tmp file): not listed.
            let Ok(meta) = ent.metadata() else { continue };
            if let Ok(rel) = p.strip_prefix(root) {
                out(rel.to_string_lossy().into_owned(), meta);
            }
        }
    }
    Ok(())
}
