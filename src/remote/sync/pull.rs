//! `pull`, `clone` and fetch on demand: objects fetched level by level, each checked as its
//! reader would check it; what is damaged is skipped and reported by key (19.5).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;

use crate::engine::hash::{Hash, ObjectKind};
use crate::engine::index::{Commit, Root, RunRow};
use crate::engine::manifest::{EntryKind, RootRecord};
use crate::engine::pack::{Entry, PackWriter};
use crate::engine::store::{ChunkSink, InitOptions, LockMode, Store};
use crate::error::{Error, Result};
use crate::remote::{Backend, RemoteSpec};
use crate::workspace::maintenance::Problem;

use super::*;

/// A remote run's index rows: the parts a store lacks, and the seal.
pub(super) type RunRows = (
    Vec<crate::engine::index::RunPartRow>,
    Option<crate::engine::index::SealRow>,
);

/// What one fetch downloaded, and the damage it met (by object).
#[derive(Default)]
pub(super) struct Fetched {
    pub(super) objects: u64,
    pub(super) bytes: u64,
    pub(super) damaged: BTreeMap<Hash, Problem>,
}

impl Fetched {
    pub(super) fn add(&mut self, o: Fetched) {
        self.objects += o.objects;
        self.bytes += o.bytes;
        self.damaged.extend(o.damaged);
    }
}

/// Decodes object `h` (of `kind`, content `raw`, already checked against its hash) as its
/// readers will, so that nothing a reader would refuse is taken from a remote: manifests (tree
/// entry names, duplicates, lengths), root records, run objects (their names and entry paths,
/// held to the rules of local input). Returns the run ID of a run object.
pub(super) fn check_object(kind: ObjectKind, raw: &[u8], h: &Hash) -> Result<Option<String>> {
    match kind {
        ObjectKind::File => crate::engine::manifest::FileManifest::decode(raw, h).map(|_| None),
        ObjectKind::Tree => crate::engine::manifest::TreeManifest::decode(raw, h).map(|_| None),
        ObjectKind::Root => RootRecord::decode(raw, h).map(|_| None),
        ObjectKind::RunPart => {
            let p: crate::run::RunPart = crate::run::parse_run_object(kind, raw, h)?;
            check_entry_paths(&p.entries)?;
            Ok(Some(p.run_id))
        }
        ObjectKind::Run => {
            let s: crate::run::RunSnapshot = crate::run::parse_run_object(kind, raw, h)?;
            check_entry_paths(&s.entries)?;
            Ok(Some(s.run_id))
        }
        ObjectKind::Chunk | ObjectKind::Pack => Ok(None),
    }
}

/// Every entry path is one a local record could have written (relative, no `..`): a run
/// whose checkout would write outside its target is not taken from a remote at all.
pub(super) fn check_entry_paths(entries: &[crate::run::RunEntry]) -> Result<()> {
    for e in entries {
        crate::run::safe_relative(&e.path)?;
    }
    Ok(())
}

/// What object `h` (of `kind`, content `bytes`) references: manifests and records go to
/// `next`, chunks to `chunks`.
pub(super) fn children(
    h: &Hash,
    kind: ObjectKind,
    bytes: &[u8],
    next: &mut Vec<Hash>,
    chunks: &mut Vec<Hash>,
) -> Result<()> {
    match kind {
        ObjectKind::Run | ObjectKind::RunPart => next.extend(
            crate::run::entry_refs(kind, bytes, h)?
                .into_iter()
                .map(|(r, _)| r),
        ),
        ObjectKind::Root => {
            let rec: RootRecord = serde_json::from_slice(bytes)
                .map_err(|e| Error::corrupt(format!("root record {h}"), e.to_string()))?;
            next.push(rec.hash.parse()?);
        }
        ObjectKind::Tree => {
            for e in crate::engine::manifest::TreeManifest::decode(bytes, h)?.entries {
                match e.kind {
                    EntryKind::File(f) | EntryKind::Dir(f) => next.push(f),
                    EntryKind::Symlink(_) => {}
                }
            }
        }
        ObjectKind::File => chunks.extend(
            crate::engine::manifest::FileManifest::decode(bytes, h)?
                .chunks
                .into_iter()
                .map(|(c, _)| c),
        ),
        _ => {}
    }
    Ok(())
}

pub(super) fn find_remote_run<'a>(
    state: &'a RemoteState,
    id: &str,
    remote: &str,
) -> Result<&'a SegRun> {
    if let Some(r) = state.runs.get(id) {
        return Ok(r);
    }
    let found: Vec<&SegRun> = state
        .runs
        .values()
        .filter(|r| r.run_id.starts_with(id))
        .collect();
    match found.as_slice() {
        [r] => Ok(r),
        [] => Err(Error::RunNotFound(format!(
            "no run {id} on remote {remote}"
        ))),
        many => Err(Error::RunNotFound(format!(
            "run prefix {id} is ambiguous on remote {remote}: {}",
            many.iter()
                .map(|r| r.run_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// One fetch's remote context.
pub(super) struct Fetch<'a> {
    pub(super) name: &'a str,
    pub(super) backend: &'a dyn Backend,
    pub(super) state: &'a RemoteState,
    pub(super) jobs: usize,
    pub(super) progress: bool,
}

/// Writes fetched objects into local packs.
pub(super) struct FetchWriter<'a> {
    pub(super) store: &'a Store,
    pub(super) current: Option<PackWriter>,
    pub(super) finished: Vec<crate::engine::pack::FinishedPack>,
}

impl FetchWriter<'_> {
    pub(super) fn append(&mut self, e: &Entry, stored: &[u8]) -> Result<()> {
        let target = self.store.config().pack_target_size;
        if self.current.as_ref().is_some_and(|w| w.len() >= target) {
            if let Some(w) = self.current.take() {
                self.finished.push(w.finish(&self.store.packs_dir())?);
            }
        }
        if self.current.is_none() {
            self.current = Some(PackWriter::create(&self.store.tmp_dir())?);
        }
        match self.current.as_mut() {
            Some(w) => w.append(e.hash, e.kind, e.compression, e.raw_len, stored),
            None => Err(Error::Invalid("no pack writer".into())),
        }
    }

    pub(super) fn commit(mut self) -> Result<()> {
        if let Some(w) = self.current.take() {
            if !w.is_empty() {
                self.finished.push(w.finish(&self.store.packs_dir())?);
            }
        }
        if self.finished.is_empty() {
            return Ok(());
        }
        self.store.index().commit(&Commit {
            packs: std::mem::take(&mut self.finished),
            ..Commit::default()
        })
    }
}

/// Creates a workspace in `dir` from a remote: a new store whose `origin` is `spec`, with every
/// run and tracked path of the remote known and their manifests fetched. File content is
/// fetched on demand by checkout (or all at once by `pull`).
pub fn clone_remote(
    spec: RemoteSpec,
    dir: &Path,
    jobs: usize,
    progress: bool,
) -> Result<(Store, PullReport)> {
    spec.validate()?;
    let backend = spec.open()?;
    let marker: Option<Marker> = match backend.get(MARKER_KEY)? {
        Some(b) => Some(serde_json::from_slice(&b).map_err(|e| {
            Error::corrupt(format!("remote {} {MARKER_KEY}", spec.url), e.to_string())
        })?),
        None => None,
    };
    let Some(marker) = marker else {
        return Err(Error::Remote {
            remote: crate::run::git::redact(&spec.url),
            detail: "not a store remote (no store-remote.json; push to it first)".into(),
        });
    };
    if marker.version > REMOTE_FORMAT {
        return Err(Error::NewerFormat {
            what: format!("remote {}", spec.url),
            found: marker.version,
            supported: REMOTE_FORMAT,
        });
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let store = Store::init(
        &dir.join(crate::engine::store::STORE_DIR_NAME),
        &InitOptions {
            chunking: Some(marker.chunking),
            zstd_level: None,
        },
    )?;
    store.remote_add("origin", spec, true)?;
    let report = store.pull(
        Some("origin"),
        &PullOptions {
            runs: Vec::new(),
            jobs,
            progress,
            metadata_only: true,
        },
    )?;
    Ok((store, report))
}

impl Store {
    /// Pulls runs (or everything) from a remote into this store, verifying every object.
    /// Damage on the remote (a segment, a pack or an object failing its checks, an invalid
    /// name) does not stop it: what needs the damage is not adopted, everything else is, and
    /// the report names each damaged key and each run or path passed over.
    pub fn pull(&self, remote: Option<&str>, opts: &PullOptions) -> Result<PullReport> {
        let _lock = self.lock(LockMode::Shared)?;
        let (name, spec) = self.remote_spec(remote)?;
        let backend = spec.open()?;
        let state = self.remote_state(&name, &*backend)?;
        let mut report = PullReport {
            remote: name.clone(),
            ..PullReport::default()
        };
        let runs: Vec<SegRun> = if opts.runs.is_empty() {
            state.runs.values().cloned().collect()
        } else {
            let mut v = Vec::new();
            for id in &opts.runs {
                v.push(find_remote_run(&state, id, &name)?.clone());
            }
            v
        };
        let roots: Vec<Hash> = if opts.runs.is_empty() {
            let mut v: Vec<Hash> = state.roots.iter().copied().collect();
            v.sort();
            v
        } else {
            Vec::new()
        };
        let mut starts: Vec<Hash> = roots.clone();
        for r in &runs {
            starts.extend(r.parts.iter().copied());
            starts.extend(r.snapshot);
        }
        let ctx = Fetch {
            name: &name,
            backend: &*backend,
            state: &state,
            jobs: opts.jobs.max(1),
            progress: opts.progress,
        };
        let mut bad: BTreeMap<Hash, Problem> = BTreeMap::new();
        if opts.runs.is_empty() && !opts.metadata_only {
            // Everything: one pass over the remote's packs, each read in as few ranges as
            // possible, instead of walking the graph level by level.
            // Not what lies only in packs `remote gc` condemned: no run in view needs it (and
            // gc may delete it any time now); what a run does need comes with its closure below.
            let mut all: Vec<Hash> = state
                .objects
                .iter()
                .filter(|(_, (p, _))| state.status(p) == PackStatus::Normal)
                .map(|(h, _)| *h)
                .collect();
            all.sort();
            let f = self.fetch_objects(&ctx, &self.absent(&all)?, None)?;
            report.objects += f.objects;
            report.bytes += f.bytes;
            bad.extend(f.damaged);
        }
        let f = self.fetch_closure(&ctx, &starts, !opts.metadata_only)?;
        report.objects += f.objects;
        report.bytes += f.bytes;
        bad.extend(f.damaged);
        // Which runs and roots need something damaged (only worked out when there is damage).
        let tainted = if bad.is_empty() {
            HashMap::new()
        } else {
            self.tainted(&starts, &mut bad, !opts.metadata_only)?
        };
        let skip = |what: String, h: &Hash| -> Option<Skipped> {
            let origin = tainted.get(h)?;
            let p = bad.get(origin)?;
            Some(Skipped {
                what,
                key: p.pack.clone(),
                object: p.object.clone(),
                detail: p.detail.clone(),
            })
        };

        // Adopt the runs and roots into the index.
        let mut commit = Commit::default();
        let local_runs: HashMap<String, RunRow> = self
            .index()
            .runs(None)?
            .into_iter()
            .map(|r| (r.run_id.clone(), r))
            .collect();
        for r in &runs {
            let local = local_runs.get(&r.run_id);
            if local.is_some_and(|l| l.snapshot.is_some()) {
                continue;
            }
            let what = format!("run {}", r.run_id);
            if let Some(s) = r
                .parts
                .iter()
                .chain(r.snapshot.iter())
                .find_map(|h| skip(what.clone(), h))
            {
                report.skipped.push(s);
                continue;
            }
            let have: HashSet<Hash> = match local {
                Some(_) => self.index().run_parts(&r.run_id)?.into_iter().collect(),
                None => HashSet::new(),
            };
            match self.run_rows(r, &have) {
                Ok((parts, seal)) => {
                    commit.run_parts.extend(parts);
                    commit.seals.extend(seal);
                    report.runs.push(r.run_id.clone());
                }
                Err((h, e)) => report.skipped.push(Skipped {
                    what,
                    key: state.run_keys.get(&r.run_id).cloned().unwrap_or_default(),
                    object: Some(h.to_hex()),
                    detail: e.to_string(),
                }),
            }
        }
        let known: HashSet<Hash> = self
            .index()
            .root_history(None)?
            .into_iter()
            .map(|r| r.record)
            .collect();
        for h in roots.iter().filter(|h| !known.contains(h)) {
            let rec = self
                .read_kind(h, ObjectKind::Root)
                .and_then(|b| RootRecord::decode(&b, h));
            let rec = match rec {
                Ok(rec) => rec,
                Err(e) => {
                    report.skipped.push(Skipped {
                        what: format!("path version {h}"),
                        key: "local store".into(),
                        object: Some(h.to_hex()),
                        detail: e.to_string(),
                    });
                    continue;
                }
            };
            if let Some(s) = skip(format!("path {}", rec.path), h) {
                report.skipped.push(s);
                continue;
            }
            commit.roots.push(Root::from_record(rec, *h)?);
            report.roots += 1;
        }
        self.index().commit(&commit)?;
        report.damaged = state.damaged.clone();
        report.damaged.extend(bad.into_values());
        report.requests = backend.requests();
        Ok(report)
    }

    /// The index rows of remote run `r` (the parts this store lacks, the seal), or the record
    /// that cannot be adopted and why: unreadable, or naming another run than its publication.
    pub(super) fn run_rows(
        &self,
        r: &SegRun,
        have: &HashSet<Hash>,
    ) -> std::result::Result<RunRows, (Hash, Error)> {
        let other = |h: &Hash, id: &str| {
            (
                *h,
                Error::corrupt(
                    format!("run record {h}"),
                    format!(
                        "is a record of run {id:?}, published as one of run {:?}",
                        r.run_id
                    ),
                ),
            )
        };
        let mut parts = Vec::new();
        for p in r.parts.iter().filter(|p| !have.contains(p)) {
            let part: crate::run::RunPart = self
                .read_kind(p, ObjectKind::RunPart)
                .and_then(|b| crate::run::parse_run_object(ObjectKind::RunPart, &b, p))
                .map_err(|e| (*p, e))?;
            if part.run_id != r.run_id {
                return Err(other(p, &part.run_id));
            }
            parts.push(part.index_row(*p));
        }
        let mut seal = None;
        if let Some(s) = r.snapshot {
            let snap: crate::run::RunSnapshot = self
                .read_kind(&s, ObjectKind::Run)
                .and_then(|b| crate::run::parse_run_object(ObjectKind::Run, &b, &s))
                .map_err(|e| (s, e))?;
            if snap.run_id != r.run_id {
                return Err(other(&s, &snap.run_id));
            }
            seal = Some(crate::engine::index::SealRow {
                run_id: snap.run_id,
                workflow: snap.workflow,
                snapshot: s,
                sealed_ns: snap.sealed_ns,
                parts: None,
            });
        }
        Ok((parts, seal))
    }

    /// For each of `starts` that reaches a damaged object (`bad`), that object. Walks the local
    /// graph under `starts` (chunks too when `chunks`); an object missing locally or failing
    /// to decode joins `bad`.
    pub(super) fn tainted(
        &self,
        starts: &[Hash],
        bad: &mut BTreeMap<Hash, Problem>,
        chunks: bool,
    ) -> Result<HashMap<Hash, Hash>> {
        let mut parents: HashMap<Hash, Vec<Hash>> = HashMap::new();
        let mut seen: HashSet<Hash> = HashSet::new();
        let mut stack: Vec<Hash> = starts.to_vec();
        let mut origins: Vec<Hash> = Vec::new();
        while let Some(h) = stack.pop() {
            if !seen.insert(h) {
                continue;
            }
            if bad.contains_key(&h) {
                origins.push(h);
                continue;
            }
            let mut next = Vec::new();
            let mut chunk_refs = Vec::new();
            let r = match self.read_object(&h) {
                Ok((kind, bytes)) => children(&h, kind, &bytes, &mut next, &mut chunk_refs),
                Err(Error::ObjectNotFound(_)) => Err(Error::ObjectNotFound(h.to_hex())),
                Err(e) => return Err(e),
            };
            if let Err(e) = r {
                bad.insert(h, problem("local store", Some(h), &e.to_string()));
                origins.push(h);
                continue;
            }
            if chunks {
                next.extend(chunk_refs.into_iter().filter(|c| bad.contains_key(c)));
            }
            for c in next {
                parents.entry(c).or_default().push(h);
                stack.push(c);
            }
        }
        // Each damaged object taints everything above it.
        let mut origin: HashMap<Hash, Hash> = HashMap::new();
        for o in origins {
            let mut up = vec![o];
            origin.entry(o).or_insert(o);
            while let Some(c) = up.pop() {
                for p in parents.get(&c).map(Vec::as_slice).unwrap_or(&[]) {
                    if !origin.contains_key(p) {
                        origin.insert(*p, o);
                        up.push(*p);
                    }
                }
            }
        }
        Ok(origin)
    }

    /// Makes sure every object under `starts` is local (file content too when `chunks`),
    /// fetching what is missing from the default remote when one is configured. Returns the
    /// objects fetched. Damage on the way fails it (exit 5, naming the key): whoever asked
    /// needs every one of those objects.
    pub(crate) fn fetch_missing(&self, starts: &[Hash], chunks: bool) -> Result<u64> {
        if self.remotes()?.remotes.is_empty() || !self.missing_under(starts, chunks)? {
            return Ok(0);
        }
        self.fetch_from_default(true, |ctx| self.fetch_closure(ctx, starts, chunks))
    }

    /// Fetches `chunks` (absent here) from the default remote into local packs, handing each
    /// verified content to `sink` as it arrives (a restore writing files from downloaded
    /// bytes, which shows its own progress). Damage fails it, naming the key.
    pub(crate) fn fetch_chunks_into(&self, chunks: &[Hash], sink: &ChunkSink<'_>) -> Result<u64> {
        self.fetch_from_default(false, |ctx| self.fetch_objects(ctx, chunks, Some(sink)))
    }

    /// Runs `fetch` against the default remote, turning the first damaged object it met into
    /// an error; returns the objects fetched.
    fn fetch_from_default(
        &self,
        progress: bool,
        fetch: impl FnOnce(&Fetch<'_>) -> Result<Fetched>,
    ) -> Result<u64> {
        let (name, spec) = self.remote_spec(None)?;
        let backend = spec.open()?;
        let state = self.remote_state(&name, &*backend)?;
        let ctx = Fetch {
            name: &name,
            backend: &*backend,
            state: &state,
            jobs: ON_DEMAND_JOBS,
            progress,
        };
        let f = fetch(&ctx)?;
        if let Some(p) = f.damaged.into_values().next() {
            return Err(Error::corrupt(
                format!("remote {name} {}", p.pack),
                match p.object {
                    Some(o) => format!("object {o}: {}", p.detail),
                    None => p.detail,
                },
            ));
        }
        Ok(f.objects)
    }

    /// True when some object under `starts` (chunks included when `chunks`) is not in the
    /// local index. Walks the graph level by level with one index query per level.
    pub(super) fn missing_under(&self, starts: &[Hash], with_chunks: bool) -> Result<bool> {
        let mut seen = HashSet::new();
        let mut level: Vec<Hash> = starts.to_vec();
        let mut chunk_refs = Vec::new();
        while !level.is_empty() {
            level.retain(|h| seen.insert(*h));
            let locs = self.index().locate_many(&level)?;
            let mut next = Vec::new();
            for (h, l) in level.iter().zip(locs) {
                let Some(l) = l else { return Ok(true) };
                let bytes = self.reader(&l.pack)?.read(&l.entry)?;
                children(h, l.entry.kind, &bytes, &mut next, &mut chunk_refs)?;
            }
            level = next;
        }
        if !with_chunks {
            return Ok(false);
        }
        chunk_refs.sort();
        chunk_refs.dedup();
        Ok(!self.absent(&chunk_refs)?.is_empty())
    }

    /// Those of `hashes` that the local index does not hold (one query).
    pub(super) fn absent(&self, hashes: &[Hash]) -> Result<Vec<Hash>> {
        let locs = self.index().locate_many(hashes)?;
        Ok(hashes
            .iter()
            .zip(locs)
            .filter(|(_, l)| l.is_none())
            .map(|(h, _)| *h)
            .collect())
    }

    /// Fetches, level by level, every missing object under `starts` (chunks only when
    /// `chunks`). Damaged objects are not kept, and what only they reference is not fetched.
    pub(super) fn fetch_closure(
        &self,
        ctx: &Fetch<'_>,
        starts: &[Hash],
        chunks: bool,
    ) -> Result<Fetched> {
        let mut total = Fetched::default();
        let mut seen: HashSet<Hash> = HashSet::new();
        let mut level: Vec<Hash> = starts.to_vec();
        let mut chunk_set: Vec<Hash> = Vec::new();
        while !level.is_empty() {
            level.retain(|h| seen.insert(*h));
            total.add(self.fetch_objects(ctx, &self.absent(&level)?, None)?);
            let mut next = Vec::new();
            for h in &level {
                if total.damaged.contains_key(h) {
                    continue;
                }
                // Fetched objects were decoded already; one that was local before may fail.
                let r = self
                    .read_object(h)
                    .and_then(|(kind, bytes)| children(h, kind, &bytes, &mut next, &mut chunk_set));
                match r {
                    Ok(()) => {}
                    Err(e @ (Error::Corrupt { .. } | Error::NewerFormat { .. })) => {
                        total
                            .damaged
                            .insert(*h, problem("local store", Some(*h), &e.to_string()));
                    }
                    Err(e) => return Err(e),
                }
            }
            level = next;
        }
        if chunks {
            chunk_set.sort();
            chunk_set.dedup();
            total.add(self.fetch_objects(ctx, &self.absent(&chunk_set)?, None)?);
        }
        Ok(total)
    }

    /// Downloads `hashes` with ranged reads of the remote packs holding them, checks each
    /// against its hash and decodes it as its reader would ([`check_object`]), writes those that
    /// pass into new local packs and commits those. Those that fail (or that no segment places,
    /// or whose pack is missing or short) are returned as damage, by key. With `sink`, the
    /// verified content of each asked-for object goes to it as soon as it is checked; an error
    /// of the sink fails the fetch.
    pub(super) fn fetch_objects(
        &self,
        ctx: &Fetch<'_>,
        hashes: &[Hash],
        sink: Option<&ChunkSink<'_>>,
    ) -> Result<Fetched> {
        let mut out = Fetched::default();
        if hashes.is_empty() {
            return Ok(out);
        }
        // Damage is reported for these only: an object fetched along with them (the rest of a
        // pack of records) that fails is just not kept, and is reported if it is ever needed.
        let wanted: HashSet<Hash> = hashes.iter().copied().collect();
        let mut by_pack: BTreeMap<Hash, Vec<Entry>> = BTreeMap::new();
        for h in hashes {
            match ctx.state.objects.get(h) {
                Some((pack, e)) => by_pack.entry(*pack).or_default().push(e.clone()),
                None => {
                    out.damaged.insert(
                        *h,
                        problem(
                            "index/",
                            Some(*h),
                            "referenced, but no segment places it on the remote (was it pushed?)",
                        ),
                    );
                }
            }
        }
        // A pack of records and manifests is read whole: what it also holds is what the next
        // levels of this pull would ask for (one push's records and their manifests).
        let meta = ctx.state.meta_packs();
        let mut extra: Vec<Entry> = Vec::new();
        for (pack, entries) in &by_pack {
            if let Some(all) = meta.get(pack) {
                let asked: HashSet<Hash> = entries.iter().map(|e| e.hash).collect();
                extra.extend(all.iter().filter(|e| !asked.contains(&e.hash)).cloned());
            }
        }
        if !extra.is_empty() {
            let hashes: Vec<Hash> = extra.iter().map(|e| e.hash).collect();
            let local = self.index().locate_many(&hashes)?;
            for (e, l) in extra.into_iter().zip(local) {
                if l.is_none() {
                    if let Some((pack, _)) = ctx.state.objects.get(&e.hash) {
                        by_pack.entry(*pack).or_default().push(e);
                    }
                }
            }
        }
        let mut ranges: Vec<(Hash, Range<u64>, Vec<Entry>)> = Vec::new();
        for (pack, mut entries) in by_pack {
            // Members of a group frame share an offset (5.4): sorted by hash too, so that a
            // duplicate is next to its twin.
            entries.sort_by_key(|e| (e.offset, e.hash));
            entries.dedup_by_key(|e| e.hash);
            let mut cur: Option<(Range<u64>, Vec<Entry>)> = None;
            for e in entries {
                // A segment's numbers are not trusted to size a read.
                if e.stored_len > crate::engine::pack::MAX_OBJECT
                    || e.raw_len > crate::engine::pack::MAX_OBJECT
                {
                    out.damaged.insert(
                        e.hash,
                        problem(&pack_key(&pack), Some(e.hash), "absurd object length"),
                    );
                    continue;
                }
                let end = e.offset.saturating_add(u64::from(e.stored_len));
                match cur.as_mut() {
                    // Another member of a frame already in the range.
                    Some((r, v)) if e.offset >= r.start && end <= r.end => v.push(e),
                    Some((r, v))
                        if e.offset >= r.end
                            && e.offset - r.end <= COALESCE_GAP
                            && end - r.start <= MAX_RANGE =>
                    {
                        r.end = end;
                        v.push(e);
                    }
                    _ => {
                        if let Some((r, v)) = cur.take() {
                            ranges.push((pack, r, v));
                        }
                        cur = Some((e.offset..end, vec![e]));
                    }
                }
            }
            if let Some((r, v)) = cur {
                ranges.push((pack, r, v));
            }
        }
        let total: u64 = ranges.iter().map(|(_, r, _)| r.end - r.start).sum();
        let pb = crate::workspace::add::progress_bar(ctx.progress, total, "downloading");
        let writer = Mutex::new(FetchWriter {
            store: self,
            current: None,
            finished: Vec::new(),
        });
        let results = parallel(ranges, ctx.jobs, |(pack, range, entries)| {
            let key = pack_key(&pack);
            let mut damaged = Vec::new();
            let bytes = match ctx.backend.get_range(&key, range.clone()) {
                Ok(b) => b,
                Err(e) => {
                    // A pack missing or shorter than its segment says is damage; anything else
                    // (the remote unreachable, refusing) fails the pull as before.
                    let why = match ctx.backend.head(&key)? {
                        None => "listed in a segment but missing".to_string(),
                        Some(n) if n < range.end => {
                            format!("has {n} bytes, its objects reach byte {}", range.end)
                        }
                        Some(_) => return Err(e),
                    };
                    for x in entries.iter().filter(|x| wanted.contains(&x.hash)) {
                        damaged.push((x.hash, problem(&key, Some(x.hash), &why)));
                    }
                    pb.inc(range.end - range.start);
                    return Ok((0, 0, damaged));
                }
            };
            let what = || format!("remote {} {key}", ctx.name);
            let mut verified = Vec::with_capacity(entries.len());
            for e in &entries {
                let off = (e.offset - range.start) as usize;
                let r = bytes
                    .get(off..off + e.stored_len as usize)
                    .ok_or_else(|| Error::corrupt(what(), "object beyond the end of the read"))
                    .and_then(|stored| {
                        let raw = crate::engine::pack::decode_verified(e, stored, &what)?;
                        check_object(e.kind, &raw, &e.hash)?;
                        // Handed over at once: a range's contents are never all held twice.
                        match sink {
                            Some(sink) if wanted.contains(&e.hash) => sink(&e.hash, &raw)?,
                            _ => {}
                        }
                        Ok(stored)
                    });
                match r {
                    Ok(stored) => verified.push((e, stored)),
                    Err(x) if wanted.contains(&e.hash) => {
                        damaged.push((e.hash, problem(&key, Some(e.hash), &x.to_string())))
                    }
                    Err(_) => {}
                }
            }
            let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
            for (e, stored) in &verified {
                w.append(e, stored)?;
            }
            drop(w);
            pb.inc(range.end - range.start);
            Ok((verified.len() as u64, range.end - range.start, damaged))
        })?;
        pb.finish_and_clear();
        let w = writer.into_inner().unwrap_or_else(|p| p.into_inner());
        w.commit()?;
        for (n, b, d) in results {
            out.objects += n;
            out.bytes += b;
            out.damaged.extend(d);
        }
        Ok(out)
    }

    /// Fetches the records of run `run` (ID or prefix) from the default remote, without file
    /// content (`pull --metadata-only`); a run the remote does not have is not an error. The
    /// report names the damage met (the caller warns about it).
    pub fn pull_run_records(&self, run: &str, progress: bool) -> Result<PullReport> {
        let opts = PullOptions {
            runs: vec![run.to_string()],
            jobs: 8,
            progress,
            metadata_only: true,
        };
        match self.pull(None, &opts) {
            Ok(r) => Ok(r),
            Err(Error::RunNotFound(_)) => Ok(PullReport::default()),
            Err(e) => Err(e),
        }
    }
}
