//! `verify`, `gc`, `reindex` and `stats`: whole-store operations.
//!
//! `gc` and `reindex` hold the store lock exclusively, so no writer can be between renaming a
//! pack and committing its index rows while they run. Their own commit protocol is: write
//! replacement packs (fsync, rename), commit the index in one transaction, then unlink old
//! packs. A crash at any point leaves only unindexed but valid packs, which the next `gc` removes.
//!
//! Size: about 850 lines, because gc, verify and reindex share the pack listing and the graph
//! walks of one commit protocol; the next split is one file per operation.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::engine::hash::{Hash, ObjectKind};
use crate::engine::index::{Commit, Root};
use crate::engine::manifest::{EntryKind, RootRecord};
use crate::engine::pack::{pack_path, PackReader};
use crate::engine::store::{LockMode, Store};
use crate::error::{Error, Result};
use crate::workspace::add::Sink;

/// `gc` merges packs smaller than 1/8 of `pack_target_size` when it finds at least this many.
pub const SMALL_PACKS_MERGED: usize = 4;

/// One problem found by [`Store::verify`].
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// The pack file involved (or `index`).
    pub pack: String,
    /// The object involved, if one.
    pub object: Option<String>,
    /// What is wrong.
    pub detail: String,
}

/// The result of [`Store::verify`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Packs checked.
    pub packs: u64,
    /// Objects re-hashed.
    pub objects: u64,
    /// Bytes of packs read.
    pub bytes: u64,
    /// Everything wrong; empty means the store is sound.
    pub problems: Vec<Problem>,
}

/// What [`Store::gc`] removes (or would remove).
#[derive(Clone, Debug, Default, Serialize)]
pub struct GcReport {
    /// Objects no longer referenced.
    pub dead_objects: u64,
    /// Stored bytes they take.
    pub dead_bytes: u64,
    /// Packs deleted outright.
    pub packs_deleted: Vec<String>,
    /// Packs rewritten: without their dead objects, or small ones merged into fewer.
    pub packs_repacked: Vec<String>,
    /// How many of those were small packs merged (see [`SMALL_PACKS_MERGED`]).
    pub packs_merged: u64,
    /// Pack files on disk that the index does not know (crash leftovers).
    pub orphan_packs: Vec<String>,
    /// Temporary files left by killed writers.
    pub stale_temp_files: Vec<String>,
    /// Unindexed pack files holding a live object the index locates nowhere else: added to
    /// the index instead of being deleted.
    pub adopted_packs: Vec<String>,
    /// Pack files on disk that are unindexed but cannot be read (damaged or from a newer
    /// version): never deleted, reported so a person can look.
    pub kept_unreadable_packs: Vec<String>,
    /// Materialized files in `.store/cache/` (hard-link sources) no longer referenced.
    pub cache_files: Vec<String>,
    /// Old versions of tracked paths forgotten because of `keep_last`.
    pub versions_dropped: u64,
    /// True when the removal was carried out (`--yes`).
    pub applied: bool,
}

/// The result of [`Store::stats`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Tracked top-level paths.
    pub roots: u64,
    /// Versions of tracked paths (every `add` that changed one).
    pub versions: u64,
    /// Runs.
    pub runs: u64,
    /// Every version of every tracked path plus every file of every run, each counted whole
    /// (what keeping each version and each run as a plain copy would take).
    pub logical_bytes: u64,
    /// Bytes of unique chunk data before compression: the same content, each chunk once
    /// (chunks nothing references any more count until `gc` removes them).
    pub unique_bytes: u64,
    /// Bytes of pack files on disk (what the store costs).
    pub stored_bytes: u64,
    /// Objects in the index.
    pub objects: u64,
    /// Chunks in the index.
    pub chunks: u64,
    /// Pack files.
    pub packs: u64,
    /// logical / unique.
    pub dedup_ratio: f64,
    /// unique / stored.
    pub compression_ratio: f64,
}

/// Files one level below the subdirectories of `dir` (the `<hh>/<name>` fan-out of `packs/`
/// and `cache/`), with their names; empty when `dir` does not exist.
fn fanout_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for sub in rd {
        let sub = sub.map_err(|e| Error::io(dir, e))?.path();
        if !sub.is_dir() {
            continue;
        }
        for f in fs::read_dir(&sub).map_err(|e| Error::io(&sub, e))? {
            let p = f.map_err(|e| Error::io(&sub, e))?.path();
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            out.push((name, p));
        }
    }
    Ok(out)
}

fn pack_files(dir: &Path) -> Result<Vec<(Hash, PathBuf)>> {
    if !dir.is_dir() {
        return Err(Error::PathNotFound(dir.to_path_buf()));
    }
    let mut out: Vec<(Hash, PathBuf)> = fanout_files(dir)?
        .into_iter()
        .filter_map(|(name, p)| Some((name.strip_suffix(".pack")?.parse().ok()?, p)))
        .collect();
    out.sort();
    Ok(out)
}

impl Store {
    /// Checks the index (SQLite's integrity check, then every object row against the table
    /// of contents of its pack, and every root version against its root record), re-reads
    /// every pack (its id, table of contents and every object's hash), and checks that every
    /// pack the index names exists. Index problems name the index file as their `pack`.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_shown(false)
    }

    /// [`Store::verify`], with a bar on a terminal counting the bytes of packs read when
    /// `progress`.
    pub fn verify_shown(&self, progress: bool) -> Result<VerifyReport> {
        // Writers may run (shared lock), gc may not. The index is read before the disk is
        // listed: a pack is renamed into place before its index rows commit, so every pack in
        // this snapshot of the index is on disk by the time we list it.
        let _lock = self.lock(LockMode::Shared)?;
        let mut r = VerifyReport::default();
        let index_at = self.index_path().display().to_string();
        let index_problem = |object: Option<String>, detail: String| Problem {
            pack: index_at.clone(),
            object,
            detail,
        };
        // The database file first: a damaged b-tree makes the queries below fail or lie.
        let usable = match self.index_damage() {
            Some(d) => {
                r.problems.push(index_problem(None, d.to_string()));
                false
            }
            None => match self.index().check(true) {
                Ok(found) => {
                    r.problems.extend(found.into_iter().map(|l| {
                        index_problem(
                            None,
                            format!("SQLite integrity check: {l} (run `store reindex`)"),
                        )
                    }));
                    true
                }
                Err(e) => {
                    r.problems.push(index_problem(None, index_detail(&e)));
                    false
                }
            },
        };
        let indexed = match self.index().packs() {
            Ok(p) => p,
            Err(e) => {
                r.problems.push(index_problem(None, index_detail(&e)));
                Vec::new()
            }
        };
        let on_disk = pack_files(&self.packs_dir())?;
        let sizes: Vec<u64> = on_disk
            .iter()
            .map(|(_, p)| fs::metadata(p).map_or(0, |m| m.len()))
            .collect();
        let pb = crate::engine::progress::bytes(progress, sizes.iter().sum(), "verifying");
        let results: Vec<(u64, u64, Vec<Problem>)> = on_disk
            .par_iter()
            .zip(&sizes)
            .map(|((id, path), size)| {
                let r = verify_pack(id, path);
                pb.inc(*size);
                r
            })
            .collect();
        pb.finish_and_clear();
        for (objects, bytes, problems) in results {
            r.packs += 1;
            r.objects += objects;
            r.bytes += bytes;
            r.problems.extend(problems);
        }
        let disk: HashSet<Hash> = on_disk.iter().map(|(h, _)| *h).collect();
        for (id, _) in &indexed {
            if !disk.contains(id) {
                r.problems.push(Problem {
                    pack: pack_path(&self.packs_dir(), id).display().to_string(),
                    object: None,
                    detail: "pack is in the index but missing on disk".into(),
                });
            }
        }
        if usable {
            for (object, detail) in self.index_vs_packs(&indexed, &on_disk) {
                r.problems.push(index_problem(object, detail));
            }
        }
        Ok(r)
    }

    /// Every object reachable from the current roots.
    pub(crate) fn live_objects(&self, roots: &[Root]) -> Result<HashSet<Hash>> {
        // Runs pin every version they recorded, whatever happens to the paths' histories.
        let run_objects = self.index().run_objects()?;
        let mut starts = Vec::new();
        for r in roots {
            // The root record itself is a leaf here (its content is what `hash` names).
            starts.push((r.record, ObjectKind::Root));
            let kind = if r.kind == "tree" {
                ObjectKind::Tree
            } else {
                ObjectKind::File
            };
            starts.push((r.hash, kind));
        }
        self.reachable_from(&run_objects, starts)
    }

    /// `records` (run objects), everything their entries name, and everything reachable from
    /// `stack`: trees, file manifests and chunks, read through the index.
    pub(crate) fn reachable_from(
        &self,
        records: &[Hash],
        mut stack: Vec<(Hash, ObjectKind)>,
    ) -> Result<HashSet<Hash>> {
        let mut live = HashSet::new();
        for h in records {
            let (kind, bytes) = self.read_object(h)?;
            live.insert(*h);
            stack.extend(crate::engine::run_object::entry_refs(kind, &bytes, h)?);
        }
        while let Some((h, kind)) = stack.pop() {
            if !live.insert(h) {
                continue;
            }
            match kind {
                ObjectKind::Tree => {
                    for e in self.tree_manifest(&h)?.entries {
                        match e.kind {
                            EntryKind::File(f) => stack.push((f, ObjectKind::File)),
                            EntryKind::Dir(d) => stack.push((d, ObjectKind::Tree)),
                            EntryKind::Symlink(_) => {}
                        }
                    }
                }
                ObjectKind::File => {
                    for (c, _) in self.file_manifest(&h)?.chunks {
                        live.insert(c);
                    }
                }
                _ => {}
            }
        }
        Ok(live)
    }

    /// Removes what nothing references. Every version of every added path is a reference
    /// unless `keep_last` limits how many versions per path are kept. Without `apply` it only
    /// reports what it would do.
    pub fn gc(&self, apply: bool, keep_last: Option<usize>) -> Result<GcReport> {
        self.gc_shown(apply, keep_last, false)
    }

    /// [`Store::gc`], with bars on a terminal (packs scanned, then packs rewritten) when
    /// `progress`.
    pub fn gc_shown(
        &self,
        apply: bool,
        keep_last: Option<usize>,
        progress: bool,
    ) -> Result<GcReport> {
        let _lock = self.lock(LockMode::Exclusive)?;
        let mut report = GcReport {
            applied: apply,
            ..GcReport::default()
        };
        let mut roots = self.index().root_history(None)?;
        let mut drop_roots = Vec::new();
        if let Some(n) = keep_last {
            let n = n.max(1);
            let mut seen: HashMap<String, usize> = HashMap::new();
            roots.retain(|r| {
                let c = seen.entry(r.path.clone()).or_default();
                *c += 1;
                if *c > n {
                    drop_roots.push(r.record);
                    false
                } else {
                    true
                }
            });
        }
        report.versions_dropped = drop_roots.len() as u64;
        let live = self.live_objects(&roots)?;
        let indexed = self.index().packs()?;
        let indexed_set: HashSet<Hash> = indexed.iter().map(|(h, _)| *h).collect();
        let mut delete = Vec::new();
        let mut repack = Vec::new();
        // Packs under 1/8 of the target size (each tracking job of a workflow writes one) are
        // merged when there are several.
        let small_limit = self.config().pack_target_size / 8;
        let mut small = Vec::new();
        let pb = crate::engine::progress::items(progress, indexed.len() as u64, "scanning packs");
        for (id, size) in &indexed {
            pb.inc(1);
            // An entry is dead when nothing references it, or when the index locates that
            // object in another pack (a duplicate written by a racing writer).
            let entries = self.reader(id)?.entries()?;
            let hashes: Vec<Hash> = entries.iter().map(|e| e.hash).collect();
            let here: HashSet<Hash> = self
                .index()
                .rows_in_pack_of(id, &hashes)?
                .into_iter()
                .map(|row| row.hash)
                .collect();
            let dead: Vec<_> = entries
                .iter()
                .filter(|e| !(live.contains(&e.hash) && here.contains(&e.hash)))
                .collect();
            report.dead_objects += dead.len() as u64;
            // The bytes gc wins back: a group frame goes only with its last live member.
            let kept = entries
                .iter()
                .filter(|e| live.contains(&e.hash) && here.contains(&e.hash));
            report.dead_bytes +=
                crate::engine::group::stored_bytes(entries.iter().map(|e| (id, e)))
                    - crate::engine::group::stored_bytes(kept.map(|e| (id, e)));
            if dead.len() == entries.len() {
                delete.push(*id);
                report.packs_deleted.push(id.to_hex());
            } else if !dead.is_empty() {
                repack.push((*id, here));
                report.packs_repacked.push(id.to_hex());
            } else if *size < small_limit {
                small.push((*id, here));
            }
        }
        pb.finish_and_clear();
        if small.len() >= SMALL_PACKS_MERGED {
            report.packs_merged = small.len() as u64;
            for (id, here) in small {
                report.packs_repacked.push(id.to_hex());
                repack.push((id, here));
            }
        }
        let mut orphans = Vec::new();
        let mut adopt = Vec::new();
        for (h, p) in pack_files(&self.packs_dir())? {
            if indexed_set.contains(&h) {
                continue;
            }
            // Only a pack we can read completely is known to be a crash leftover.
            let parsed =
                PackReader::open(&p).and_then(|r| Ok((r.bytes().len() as u64, r.entries()?)));
            match parsed {
                Ok((size, entries)) => {
                    // A live object that the index locates nowhere (a damaged or lagging
                    // index) makes this pack its only known copy: adopt it, never delete it.
                    let hashes: Vec<Hash> = entries.iter().map(|e| e.hash).collect();
                    let located = self.index().locate_many(&hashes)?;
                    let only_copy = hashes
                        .iter()
                        .zip(&located)
                        .any(|(h, l)| l.is_none() && live.contains(h));
                    if only_copy {
                        report.adopted_packs.push(h.to_hex());
                        adopt.push(crate::engine::pack::FinishedPack {
                            id: h,
                            size,
                            entries,
                        });
                    } else {
                        report.orphan_packs.push(h.to_hex());
                        orphans.push((h, p));
                    }
                }
                Err(_) => report.kept_unreadable_packs.push(p.display().to_string()),
            }
        }
        let mut stale = Vec::new();
        for dir in [self.tmp_dir(), self.dir().join("cache")] {
            collect_temp(&dir, &mut stale)?;
        }
        report.stale_temp_files = stale.iter().map(|p| p.display().to_string()).collect();
        let cache = dead_cache_files(&self.dir().join("cache"), &live)?;
        report.cache_files = cache.iter().map(|p| p.display().to_string()).collect();
        if !apply {
            return Ok(report);
        }
        // 1. Write replacement packs holding the live objects of partly dead packs.
        let sink = Sink::new(self);
        let pb = crate::engine::progress::items(progress, repack.len() as u64, "repacking");
        for (id, here) in &repack {
            pb.inc(1);
            let reader = self.reader(id)?;
            for e in reader.entries()? {
                if live.contains(&e.hash) && here.contains(&e.hash) {
                    let start = e.offset as usize;
                    let stored = &reader.bytes()[start..start + e.stored_len as usize];
                    // Re-verify before copying so gc never launders a damaged object.
                    reader.read(&e)?;
                    sink.append_encoded(e.kind, e.hash, e.compression, e.raw_len, stored)?;
                }
            }
        }
        pb.finish_and_clear();
        let (mut new_packs, _, _) = sink.finish()?;
        // 2. One transaction swaps the index over.
        // Pack names are content hashes, so a replacement pack can have the name of a pack
        // already on disk: an orphan left by an interrupted gc that wrote the same
        // replacement, or an indexed pack that `reindex` adopted from one. The replacement was
        // renamed over it with identical bytes; it is the live copy now and is never unlinked.
        let written: HashSet<Hash> = new_packs.iter().map(|p| p.id).collect();
        let mut remove: Vec<Hash> = delete.clone();
        remove.extend(repack.iter().map(|(id, _)| *id));
        remove.retain(|id| !written.contains(id));
        orphans.retain(|(id, _)| !written.contains(id));
        report.orphan_packs = orphans.iter().map(|(id, _)| id.to_hex()).collect();
        new_packs.extend(adopt);
        let commit = Commit {
            remove_packs: remove.clone(),
            packs: new_packs,
            drop_roots,
            ..Commit::default()
        };
        // The index lock is released before the retry takes it again.
        let first = self.index().commit(&commit);
        match first {
            // A full disk: the commit needs a little room for the index's log. Give the space
            // reserve up and try once more; gc is how space is won back.
            Err(Error::DiskFull { .. }) if self.release_reserve() => {
                self.index().commit(&commit)?
            }
            r => r?,
        }
        self.readers_clear();
        // 3. Unlink what the index no longer names.
        for id in &remove {
            let p = pack_path(&self.packs_dir(), id);
            fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
        for p in orphans.iter().map(|(_, p)| p).chain(&stale).chain(&cache) {
            fs::remove_file(p).map_err(|e| Error::io(p, e))?;
        }
        // Space was freed (or the reserve was never made, on an older store): keep it now.
        self.keep_reserve();
        Ok(report)
    }

    /// Rebuilds the index from the pack files alone, into a new file swapped in for the old
    /// one (`replace_index` in `store.rs`), so it works whatever state the old index is in; the
    /// stat cache is carried over only from an old index that passes SQLite's check. Damaged
    /// packs are skipped and reported; a pack from a newer version stops the rebuild before
    /// anything changes. A root record is adopted only when every object it reaches is
    /// present, so a crash that lost a pack cannot leave a root that gc chokes on.
    pub fn reindex(&self) -> Result<VerifyReport> {
        self.reindex_shown(false)
    }

    /// [`Store::reindex`], with a bar on a terminal counting the packs read when `progress`.
    pub fn reindex_shown(&self, progress: bool) -> Result<VerifyReport> {
        let _lock = self.lock(LockMode::Exclusive)?;
        let mut report = VerifyReport::default();
        let mut commit = Commit {
            reset: true,
            ..Commit::default()
        };
        let mut readers = Vec::new();
        let mut located: HashMap<Hash, (usize, crate::engine::pack::Entry)> = HashMap::new();
        let packs = pack_files(&self.packs_dir())?;
        let pb = crate::engine::progress::items(progress, packs.len() as u64, "reading packs");
        for (id, path) in packs {
            pb.inc(1);
            let what = path.display().to_string();
            let parsed = PackReader::open(&path).and_then(|r| r.entries().map(|e| (r, e)));
            let (reader, entries) = match parsed {
                Ok(x) => x,
                Err(e @ Error::NewerFormat { .. }) => return Err(e),
                Err(e) => {
                    report.problems.push(Problem {
                        pack: what,
                        object: None,
                        detail: e.to_string(),
                    });
                    continue;
                }
            };
            report.packs += 1;
            report.objects += entries.len() as u64;
            report.bytes += reader.bytes().len() as u64;
            for e in &entries {
                located.entry(e.hash).or_insert((readers.len(), e.clone()));
            }
            commit.packs.push(crate::engine::pack::FinishedPack {
                id,
                size: reader.bytes().len() as u64,
                entries,
            });
            readers.push(reader);
        }
        let read = |h: &Hash| -> Result<(ObjectKind, Vec<u8>)> {
            let (i, e) = located.get(h).ok_or(Error::ObjectNotFound(h.to_hex()))?;
            Ok((e.kind, readers[*i].read(e)?))
        };
        let mut seals: HashMap<String, (crate::engine::index::SealRow, Vec<Hash>)> = HashMap::new();
        for (h, (i, e)) in &located {
            if matches!(e.kind, ObjectKind::Run | ObjectKind::RunPart) {
                let what = readers[*i].path().display().to_string();
                match adopt_run_object(h, e.kind, &read) {
                    Ok(Adopt::Part(p)) => commit.run_parts.push(p),
                    Ok(Adopt::Seal(s, parts)) => {
                        // Two snapshots of one run can exist (a seal attempt that lost a race
                        // leaves its pack behind): the one that merged the most parts is the
                        // final one; ties go to the later seal, then the larger hash.
                        let better = seals.get(&s.run_id).is_none_or(
                            |(old, old_parts): &(crate::engine::index::SealRow, Vec<Hash>)| {
                                (parts.len(), s.sealed_ns, s.snapshot)
                                    > (old_parts.len(), old.sealed_ns, old.snapshot)
                            },
                        );
                        if better {
                            seals.insert(s.run_id.clone(), (s, parts));
                        }
                    }
                    // Written by a newer version: change nothing rather than half-adopt.
                    Err(x @ Error::NewerFormat { .. }) => return Err(x),
                    Err(x) => report.problems.push(Problem {
                        pack: what,
                        object: Some(h.to_hex()),
                        detail: format!("run object not adopted: {x}"),
                    }),
                }
                continue;
            }
            if e.kind != ObjectKind::Root {
                continue;
            }
            let what = readers[*i].path().display().to_string();
            let rec = read(h).and_then(|(_, b)| {
                serde_json::from_slice::<RootRecord>(&b)
                    .map_err(|x| Error::corrupt(what.clone(), x.to_string()))
            });
            let root = rec.and_then(|rec| Root::from_record(rec, *h));
            match root.and_then(|r| reachable(&r, &read).map(|_| r)) {
                Ok(r) => commit.roots.push(r),
                Err(x @ Error::NewerFormat { .. }) => return Err(x),
                Err(x) => report.problems.push(Problem {
                    pack: what,
                    object: Some(h.to_hex()),
                    detail: format!("root record not adopted: {x}"),
                }),
            }
        }
        let mut sealed_parts: HashMap<String, Vec<Hash>> = HashMap::new();
        for (run, (row, parts)) in seals {
            sealed_parts.insert(run, parts);
            commit.seals.push(row);
        }
        // A sealed run owns exactly the parts its snapshot merged: records refused after the
        // seal (left in packs until gc) must not reattach to it.
        commit.run_parts.retain(|p| {
            sealed_parts
                .get(&p.run_id)
                .is_none_or(|parts| parts.contains(&p.record))
        });
        // A new index file, swapped in whole: the old one may be damaged beyond what SQL on
        // it can fix (constraint failures, "file is not a database"), and must not be needed.
        self.replace_index(&mut commit)?;
        self.readers_clear();
        Ok(report)
    }

    /// Sizes and ratios.
    pub fn stats(&self) -> Result<Stats> {
        let idx = self.index();
        let roots = idx.roots()?.len() as u64;
        let history = idx.root_history(None)?;
        let (run_bytes, runs) = idx.run_file_bytes()?;
        let (objects, chunks, _stored, _raw, pack_bytes) = idx.totals()?;
        let packs = idx.packs()?.len() as u64;
        let unique = idx.chunk_bytes()?;
        drop(idx);
        let logical: u64 = history.iter().map(|r| r.size).sum::<u64>() + run_bytes;
        let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
        Ok(Stats {
            roots,
            versions: history.len() as u64,
            runs,
            logical_bytes: logical,
            unique_bytes: unique,
            stored_bytes: pack_bytes,
            objects,
            chunks,
            packs,
            dedup_ratio: ratio(logical, unique),
            compression_ratio: ratio(unique, pack_bytes),
        })
    }

    fn readers_clear(&self) {
        self.readers_lock().clear();
    }
}

enum Adopt {
    Part(crate::engine::index::RunPartRow),
    Seal(crate::engine::index::SealRow, Vec<Hash>),
}

/// Turns a run object found in a pack back into index rows, if all it references is readable.
fn adopt_run_object(h: &Hash, kind: ObjectKind, read: &ReadObject<'_>) -> Result<Adopt> {
    let (_, bytes) = read(h)?;
    for (r, k) in crate::engine::run_object::entry_refs(kind, &bytes, h)? {
        let root = Root {
            path: String::new(),
            kind: if k == ObjectKind::Tree {
                "tree".into()
            } else {
                "file".into()
            },
            hash: r,
            size: 0,
            time_ns: 0,
            record: *h,
        };
        reachable(&root, read)?;
    }
    if kind == ObjectKind::Run {
        let s: crate::engine::run_object::RunSnapshot =
            crate::engine::run_object::parse_run_object(kind, &bytes, h)?;
        return Ok(Adopt::Seal(
            crate::engine::index::SealRow {
                run_id: s.run_id,
                workflow: s.workflow,
                snapshot: *h,
                sealed_ns: s.sealed_ns,
                parts: None,
            },
            s.parts,
        ));
    }
    let p: crate::engine::run_object::RunPart =
        crate::engine::run_object::parse_run_object(kind, &bytes, h)?;
    Ok(Adopt::Part(p.index_row(*h)))
}

/// Checks that every object reachable from `root` can be read.
/// Reads one object by hash (from the packs being reindexed).
type ReadObject<'a> = dyn Fn(&Hash) -> Result<(ObjectKind, Vec<u8>)> + 'a;

fn reachable(root: &Root, read: &ReadObject<'_>) -> Result<()> {
    let mut stack = vec![root.hash];
    while let Some(h) = stack.pop() {
        let (kind, bytes) = read(&h)?;
        match kind {
            ObjectKind::Tree => {
                for e in crate::engine::manifest::TreeManifest::decode(&bytes, &h)?.entries {
                    match e.kind {
                        EntryKind::File(f) | EntryKind::Dir(f) => stack.push(f),
                        EntryKind::Symlink(_) => {}
                    }
                }
            }
            ObjectKind::File => {
                for (c, _) in crate::engine::manifest::FileManifest::decode(&bytes, &h)?.chunks {
                    read(&c)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Files in `.store/cache/` whose content hash is not live.
fn dead_cache_files(dir: &Path, live: &HashSet<Hash>) -> Result<Vec<PathBuf>> {
    Ok(fanout_files(dir)?
        .into_iter()
        .filter(|(name, _)| {
            let hex = name.strip_suffix(".x").unwrap_or(name);
            hex.parse::<Hash>().is_ok_and(|h| !live.contains(&h))
        })
        .map(|(_, p)| p)
        .collect())
}

fn collect_temp(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for ent in rd {
        let p = ent.map_err(|e| Error::io(dir, e))?.path();
        if p.is_dir() {
            collect_temp(&p, out)?;
            continue;
        }
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.ends_with(".tmp") {
            continue;
        }
        // A temporary file still locked belongs to a live writer: leave it.
        if let Ok(f) = fs::File::open(&p) {
            if f.try_lock().is_ok() {
                out.push(p);
            }
        }
    }
    Ok(())
}

fn verify_pack(id: &Hash, path: &Path) -> (u64, u64, Vec<Problem>) {
    let what = path.display().to_string();
    let mut problems = Vec::new();
    let reader = match PackReader::open(path) {
        Ok(r) => r,
        Err(e) => {
            problems.push(Problem {
                pack: what,
                object: None,
                detail: e.to_string(),
            });
            return (0, 0, problems);
        }
    };
    let bytes = reader.bytes().len() as u64;
    if reader.compute_id().is_ok_and(|h| h != *id) {
        problems.push(Problem {
            pack: what.clone(),
            object: None,
            detail: "pack content does not match its name (hash mismatch)".into(),
        });
    }
    let entries = match reader.entries() {
        Ok(e) => e,
        Err(e) => {
            problems.push(Problem {
                pack: what,
                object: None,
                detail: e.to_string(),
            });
            return (0, bytes, problems);
        }
    };
    for e in &entries {
        if let Err(x) = reader.read(e) {
            problems.push(Problem {
                pack: what.clone(),
                object: Some(e.hash.to_hex()),
                detail: x.to_string(),
            });
        }
    }
    (entries.len() as u64, bytes, problems)
}

impl Store {
    /// The object rows naming pack `id`: those its table of contents finds by hash and, only
    /// when the index holds more rows naming it (`count`) than that, all of them by a scan.
    fn rows_naming(
        &self,
        id: &Hash,
        entries: &[crate::engine::pack::Entry],
        count: Option<u64>,
    ) -> Result<Vec<crate::engine::index::ObjectRow>> {
        let hashes: Vec<Hash> = entries
            .iter()
            .map(|e| e.hash)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let found = self.index().rows_in_pack_of(id, &hashes)?;
        if count.unwrap_or(0) > found.len() as u64 {
            return self.index().object_rows(id);
        }
        Ok(found)
    }

    /// Index-vs-pack consistency, for `verify`: every object row of every indexed pack on disk
    /// must match an entry of that pack's table of contents (offset, lengths, kind,
    /// compression), no object row may name a pack the index does not list, every indexed
    /// pack's recorded size must be its file's, and every root version must say what its root
    /// record says. Returns (object, detail) pairs; packs that do not parse are skipped (their
    /// damage is reported by the pack check).
    fn index_vs_packs(
        &self,
        indexed: &[(Hash, u64)],
        on_disk: &[(Hash, PathBuf)],
    ) -> Vec<(Option<String>, String)> {
        let mut out = Vec::new();
        let paths: HashMap<Hash, &PathBuf> = on_disk.iter().map(|(h, p)| (*h, p)).collect();
        let counts = match self.index().rows_per_pack() {
            Ok(counts) => counts,
            Err(e) => {
                out.push((None, format!("object rows: {}", index_detail(&e))));
                HashMap::new()
            }
        };
        for (id, size) in indexed {
            let Some(path) = paths.get(id) else {
                continue;
            };
            let what = path.display().to_string();
            let Ok((reader, entries)) =
                PackReader::open(path).and_then(|r| r.entries().map(|e| (r, e)))
            else {
                continue;
            };
            let len = reader.bytes().len() as u64;
            if len != *size {
                out.push((
                    None,
                    format!("records pack {what} as {size} bytes; the file has {len}"),
                ));
            }
            let toc: HashMap<Hash, &crate::engine::pack::Entry> =
                entries.iter().map(|e| (e.hash, e)).collect();
            let rows = match self.rows_naming(id, &entries, counts.get(id).copied()) {
                Ok(rows) => rows,
                Err(e) => {
                    out.push((
                        None,
                        format!("object rows of pack {what}: {}", index_detail(&e)),
                    ));
                    continue;
                }
            };
            for row in rows {
                let stored = |o: i64, s: i64, raw: i64, k: u8, c: u8| {
                    format!("offset {o}, {s} bytes stored, {raw} raw, kind {k}, compression {c}")
                };
                let said = stored(
                    row.offset,
                    row.stored_len,
                    row.raw_len,
                    row.kind,
                    row.compression,
                );
                match toc.get(&row.hash) {
                    None => out.push((
                        Some(row.hash.to_hex()),
                        format!("locates this object in pack {what} ({said}), whose table of contents does not hold it"),
                    )),
                    Some(e) => {
                        let is = stored(
                            e.offset as i64,
                            i64::from(e.stored_len),
                            i64::from(e.raw_len),
                            e.kind as u8,
                            e.compression as u8,
                        );
                        if is != said {
                            out.push((
                                Some(row.hash.to_hex()),
                                format!("locates this object in pack {what} at {said}; the pack has it at {is}"),
                            ));
                        }
                    }
                }
            }
        }
        let dangling = self.index().dangling_objects();
        match dangling {
            Ok(0) => {}
            Ok(n) => out.push((
                None,
                format!("{n} object rows name a pack the index does not list"),
            )),
            Err(e) => out.push((None, index_detail(&e))),
        }
        // Root versions are copies of their root records: a damaged row would show another
        // path, hash or size than was added. A record that is not stored here (or whose pack
        // is damaged, reported above) cannot be compared.
        // Bound first: the guard of a `match` scrutinee would live through `read_kind`.
        let history = self.index().root_history(None);
        match history {
            Ok(roots) => {
                for row in roots {
                    let Ok(bytes) = self.read_kind(&row.record, ObjectKind::Root) else {
                        continue;
                    };
                    let from_record = serde_json::from_slice::<RootRecord>(&bytes)
                        .map_err(|e| Error::corrupt("root record", e.to_string()))
                        .and_then(|rec| Root::from_record(rec, row.record));
                    if let Ok(want) = from_record {
                        if want != row {
                            out.push((
                                Some(row.record.to_hex()),
                                format!(
                                    "root version row ({} {} {} {} bytes) differs from its root record ({} {} {} {} bytes)",
                                    row.path, row.kind, row.hash, row.size,
                                    want.path, want.kind, want.hash, want.size
                                ),
                            ));
                        }
                    }
                }
            }
            Err(e) => out.push((None, index_detail(&e))),
        }
        out
    }
}

/// An index error as a problem's detail: the problem already names the index file, so a
/// corruption error gives only what is wrong.
fn index_detail(e: &Error) -> String {
    match e {
        Error::Corrupt { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}
