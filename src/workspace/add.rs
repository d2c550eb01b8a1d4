//! `add`: walking paths, the stat cache and its trust rule, and the chunk -> hash -> compress ->
//! pack pipeline (`status`, in [`super::status`], applies the same stat-cache rule).
//!
//! Files are processed in parallel with rayon. Inside one file, reading and chunking the next
//! batch overlaps with hashing and compressing the current one (`rayon::join`), so a single
//! large file also uses every core while memory stays bounded by two batches.
//!
//! Size: about 780 lines, one pipeline (walk, stat cache, chunk, hash, compress, pack, commit).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::engine::progress::ProgressBar;
use crate::workspace::walk::{Node, Walked};
use rayon::prelude::*;
use serde::Serialize;

use crate::engine::chunker::chunk_stream;
use crate::engine::group::{self, Group};
use crate::engine::hash::{Hash, ObjectKind};
use crate::engine::index::{Commit, Root, StatEntry};
use crate::engine::manifest::{EntryKind, FileManifest, RootRecord, TreeEntry, TreeManifest};
use crate::engine::pack::{Compression, FinishedPack, LevelChoice, PackWriter};
use crate::engine::store::{LockMode, Store};
use crate::engine::util::now_ns;
use crate::error::{Error, Result};

/// A file modified less than this long before it was read is not trusted by the stat cache:
/// a later write could land within the same timestamp tick without changing size or mtime.
/// (Files on the store's own filesystem are judged by its clock instead: [`Freshness`].)
const RACY_NS: i64 = 2_000_000_000;

/// The filesystem's own clock at the start of an add, read from the timestamps of a file
/// created (and removed) in the store's `tmp/` before any file is read. A file on that
/// filesystem whose mtime and ctime are older than the probe's was last written before the
/// add began reading it, and any later write gets a timestamp at least the probe's, so its
/// stat changes: the row can be trusted however recently the file was written, and the first
/// `status` after an add only stats it. (The same reasoning as git's racy-index rule, with
/// the probe in place of the index file's mtime; it needs no assumption about the timestamp
/// granularity.) Files on other filesystems keep the 2 s rule.
#[derive(Clone, Copy, Debug)]
struct Freshness {
    dev: u64,
    mtime_ns: i64,
}

impl Freshness {
    /// Creates, stats and removes the probe; `None` when that fails (the 2 s rule then applies
    /// to every file).
    fn probe(tmp_dir: &Path) -> Option<Freshness> {
        let path = tmp_dir.join(format!(
            "clock-{}.tmp",
            crate::engine::util::unique_suffix()
        ));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .ok()?;
        let meta = file.metadata();
        drop(file);
        let _ = fs::remove_file(&path);
        let meta = meta.ok()?;
        Some(Freshness {
            dev: meta.dev(),
            mtime_ns: (meta.mtime() * 1_000_000_000 + meta.mtime_nsec())
                .min(meta.ctime() * 1_000_000_000 + meta.ctime_nsec()),
        })
    }

    /// True when a file with stat `s` was last changed before the probe was made.
    fn older(&self, s: &StatEntry) -> bool {
        s.dev == self.dev && s.mtime_ns < self.mtime_ns && s.ctime_ns < self.mtime_ns
    }
}

/// Options for [`Store::add`].
#[derive(Clone, Debug, Default)]
pub struct AddOptions {
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Only compute hashes: write and commit nothing.
    pub dry_run: bool,
}

/// What a layer above adds to an `add`'s commit, given the sink (to store its own objects),
/// the added top-level paths (as given, absolute, and what they became), the add's start time
/// and the commit being built: recording into a run (see [`Store::record`]) uses it, so the
/// records commit in the same transaction as the files.
pub(crate) type AddHook<'a> =
    dyn Fn(&Sink<'_>, &[(PathBuf, PathBuf, Added)], i64, &mut Commit) -> Result<()> + 'a;

/// What a top-level path became.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RootKind {
    /// A regular file (hash of its file manifest).
    File,
    /// A directory (hash of its tree manifest).
    Tree,
}

impl RootKind {
    /// `file` or `tree`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RootKind::File => "file",
            RootKind::Tree => "tree",
        }
    }
}

/// One top-level path that was added.
#[derive(Clone, Debug, Serialize)]
pub struct Added {
    /// The path as given.
    pub path: PathBuf,
    /// File or tree.
    pub kind: RootKind,
    /// Its hash.
    pub hash: Hash,
    /// Logical size in bytes.
    pub size: u64,
    /// Regular files (1 for a file).
    pub files: u64,
}

impl Added {
    /// Its `store.lock` entry.
    pub fn lock_entry(&self) -> super::lock::LockEntry {
        super::lock::LockEntry {
            hash: self.hash.to_hex(),
            kind: self.kind.as_str().into(),
            size: self.size,
            files: self.files,
        }
    }
}

/// The result of [`Store::add`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct AddReport {
    /// Top-level paths, in the order given.
    pub added: Vec<Added>,
    /// Things skipped (special files), with the reason.
    pub warnings: Vec<String>,
    /// Regular files seen.
    pub files: u64,
    /// Files that had to be read (not answered by the stat cache).
    pub files_read: u64,
    /// Bytes read and chunked.
    pub bytes_read: u64,
    /// New objects written to packs.
    pub new_objects: u64,
    /// Bytes those new objects take in packs.
    pub new_bytes: u64,
}

/// Writes new objects into this operation's own packs, skipping anything already stored.
pub(crate) struct Sink<'a> {
    store: &'a Store,
    state: Mutex<SinkState>,
    /// Hash only: nothing is written (used to compute what a path would hash to).
    dry: bool,
    level: LevelChoice,
}

#[derive(Default)]
struct SinkState {
    writer: Option<PackWriter>,
    /// Full packs being fsynced and renamed in the background while new ones fill.
    finishing: Vec<std::thread::JoinHandle<Result<FinishedPack>>>,
    written: HashSet<Hash>,
    objects: u64,
    bytes: u64,
    /// Small objects waiting to be compressed together (`store-format.md` 5.4), per thread
    /// (a thread's files are neighbours in the tree, and are restored together): chunks, file
    /// manifests, and the other kinds (trees, records), each in a group of their own. Pushes
    /// put chunks and the rest in packs apart; `status` reads trees and not file manifests.
    groups: HashMap<std::thread::ThreadId, [Group; 3]>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Sink {
            store,
            state: Mutex::new(SinkState::default()),
            dry: false,
            level: LevelChoice::default(),
        }
    }

    /// A sink that writes nothing.
    pub(crate) fn dry(store: &'a Store) -> Self {
        Sink {
            dry: true,
            ..Sink::new(store)
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn known(&self, hash: &Hash) -> Result<bool> {
        if self.dry {
            return Ok(true);
        }
        if self.state().written.contains(hash) {
            return Ok(true);
        }
        self.store.index().contains(hash)
    }

    /// Stores `raw` as an object of `kind` unless it is already stored.
    pub(crate) fn put(&self, kind: ObjectKind, hash: Hash, raw: &[u8]) -> Result<()> {
        if self.known(&hash)? {
            return Ok(());
        }
        if raw.len() < group::MEMBER_MAX {
            return self.put_grouped(kind, hash, raw);
        }
        let (compression, stored) = self.level.encode(raw, self.store.config().zstd_level);
        self.append_encoded(kind, hash, compression, raw.len() as u32, &stored)
    }

    /// Stores a chunk unless already stored; `try_compress` false stores it raw.
    fn put_chunk(&self, hash: Hash, raw: &[u8], try_compress: bool) -> Result<Stored> {
        if self.known(&hash)? {
            return Ok(Stored::Known);
        }
        if try_compress && raw.len() < group::MEMBER_MAX {
            self.put_grouped(ObjectKind::Chunk, hash, raw)?;
            return Ok(Stored::Compressed);
        }
        if try_compress {
            let (compression, stored) = self.level.encode(raw, self.store.config().zstd_level);
            self.append_encoded(
                ObjectKind::Chunk,
                hash,
                compression,
                raw.len() as u32,
                &stored,
            )?;
            Ok(if compression == Compression::Zstd {
                Stored::Compressed
            } else {
                Stored::Raw
            })
        } else {
            self.append_encoded(
                ObjectKind::Chunk,
                hash,
                Compression::Raw,
                raw.len() as u32,
                raw,
            )?;
            Ok(Stored::Skipped)
        }
    }

    /// Puts a small new object in its group; a group that is full is compressed and written.
    fn put_grouped(&self, kind: ObjectKind, hash: Hash, raw: &[u8]) -> Result<()> {
        let full = {
            let mut st = self.state();
            if self.dry || !st.written.insert(hash) {
                return Ok(());
            }
            let slot = match kind {
                ObjectKind::Chunk => 0,
                ObjectKind::File => 1,
                _ => 2,
            };
            let g = &mut st.groups.entry(std::thread::current().id()).or_default()[slot];
            let full = g.would_overflow(raw.len()).then(|| std::mem::take(g));
            g.push(hash, kind, raw);
            full
        };
        match full {
            Some(g) => self.write_group(g),
            None => Ok(()),
        }
    }

    /// Compresses a group into one frame and writes it. When the frame would not save 1/32,
    /// the members are stored raw (alone they would save less than that together); a group
    /// of one is encoded on its own.
    fn write_group(&self, g: Group) -> Result<()> {
        let level = self.store.config().zstd_level;
        if let Some((hash, kind, raw)) = g.each().next().filter(|_| g.members().len() == 1) {
            let (compression, stored) = self.level.encode(raw, level);
            let mut st = self.state();
            self.write(&mut st, kind, hash, compression, raw.len() as u32, &stored)?;
            st.bytes += stored.len() as u64;
            return self.rotate(&mut st);
        }
        let (compression, frame) = self.level.encode(&g.content(), level);
        let mut st = self.state();
        if compression == Compression::Zstd {
            for &(hash, kind, raw_len) in g.members() {
                self.write(&mut st, kind, hash, Compression::Group, raw_len, &frame)?;
            }
            st.bytes += frame.len() as u64;
        } else {
            for (hash, kind, raw) in g.each() {
                self.write(&mut st, kind, hash, Compression::Raw, raw.len() as u32, raw)?;
                st.bytes += raw.len() as u64;
            }
        }
        self.rotate(&mut st)
    }

    /// Appends an already-encoded object (used by `gc` to move objects without recompressing).
    pub(crate) fn append_encoded(
        &self,
        kind: ObjectKind,
        hash: Hash,
        compression: crate::engine::pack::Compression,
        raw_len: u32,
        stored: &[u8],
    ) -> Result<()> {
        let mut st = self.state();
        if self.dry || !st.written.insert(hash) {
            return Ok(());
        }
        self.write(&mut st, kind, hash, compression, raw_len, stored)?;
        st.bytes += stored.len() as u64;
        self.rotate(&mut st)
    }

    /// Appends an object to the open pack (opening one if needed).
    fn write(
        &self,
        st: &mut SinkState,
        kind: ObjectKind,
        hash: Hash,
        compression: Compression,
        raw_len: u32,
        stored: &[u8],
    ) -> Result<()> {
        if st.writer.is_none() {
            st.writer = Some(PackWriter::create(&self.store.tmp_dir())?);
        }
        let w = st.writer.as_mut().expect("writer was just created");
        w.append(hash, kind, compression, raw_len, stored)?;
        st.objects += 1;
        Ok(())
    }

    /// Hands the open pack to a finishing thread when it has reached the target size.
    fn rotate(&self, st: &mut SinkState) -> Result<()> {
        if st
            .writer
            .as_ref()
            .is_some_and(|w| w.len() >= self.store.config().pack_target_size)
        {
            let w = st.writer.take().expect("writer exists");
            let dir = self.store.packs_dir();
            st.finishing
                .push(std::thread::spawn(move || w.finish(&dir)));
        }
        Ok(())
    }

    /// Closes the open pack; returns every finished pack and (objects, bytes) written.
    pub(crate) fn finish(self) -> Result<(Vec<FinishedPack>, u64, u64)> {
        let groups = std::mem::take(&mut self.state().groups);
        let mut first_err = None;
        for g in groups.into_values().flatten().filter(|g| !g.is_empty()) {
            if let Err(e) = self.write_group(g) {
                first_err.get_or_insert(e);
            }
        }
        let mut st = self.state.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut finished = Vec::new();
        for h in st.finishing.drain(..) {
            match h.join() {
                Ok(Ok(p)) => finished.push(p),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err
                        .get_or_insert(Error::Invalid("a pack-finishing thread panicked".into()));
                }
            }
        }
        if let Some(e) = first_err {
            // The packs that were renamed will never be committed.
            self.store.discard_unindexed_packs(&finished);
            return Err(e);
        }
        if let Some(w) = st.writer.take() {
            if !w.is_empty() {
                match w.finish(&self.store.packs_dir()) {
                    Ok(p) => finished.push(p),
                    Err(e) => {
                        self.store.discard_unindexed_packs(&finished);
                        return Err(e);
                    }
                }
            }
        }
        Ok((finished, st.objects, st.bytes))
    }
}

/// What happened to a chunk offered to the sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stored {
    /// Already in the store (or in this operation's packs).
    Known,
    /// New, compressed.
    Compressed,
    /// New, compression tried and did not pay.
    Raw,
    /// New, stored raw without trying (adaptive skip).
    Skipped,
}

pub(super) fn stat_of(meta: &Metadata, hash: Hash, trusted: bool) -> StatEntry {
    StatEntry {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        hash,
        trusted,
    }
}

pub(super) fn same_stat(a: &StatEntry, b: &StatEntry) -> bool {
    a.dev == b.dev
        && a.ino == b.ino
        && a.size == b.size
        && a.mtime_ns == b.mtime_ns
        && a.ctime_ns == b.ctime_ns
}

/// The key of a path in the stat cache and roots table.
pub(crate) fn path_key(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Absolute form of a user-given path, without resolving symlinks.
pub(crate) fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io(p, e))
}

impl Store {
    pub(super) fn store_dir_id(&self) -> Result<(u64, u64)> {
        let m = fs::metadata(self.dir()).map_err(|e| Error::io(self.dir(), e))?;
        Ok((m.dev(), m.ino()))
    }

    /// Chunks, hashes and (with a sink) stores one open file; returns its manifest.
    pub(crate) fn chunk_file(
        &self,
        mut file: &File,
        path: &Path,
        sink: Option<&Sink<'_>>,
        pb: &ProgressBar,
    ) -> Result<FileManifest> {
        // Adaptive compression: once a whole batch failed to compress, only every 32nd chunk
        // is tried until one compresses again (incompressible data costs little zstd time).
        let incompressible = AtomicBool::new(false);
        let per_batch = chunk_stream(&mut file, self.config().chunking, path, |batch| {
            let skip = incompressible.load(Ordering::Relaxed);
            let out: Vec<(Hash, u32, Stored)> = (0..batch.cuts.len())
                .into_par_iter()
                .map(|i| {
                    let data = batch.chunk(i);
                    let h = Hash::of(ObjectKind::Chunk, data);
                    let stored = match sink {
                        Some(s) => s.put_chunk(h, data, !skip || i % 32 == 0)?,
                        None => Stored::Known,
                    };
                    pb.inc(data.len() as u64);
                    Ok((h, data.len() as u32, stored))
                })
                .collect::<Result<_>>()?;
            let tried = out.iter().filter(|o| o.2 != Stored::Known).count();
            let compressed = out.iter().filter(|o| o.2 == Stored::Compressed).count();
            if compressed > 0 {
                incompressible.store(false, Ordering::Relaxed);
            } else if tried >= 8 && !skip {
                incompressible.store(true, Ordering::Relaxed);
            }
            Ok(out.into_iter().map(|(h, l, _)| (h, l)).collect::<Vec<_>>())
        })?;
        let chunks: Vec<(Hash, u32)> = per_batch.into_iter().flatten().collect();
        let size = chunks.iter().map(|(_, l)| u64::from(*l)).sum();
        Ok(FileManifest { size, chunks })
    }

    /// The walked files that need not be read (by their place in `files`), with their hash:
    /// their stat-cache row is trusted, all five stat fields are unchanged (the size too) and
    /// the index still holds the file hash (10.1). The rows of a directory are read in one
    /// range scan and the hashes checked in one read transaction, not two queries per file.
    fn unchanged_files(
        &self,
        files: &[(PathBuf, StatEntry)],
        tops: &[(PathBuf, PathBuf, Option<Node>)],
    ) -> Result<HashMap<usize, Hash>> {
        let mut rows: HashMap<String, StatEntry> = HashMap::new();
        {
            let idx = self.index();
            for (_, abs, node) in tops {
                let key = path_key(abs);
                match node {
                    Some(Node::Dir { .. }) => rows.extend(idx.stats_under(&key)?),
                    Some(_) => rows.extend(idx.stat(&key)?.map(|s| (key, s))),
                    None => {}
                }
            }
        }
        if rows.is_empty() {
            return Ok(HashMap::new());
        }
        let same: Vec<(usize, Hash)> = files
            .iter()
            .enumerate()
            .filter_map(|(i, (path, now))| {
                let c = rows.get(&path_key(path))?;
                (c.trusted && same_stat(c, now)).then_some((i, c.hash))
            })
            .collect();
        let hashes: Vec<Hash> = same.iter().map(|(_, h)| *h).collect();
        let held = self.index().contains_many(&hashes)?;
        Ok(same
            .into_iter()
            .zip(held)
            .filter_map(|(f, held)| held.then_some(f))
            .collect())
    }

    /// Hashes (and stores) one file that the stat cache did not vouch for
    /// ([`Store::unchanged_files`]); `now` is its stat from the walk.
    fn add_file(
        &self,
        sink: &Sink<'_>,
        path: &Path,
        now: &StatEntry,
        start_ns: i64,
        fresh: Option<Freshness>,
        pb: &ProgressBar,
    ) -> Result<(Hash, Option<StatEntry>, u64)> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let m = self.chunk_file(&file, path, Some(sink), pb)?;
        let hash = m.hash();
        sink.put(ObjectKind::File, hash, &m.encode())?;
        // The stat of the file that was read (a top-level symlink's target, as walked and as
        // `status` stats it).
        let after = file.metadata().map_err(|e| Error::io(path, e))?;
        let after = stat_of(&after, hash, false);
        let old = after.mtime_ns < start_ns - RACY_NS || fresh.is_some_and(|f| f.older(&after));
        let trusted = same_stat(&after, now) && after.size == m.size && old;
        Ok((hash, Some(StatEntry { trusted, ..after }), m.size))
    }

    fn build_tree(
        &self,
        sink: &Sink<'_>,
        node: &Node,
        results: &[(Hash, u64)],
    ) -> Result<(EntryKind, u64)> {
        match node {
            Node::File { idx, .. } => {
                let (h, size) = results[*idx];
                Ok((EntryKind::File(h), size))
            }
            Node::Symlink { target, .. } => {
                Ok((EntryKind::Symlink(target.clone()), target.len() as u64))
            }
            Node::Dir { children, .. } => {
                let mut t = TreeManifest::default();
                for (name, child) in children {
                    let (kind, size) = self.build_tree(sink, child, results)?;
                    let mode = match child {
                        Node::File { mode, .. }
                        | Node::Dir { mode, .. }
                        | Node::Symlink { mode, .. } => *mode,
                    };
                    t.entries.push(TreeEntry {
                        name: name.clone(),
                        mode,
                        size,
                        kind,
                    });
                }
                let h = t.hash();
                sink.put(ObjectKind::Tree, h, &t.encode())?;
                Ok((EntryKind::Dir(h), t.size()))
            }
        }
    }

    /// Adds files and directories (recursively). Symlinks inside directories are recorded as
    /// links; a symlink given on the command line is followed. Nothing is committed unless
    /// everything was stored: on error the index is unchanged.
    ///
    /// Each added path inside the workspace gets its entry in `store.lock` and, in a git work
    /// tree, a line in the `.gitignore` beside it ([`super::lock`]).
    pub fn add(&self, paths: &[PathBuf], opts: &AddOptions) -> Result<AddReport> {
        let report = self.add_with(paths, opts, None)?;
        if !opts.dry_run {
            let mut locked = Vec::with_capacity(report.added.len());
            for a in &report.added {
                locked.push((absolute(&a.path)?, a.lock_entry()));
            }
            self.update_lock(&locked)?;
            let paths: Vec<PathBuf> = locked.into_iter().map(|(p, _)| p).collect();
            self.ignore_in_git(&paths)?;
        }
        Ok(report)
    }

    /// [`Store::add`], with `hook` adding to the commit before it is made.
    pub(crate) fn add_with(
        &self,
        paths: &[PathBuf],
        opts: &AddOptions,
        hook: Option<&AddHook<'_>>,
    ) -> Result<AddReport> {
        let _lock = self.lock(LockMode::Shared)?;
        let start_ns = now_ns();
        let fresh = if opts.dry_run {
            None
        } else {
            Freshness::probe(&self.tmp_dir())
        };
        let store_canon = fs::canonicalize(self.dir()).map_err(|e| Error::io(self.dir(), e))?;
        let store_id = self.store_dir_id()?;
        let mut walk = Walked::default();
        let mut tops = Vec::new();
        for p in paths {
            let abs = absolute(p)?;
            let meta = fs::metadata(&abs).map_err(|e| Error::io(p, e))?;
            let canon = fs::canonicalize(&abs).map_err(|e| Error::io(p, e))?;
            if canon.starts_with(&store_canon) {
                return Err(Error::InsideStore(p.clone()));
            }
            if meta.is_dir() {
                // Fail early and clearly on an unreadable top-level directory.
                fs::read_dir(&abs).map_err(|e| Error::io(p, e))?;
            }
            let node = super::walk::walk(&abs, &meta, store_id, &mut walk)?;
            tops.push((p.clone(), abs, node));
        }
        let total: u64 = walk.files.iter().map(|(_, s)| s.size).sum();
        let pb = progress_bar(opts.progress, total, "adding");
        let sink = if opts.dry_run {
            Sink::dry(self)
        } else {
            Sink::new(self)
        };
        let unchanged = self.unchanged_files(&walk.files, &tops)?;
        let results: Vec<(Hash, Option<StatEntry>, u64)> = walk
            .files
            .par_iter()
            .enumerate()
            .map(|(i, (path, now))| match unchanged.get(&i) {
                Some(hash) => {
                    pb.inc(now.size);
                    Ok((*hash, None, now.size))
                }
                None => self.add_file(&sink, path, now, start_ns, fresh, &pb),
            })
            .collect::<Result<_>>()?;
        pb.finish_and_clear();
        let sizes: Vec<(Hash, u64)> = results
            .iter()
            .zip(&walk.files)
            // The size that was hashed (a file growing during the add keeps tree and manifest
            // consistent).
            .map(|((h, _, size), _)| (*h, *size))
            .collect();
        let mut report = AddReport {
            warnings: walk.warnings.clone(),
            files: walk.files.len() as u64,
            ..AddReport::default()
        };
        let mut commit = Commit::default();
        for ((path, _), (_, stat, read)) in walk.files.iter().zip(&results) {
            if let Some(s) = stat {
                report.files_read += 1;
                report.bytes_read += read;
                commit.stats.push((path_key(path), s.clone()));
            }
        }
        let current: HashMap<String, Root> = self
            .index()
            .roots()?
            .into_iter()
            .map(|r| (r.path.clone(), r))
            .collect();
        let seen: HashSet<String> = walk.files.iter().map(|(p, _)| path_key(p)).collect();
        for (given, abs, node) in &tops {
            let Some(node) = node else { continue };
            let (kind, hash, size) = match self.build_tree(&sink, node, &sizes)? {
                (EntryKind::File(h), s) => (RootKind::File, h, s),
                (EntryKind::Dir(h), s) => (RootKind::Tree, h, s),
                (EntryKind::Symlink(_), _) => unreachable!("top-level paths are followed"),
            };
            let key = path_key(abs);
            if kind == RootKind::Tree {
                let under = self.index().stats_under(&key)?;
                for (p, _) in under {
                    if !seen.contains(&p) {
                        commit.forget.push(p);
                    }
                }
            }
            if current.get(&key).map(|r| r.hash) != Some(hash) {
                let rec = RootRecord {
                    path: key.clone(),
                    kind: kind.as_str().into(),
                    hash: hash.to_hex(),
                    size,
                    time_ns: start_ns,
                };
                let json = serde_json::to_vec(&rec).map_err(|e| Error::Invalid(e.to_string()))?;
                let record = Hash::of(ObjectKind::Root, &json);
                sink.put(ObjectKind::Root, record, &json)?;
                commit.roots.push(Root {
                    path: key,
                    kind: kind.as_str().into(),
                    hash,
                    size,
                    time_ns: start_ns,
                    record,
                });
            }
            let files = match kind {
                RootKind::File => 1,
                RootKind::Tree => walk
                    .files
                    .iter()
                    .filter(|(p, _)| p.starts_with(abs))
                    .count() as u64,
            };
            report.added.push(Added {
                path: given.clone(),
                kind,
                hash,
                size,
                files,
            });
        }
        if let Some(hook) = hook {
            let added: Vec<(PathBuf, PathBuf, Added)> = tops
                .iter()
                .filter(|t| t.2.is_some())
                .zip(&report.added)
                .map(|((given, abs, _), a)| (given.clone(), abs.clone(), a.clone()))
                .collect();
            hook(&sink, &added, start_ns, &mut commit)?;
        }
        let (packs, objects, bytes) = sink.finish()?;
        report.new_objects = objects;
        report.new_bytes = bytes;
        commit.packs = packs;
        if !opts.dry_run {
            let committed = self.index().commit(&commit);
            if let Err(e) = committed {
                // Its packs are named by nothing: do not leave them filling a full disk.
                self.discard_unindexed_packs(&commit.packs);
                return Err(e);
            }
        }
        Ok(report)
    }
}

pub use super::status::{Change, StatusEntry};
/// A progress bar on stderr when `show` (and stderr is a terminal), hidden otherwise.
pub(crate) use crate::engine::progress::bytes as progress_bar;
