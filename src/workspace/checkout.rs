//! `checkout`: restoring a file or tree from the store, verifying every chunk.
//!
//! Each file is written to a temporary name in its destination directory and renamed into
//! place, so a reader never sees a half-restored file. Large files are written by several
//! threads at once with positioned writes; small files are restored in parallel.

use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::engine::hash::{Hash, ObjectKind};
use crate::engine::manifest::{EntryKind, FileManifest};
use crate::error::{Error, Result};
use crate::workspace::add::{path_key, progress_bar};

/// How restored files are materialized.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkMode {
    /// Clone (FICLONE) from a verified workspace copy when the filesystem supports it,
    /// otherwise decompress and copy.
    #[default]
    Reflink,
    /// Hard-link to a read-only materialized copy in `.store/cache/` (opt-in: files become
    /// read-only and share an inode with the cache).
    Hardlink,
    /// Always decompress from packs and write a fresh copy.
    Copy,
}

impl std::str::FromStr for LinkMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<LinkMode> {
        match s {
            "reflink" => Ok(LinkMode::Reflink),
            "hardlink" => Ok(LinkMode::Hardlink),
            "copy" => Ok(LinkMode::Copy),
            _ => Err(Error::Invalid(format!(
                "unknown link mode {s:?} (reflink, hardlink, copy)"
            ))),
        }
    }
}

/// Options for [`Store::checkout`].
#[derive(Clone, Debug, Default)]
pub struct CheckoutOptions {
    /// How to materialize files.
    pub link: LinkMode,
    /// Show a progress bar.
    pub progress: bool,
}

/// What [`Store::checkout`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckoutReport {
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files cloned by reflink.
    pub reflinked: u64,
    /// Files hard-linked.
    pub hardlinked: u64,
    /// Where the object was restored.
    pub path: PathBuf,
}

pub(super) struct Job {
    pub(super) hash: Hash,
    pub(super) dest: PathBuf,
    pub(super) mode: u32,
    pub(super) size: u64,
}

/// One object for [`Store::restore_many`]: file or tree `hash` to restore at `dest`, which
/// lies under the existing directory `root`; a file gets `mode` (default 0644).
pub(crate) struct Restore<'a> {
    pub(crate) hash: Hash,
    pub(crate) kind: ObjectKind,
    pub(crate) root: &'a Path,
    pub(crate) dest: PathBuf,
    pub(crate) mode: Option<u32>,
}

impl Store {
    /// Restores file or tree `hash` under directory `to` (created if missing). A tree's
    /// entries land directly in `to`; a file lands as `to/<name it was added under>`.
    pub fn checkout(
        &self,
        hash: &Hash,
        to: &Path,
        opts: &CheckoutOptions,
    ) -> Result<CheckoutReport> {
        // Shared with writers, exclusive of gc: no pack disappears while we read.
        let _lock = self.lock(crate::engine::store::LockMode::Shared)?;
        // A clone fetches records and manifests on demand from its default remote; file
        // content comes while the files are written.
        self.ensure_manifests(&[*hash])?;
        let kind = self.locate(hash)?.entry.kind;
        let dest = match kind {
            ObjectKind::Tree => to.to_path_buf(),
            ObjectKind::File => {
                let name = self
                    .index()
                    .roots()?
                    .into_iter()
                    .find(|r| r.hash == *hash)
                    .and_then(|r| Path::new(&r.path).file_name().map(|n| n.to_os_string()))
                    .unwrap_or_else(|| hash.to_hex().into());
                to.join(name)
            }
            k => {
                return Err(Error::Invalid(format!(
                    "{hash} is a {}, not a file or tree",
                    k.name()
                )))
            }
        };
        fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
        self.restore_to(hash, kind, to, &dest, None, opts)
    }

    /// Restores a file (to exactly `dest`) or a tree (into directory `dest`), `dest` lying
    /// under the existing directory `root`. No symbolic link below `root` is ever followed,
    /// whether it was there before or restored earlier: a directory on the way that is a link
    /// stops the restore with [`Error::SymlinkInPath`]. The caller holds the store lock.
    pub(crate) fn restore_to(
        &self,
        hash: &Hash,
        kind: ObjectKind,
        root: &Path,
        dest: &Path,
        mode: Option<u32>,
        opts: &CheckoutOptions,
    ) -> Result<CheckoutReport> {
        let one = Restore {
            hash: *hash,
            kind,
            root,
            dest: dest.to_path_buf(),
            mode,
        };
        let mut r = self.restore_many(&[one], opts)?;
        r.path = dest.to_path_buf();
        Ok(r)
    }

    /// [`Store::restore_to`] for several objects at once (their manifests local): all their
    /// files are restored together, content this store lacks fetched from its object source
    /// while the files are written. Where two name the same file, the later one is restored.
    pub(crate) fn restore_many(
        &self,
        items: &[Restore<'_>],
        opts: &CheckoutOptions,
    ) -> Result<CheckoutReport> {
        // Planned one after the other, each object's links made before the next is planned: a
        // later object never passes through a link an earlier one restored (refused as a
        // symbolic link on the way), and a link replaces an earlier object's file at its
        // place, as restoring them one after the other would.
        let mut jobs = Vec::new();
        for it in items {
            let earlier = jobs.len();
            let mut links = Vec::new();
            if it.kind == ObjectKind::Tree {
                real_dirs_below(it.root, &it.dest)?;
                self.plan_tree(&it.hash, &it.dest, &mut jobs, &mut links)?;
            } else {
                if let Some(parent) = it.dest.parent() {
                    real_dirs_below(it.root, parent)?;
                }
                let m = self.file_manifest(&it.hash)?;
                jobs.push(Job {
                    hash: it.hash,
                    dest: it.dest.clone(),
                    mode: it.mode.unwrap_or(0o644),
                    size: m.size,
                });
            }
            if earlier > 0 && !links.is_empty() {
                let at: std::collections::HashSet<&PathBuf> = links.iter().map(|l| &l.0).collect();
                let mut i = 0;
                jobs.retain(|j| {
                    i += 1;
                    i > earlier || !at.contains(&j.dest)
                });
            }
            for (link, target_bytes) in links {
                let _ = fs::remove_file(&link);
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target_bytes), &link)
                    .map_err(|e| Error::io(&link, e))?;
            }
        }
        if items.len() > 1 {
            let mut seen = std::collections::HashSet::new();
            jobs.reverse();
            jobs.retain(|j| seen.insert(j.dest.clone()));
            jobs.reverse();
        }
        let total = jobs.iter().map(|j| j.size).sum();
        let pb = progress_bar(opts.progress, total, "restoring");
        let outcomes = self.restore_jobs(&jobs, opts.link, &pb)?;
        pb.finish_and_clear();
        let mut r = CheckoutReport::default();
        for (j, o) in jobs.iter().zip(outcomes) {
            r.files += 1;
            r.bytes += j.size;
            match o {
                Outcome::Reflinked => r.reflinked += 1,
                Outcome::Hardlinked => r.hardlinked += 1,
                Outcome::Written => {}
            }
        }
        Ok(r)
    }

    /// Restores every file of `jobs`; with an object source (a clone), what this store lacks
    /// is fetched, written into the files as it arrives (hard links need it in the store
    /// first).
    fn restore_jobs(
        &self,
        jobs: &[Job],
        link: LinkMode,
        pb: &crate::engine::progress::ProgressBar,
    ) -> Result<Vec<Outcome>> {
        if self.can_fetch() {
            if link != LinkMode::Hardlink {
                return self.restore_fetching(jobs, link, pb);
            }
            let files: Vec<Hash> = jobs.iter().map(|j| j.hash).collect();
            self.ensure_local(&files)?;
        }
        jobs.par_iter()
            .map(|j| {
                let o = self.restore_file(j, link)?;
                pb.inc(j.size);
                Ok(o)
            })
            .collect()
    }

    fn plan_tree(
        &self,
        hash: &Hash,
        dir: &Path,
        jobs: &mut Vec<Job>,
        links: &mut Vec<(PathBuf, Vec<u8>)>,
    ) -> Result<()> {
        // `dir` itself was made (or found) a real directory by the caller.
        let t = self.tree_manifest(hash)?;
        for e in t.entries {
            // Names were validated on decode: no '/', '.', '..' or empty name can escape `dir`.
            let p = dir.join(std::ffi::OsStr::from_bytes(&e.name));
            match e.kind {
                EntryKind::File(h) => jobs.push(Job {
                    hash: h,
                    dest: p,
                    mode: e.mode,
                    size: e.size,
                }),
                EntryKind::Dir(h) => {
                    real_dir(&p)?;
                    self.plan_tree(&h, &p, jobs, links)?;
                    let _ = fs::set_permissions(
                        &p,
                        fs::Permissions::from_mode(e.mode & 0o7777 | 0o700),
                    );
                }
                EntryKind::Symlink(target) => links.push((p, target)),
            }
        }
        Ok(())
    }

    pub(super) fn restore_file(&self, job: &Job, link: LinkMode) -> Result<Outcome> {
        match link {
            LinkMode::Reflink => {
                if let Some(o) = self.copy_from_workspace(job)? {
                    return Ok(o);
                }
            }
            LinkMode::Copy => {}
            LinkMode::Hardlink => {
                let cached = self.materialize_cached(&job.hash, job.mode & 0o111 != 0)?;
                let tmp = tmp_beside(&job.dest);
                if fs::hard_link(&cached, &tmp).is_ok() {
                    fs::rename(&tmp, &job.dest).map_err(|e| Error::io(&job.dest, e))?;
                    return Ok(Outcome::Hardlinked);
                }
            }
        }
        let m = self.file_manifest(&job.hash)?;
        let tmp = tmp_beside(&job.dest);
        // An unchanged workspace copy is usually in the page cache while packs written with
        // O_DIRECT are not: read chunks from it when it has them, each verified.
        let source = self.workspace_source(job)?;
        let res = self
            .write_manifest(&m, &tmp, source.as_ref())
            .and_then(|f| {
                f.set_permissions(fs::Permissions::from_mode(job.mode & 0o7777))
                    .map_err(|e| Error::io(&tmp, e))?;
                fs::rename(&tmp, &job.dest).map_err(|e| Error::io(&job.dest, e))
            });
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.map(|_| Outcome::Written)
    }

    /// Writes the verified content of `m` to a new file at `path`.
    ///
    /// Large files are assembled in aligned windows, several at once, and written with
    /// `O_DIRECT` where the filesystem allows (the restored bytes are not read back soon, and
    /// this avoids a page-cache copy); the last partial window goes through the page cache.
    ///
    /// With `source` (a file believed to hold the same content), each chunk is read from it
    /// and used only if it hashes to the chunk's hash; any other chunk comes from the packs.
    fn write_manifest(&self, m: &FileManifest, path: &Path, source: Option<&File>) -> Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let mut starts = Vec::with_capacity(m.chunks.len());
        let mut off = 0u64;
        for (_, len) in &m.chunks {
            starts.push(off);
            off += u64::from(*len);
        }
        let locs = self.locate_all(m.chunks.iter().map(|c| c.0))?;
        if m.size < 2 * WINDOW as u64 {
            let mut buf = Vec::with_capacity(m.size as usize);
            for loc in &locs {
                buf.extend_from_slice(&self.reader(&loc.pack)?.read(&loc.entry)?);
            }
            f.write_all_at(&buf, 0).map_err(|e| Error::io(path, e))?;
            return Ok(f);
        }
        let direct = File::options()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok();
        let mut ranges: std::collections::HashMap<Hash, (u64, u64)> =
            std::collections::HashMap::new();
        for l in &locs {
            let end = l.entry.offset + u64::from(l.entry.stored_len);
            let r = ranges.entry(l.pack).or_insert((l.entry.offset, end));
            r.0 = r.0.min(l.entry.offset);
            r.1 = r.1.max(end);
        }
        if source.is_none() {
            for (pack, (lo, hi)) in &ranges {
                self.reader(pack)?.prefetch(*lo, hi - lo);
            }
        }
        let windows = m.size.div_ceil(WINDOW as u64);
        // Windows wait on the disk as much as on the CPU: run more of them than cores.
        let pool = io_pool()?;
        pool.install(|| {
            (0..windows)
                .into_par_iter()
                .try_for_each(|w| -> Result<()> {
                    let lo = w * WINDOW as u64;
                    let hi = (lo + WINDOW as u64).min(m.size);
                    WINDOW_BUF.with(|cell| -> Result<()> {
                        let mut guard = cell.borrow_mut();
                        let buf = guard.get_or_insert_with(AlignedWindow::new);
                        let dst = buf.slice_mut((hi - lo) as usize);
                        // With a workspace copy, read the whole window from it at once; each chunk
                        // is then used only if it hashes to its chunk hash, in place.
                        let src_ok = source.is_some_and(|src| src.read_exact_at(dst, lo).is_ok());
                        // Chunks overlapping [lo, hi): binary search for the first, then read runs of
                        // chunks that lie back to back in one pack with a single positioned read.
                        let first = starts.partition_point(|&s| s <= lo).saturating_sub(1);
                        let mut i = first;
                        while i < locs.len() && starts[i] < hi {
                            if let (true, Some(src)) = (src_ok, source) {
                                let (h, len) = m.chunks[i];
                                let (s, e) = (starts[i], starts[i] + u64::from(len));
                                let ok = if s >= lo && e <= hi {
                                    Hash::of(
                                        ObjectKind::Chunk,
                                        &dst[(s - lo) as usize..(e - lo) as usize],
                                    ) == h
                                } else {
                                    // A chunk across the window's edge: read it whole to check it.
                                    let mut chunk = vec![0u8; len as usize];
                                    let ok = src.read_exact_at(&mut chunk, s).is_ok()
                                        && Hash::of(ObjectKind::Chunk, &chunk) == h;
                                    if ok {
                                        let (from, to) = (lo.max(s), hi.min(e));
                                        dst[(from - lo) as usize..(to - lo) as usize]
                                            .copy_from_slice(
                                                &chunk[(from - s) as usize..(to - s) as usize],
                                            );
                                    }
                                    ok
                                };
                                if ok {
                                    i += 1;
                                    continue;
                                }
                            }
                            let mut j = i + 1;
                            while j < locs.len()
                                && starts[j] < hi
                                && locs[j].pack == locs[i].pack
                                && locs[j].entry.offset
                                    == locs[j - 1].entry.offset
                                        + u64::from(locs[j - 1].entry.stored_len)
                            {
                                j += 1;
                            }
                            let reader = self.reader(&locs[i].pack)?;
                            let base = locs[i].entry.offset;
                            let span_end =
                                locs[j - 1].entry.offset + u64::from(locs[j - 1].entry.stored_len);
                            let span = reader.read_span(base, span_end - base)?;
                            for k in i..j {
                                let e = &locs[k].entry;
                                let at = (e.offset - base) as usize;
                                let data =
                                    reader.verify(e, &span[at..at + e.stored_len as usize])?;
                                let s = starts[k];
                                let end = s + data.len() as u64;
                                if end <= lo {
                                    continue;
                                }
                                let from = lo.max(s);
                                let to = hi.min(end);
                                dst[(from - lo) as usize..(to - lo) as usize]
                                    .copy_from_slice(&data[(from - s) as usize..(to - s) as usize]);
                            }
                            i = j;
                        }
                        let aligned = (hi - lo) as usize / 4096 * 4096;
                        let mut done = 0;
                        if let Some(d) = &direct {
                            if aligned > 0 && d.write_all_at(&dst[..aligned], lo).is_ok() {
                                done = aligned;
                            }
                        }
                        f.write_all_at(&dst[done..], lo + done as u64)
                            .map_err(|e| Error::io(path, e))
                    })
                })
        })?;
        Ok(f)
    }

    /// Locations of many objects with one index lock.
    fn locate_all(
        &self,
        hashes: impl Iterator<Item = Hash>,
    ) -> Result<Vec<crate::engine::index::Location>> {
        let hashes: Vec<Hash> = hashes.collect();
        self.index()
            .locate_many(&hashes)?
            .into_iter()
            .zip(&hashes)
            .map(|(l, h)| l.ok_or(Error::ObjectNotFound(h.to_hex())))
            .collect()
    }

    /// An open workspace file that the stat cache says still holds `job.hash` (same inode,
    /// size, mtime and ctime as when it was hashed), for files of at least 1 MiB.
    fn workspace_source(&self, job: &Job) -> Result<Option<File>> {
        if job.size < WORKSPACE_COPY_MIN {
            return Ok(None);
        }
        let Some((src, cached)) = self.index().large_path_with_hash(&job.hash)? else {
            return Ok(None);
        };
        let Ok(meta) = fs::symlink_metadata(&src) else {
            return Ok(None);
        };
        use std::os::unix::fs::MetadataExt;
        let unchanged = meta.ino() == cached.ino
            && meta.size() == cached.size
            && meta.mtime() * 1_000_000_000 + meta.mtime_nsec() == cached.mtime_ns
            && meta.ctime() * 1_000_000_000 + meta.ctime_nsec() == cached.ctime_ns;
        if !unchanged || path_key(&job.dest) == src {
            return Ok(None);
        }
        Ok(File::open(&src).ok())
    }

    /// Clones (FICLONE) a workspace copy that the stat cache says still holds `hash`, where the
    /// filesystem shares extents, and re-hashes the clone chunk by chunk against the manifest
    /// before renaming it into place: as verified as a restore from packs. (An in-kernel copy
    /// was measured slower here than restoring from packs with O_DIRECT, so there is none.)
    pub(super) fn copy_from_workspace(&self, job: &Job) -> Result<Option<Outcome>> {
        let Some(src_file) = self.workspace_source(job)? else {
            return Ok(None);
        };
        let m = self.file_manifest(&job.hash)?;
        let tmp = tmp_beside(&job.dest);
        let dst = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        let outcome = reflink(&src_file, &dst).then_some(Outcome::Reflinked);
        let ok = outcome.is_some() && verify_file(&dst, &m);
        if ok {
            let _ = dst.set_permissions(fs::Permissions::from_mode(job.mode & 0o7777));
            fs::rename(&tmp, &job.dest).map_err(|e| Error::io(&job.dest, e))?;
            Ok(outcome)
        } else {
            drop(dst);
            let _ = fs::remove_file(&tmp);
            Ok(None)
        }
    }

    /// A verified, read-only full copy of file `hash` under `.store/cache/` (`<hash>.x` and
    /// mode 0555 for executables, `<hash>` and 0444 otherwise), for hard links. A cached copy
    /// is re-hashed before reuse: read-only does not stop root from changing it.
    fn materialize_cached(&self, hash: &Hash, exec: bool) -> Result<PathBuf> {
        let hex = hash.to_hex();
        let dir = self.dir().join("cache").join(&hex[..2]);
        let path = dir.join(if exec {
            format!("{hex}.x")
        } else {
            hex.clone()
        });
        if let Ok(f) = File::open(&path) {
            let same = verify_file(&f, &self.file_manifest(hash)?);
            if same {
                return Ok(path);
            }
            let _ = fs::remove_file(&path);
        }
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let m = self.file_manifest(hash)?;
        let tmp = tmp_beside(&path);
        let res = self.write_manifest(&m, &tmp, None).and_then(|f| {
            f.sync_all().map_err(|e| Error::io(&tmp, e))?;
            let mode = if exec { 0o555 } else { 0o444 };
            f.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io(&tmp, e))?;
            fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
        });
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.map(|_| path)
    }
}

thread_local! {
    /// Each restore thread's window buffer, reused: faulting in a fresh 8 MiB buffer per
    /// window costs as much as the copy itself.
    static WINDOW_BUF: std::cell::RefCell<Option<AlignedWindow>> = const { std::cell::RefCell::new(None) };
}

/// Threads restoring the windows of large files.
const IO_THREADS: usize = 6;

/// One process-wide pool for I/O-bound restore windows.
fn io_pool() -> Result<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(IO_THREADS)
            .build()
            .ok()
    })
    .as_ref()
    .ok_or_else(|| Error::Invalid("cannot start the restore thread pool".into()))
}

/// Bytes per restore window of a large file.
const WINDOW: usize = 8 << 20;

/// A 4096-aligned buffer of [`WINDOW`] bytes (for `O_DIRECT`).
struct AlignedWindow {
    data: Vec<u8>,
    start: usize,
}

impl AlignedWindow {
    fn new() -> Self {
        let data = vec![0u8; WINDOW + 4096];
        let start = data.as_ptr().align_offset(4096);
        AlignedWindow { data, start }
    }

    fn slice_mut(&mut self, len: usize) -> &mut [u8] {
        &mut self.data[self.start..self.start + len]
    }
}

use crate::engine::store::Store;

pub(super) enum Outcome {
    Written,
    Reflinked,
    Hardlinked,
}

/// Makes every directory from `root` (exclusive, which may itself be reached through links:
/// it is the target the user named) down to `dir` (inclusive) a real directory, creating the
/// missing ones, and refuses a symbolic link or a non-directory on the way. `dir` must lie
/// under `root`.
pub(crate) fn real_dirs_below(root: &Path, dir: &Path) -> Result<()> {
    let rel = dir
        .strip_prefix(root)
        .map_err(|_| Error::UnsafePath(dir.display().to_string()))?;
    let mut at = root.to_path_buf();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(name) => at.push(name),
            // Checked paths are relative and hold no `..`; anything else is refused.
            std::path::Component::CurDir => continue,
            _ => return Err(Error::UnsafePath(dir.display().to_string())),
        }
        real_dir(&at)?;
    }
    Ok(())
}

/// Makes `p` a real directory: creates it when missing, accepts an existing directory, and
/// refuses a symbolic link (never followed) or any other kind of file.
fn real_dir(p: &Path) -> Result<()> {
    for _ in 0..2 {
        match fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::SymlinkInPath(p.to_path_buf()))
            }
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(Error::io(
                    p,
                    std::io::Error::new(
                        std::io::ErrorKind::NotADirectory,
                        "exists and is not a directory",
                    ),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(p, e)),
        }
        // mkdir never follows a link in its last component; a concurrent creator makes it
        // fail with EEXIST, and the second look decides.
        match fs::create_dir(p) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(p, e)),
        }
    }
    Err(Error::SymlinkInPath(p.to_path_buf()))
}

pub(super) fn tmp_beside(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(
        ".{name}.store-{}.tmp",
        crate::engine::util::unique_suffix()
    ))
}

/// Files smaller than this are always restored from packs (a workspace lookup per small file
/// costs more than a clone saves); the stat cache indexes by hash only files this large.
const WORKSPACE_COPY_MIN: u64 = crate::engine::index::STAT_BY_HASH_MIN;

/// True when `f` holds exactly the chunks of `m` (each chunk re-hashed, in parallel).
fn verify_file(f: &File, m: &FileManifest) -> bool {
    if f.metadata().map(|md| md.len()).ok() != Some(m.size) {
        return false;
    }
    if m.size == 0 {
        return true;
    }
    // SAFETY: the file is our own temporary, not yet visible under its final name; nobody
    // else truncates it while it is mapped.
    let Ok(map) = (unsafe { memmap2::Mmap::map(f) }) else {
        return false;
    };
    let mut ranges = Vec::with_capacity(m.chunks.len());
    let mut off = 0usize;
    for (h, len) in &m.chunks {
        ranges.push((*h, off, *len as usize));
        off += *len as usize;
    }
    ranges
        .par_iter()
        .all(|(h, off, len)| Hash::of(ObjectKind::Chunk, &map[*off..off + len]) == *h)
}

/// FICLONE ioctl: shares the extents of `src` with `dst` (btrfs, XFS, ...).
fn reflink(src: &File, dst: &File) -> bool {
    rustix::fs::ioctl_ficlone(dst, src).is_ok()
}
