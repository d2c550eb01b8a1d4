//! Remotes: `push`, `pull`, `clone`, fetching missing objects on checkout, and `verify
//! --remote`. The remote layout (`store-format.md`, "Remote layout"):
//!
//! - `store-remote.json`: format marker and the chunking parameters, created by the first push;
//! - `packs/<2 hex>/<pack id>.pack`: immutable packs in the local pack format, named by the
//!   hash of their table of contents; a pack that exists is never rewritten;
//! - `index/<segment id>.seg`: one immutable index segment per push (zstd JSON): the packs it
//!   uploaded with their tables of contents, and the runs and roots it published. Written only
//!   after all its packs, so a reader that sees a segment can read everything it names;
//! - `merged/<n>-<segment id>.seg`: a merged segment, the union of the `n` segments it lists
//!   in `covers`, so a reader makes one request where it would make `n`;
//! - `runs/<workflow>/<run id>.json`: a human-readable manifest of each sealed run;
//! - `tmp/` (directory remotes): values being written; a push removes those a killed writer
//!   left.
//!
//! What a remote holds is input written by others: every name and object read from it is
//! checked as local input is, and damage is passed over and reported by key, never allowed to
//! hide the rest of the remote.
//!
//! No shared file is ever read, modified and written back: concurrent pushes only add new
//! keys, so any number of writers can push at once without a lock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::engine::hash::{Hash, ObjectKind};
use crate::engine::index::{Commit, Root, RunRow};
use crate::engine::manifest::{EntryKind, RootRecord};
use crate::engine::pack::{Compression, Entry, PackBuf, PackWriter};
use crate::engine::store::{InitOptions, LockMode, Store};
use crate::error::{Error, Result};
use crate::remote::{Backend, RemoteSpec, STALE_UPLOAD_AGE};
use crate::workspace::maintenance::Problem;

/// Version of the remote layout this program writes and reads.
pub const REMOTE_FORMAT: u32 = 1;
/// The remote's marker object.
pub const MARKER_KEY: &str = "store-remote.json";
/// BLAKE3 `derive_key` context naming index segments.
pub const SEGMENT_CONTEXT: &str = "store 2026-11 remote segment v1";
/// Adjacent objects of one pack are fetched in one ranged read when the gap between them is
/// at most this many bytes.
const COALESCE_GAP: u64 = 1 << 20;
/// Upper bound of one ranged read.
const MAX_RANGE: u64 = 64 << 20;
/// A pack of records and manifests up to this size is fetched whole, the first time any of
/// its objects is needed: the next levels of a pull then find the rest local.
const WHOLE_META_PACK: u64 = 16 << 20;

/// `.store/remotes.json`: the configured remotes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remotes {
    /// The remote used when none is named.
    #[serde(default)]
    pub default: Option<String>,
    /// Remotes by name.
    #[serde(default)]
    pub remotes: BTreeMap<String, RemoteSpec>,
}

/// The marker object at the root of a remote.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Marker {
    format: String,
    version: u32,
    chunking: crate::engine::store::ChunkParams,
}

/// One object of a pack as a segment lists it: hash, kind, compression, raw length, stored
/// length, offset.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SegObject(Hash, u8, u8, u32, u32, u64);

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SegPack {
    id: Hash,
    size: u64,
    objects: Vec<SegObject>,
}

/// A run as a segment publishes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SegRun {
    workflow: String,
    run_id: String,
    parts: Vec<Hash>,
    snapshot: Option<Hash>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Segment {
    format: String,
    version: u32,
    created_ns: i64,
    packs: Vec<SegPack>,
    runs: Vec<SegRun>,
    roots: Vec<Hash>,
    /// In a merged segment: the segments whose union it is (absent in a plain one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    covers: Vec<Hash>,
}

/// What a remote holds, from all its segments.
#[derive(Default)]
struct RemoteState {
    objects: HashMap<Hash, (Hash, Entry)>,
    packs: HashMap<Hash, u64>,
    runs: BTreeMap<String, SegRun>,
    roots: HashSet<Hash>,
    /// Segments under `index/` (each one's content is in this state).
    segments: Vec<Hash>,
    /// Of those, the ones the merged segment read covers.
    covered: HashSet<Hash>,
    /// Packs holding no chunk (records and manifests only, 19.4) and at most
    /// [`WHOLE_META_PACK`] bytes, with their objects: computed on first use.
    meta_packs: std::sync::OnceLock<HashMap<Hash, Vec<Entry>>>,
    /// What a reader passes over and loses, by key: plain segments that fail their checks, and
    /// run publications whose names break the rule of names (16.3).
    damaged: Vec<Problem>,
    /// Merged segments passed over because they fail their checks: nothing is lost (the plain
    /// segments they cover remain), so only `verify --remote` reports them.
    damaged_merged: Vec<Problem>,
    /// The ids of the damaged segments: never counted as covered by a merge this push writes.
    damaged_ids: HashSet<Hash>,
    /// The segment key each run's current publication was read from (to name it in reports).
    run_keys: HashMap<String, String>,
}

impl SegObject {
    fn entry(&self) -> Result<Entry> {
        let kind = ObjectKind::from_u8(self.1).ok_or_else(|| Error::NewerFormat {
            what: format!("remote object {}", self.0),
            found: u32::from(self.1),
            supported: 7,
        })?;
        let compression = match self.2 {
            0 => Compression::Raw,
            1 => Compression::Zstd,
            c => {
                return Err(Error::NewerFormat {
                    what: format!("remote object {}", self.0),
                    found: u32::from(c),
                    supported: 1,
                })
            }
        };
        Ok(Entry {
            hash: self.0,
            kind,
            compression,
            raw_len: self.3,
            stored_len: self.4,
            offset: self.5,
        })
    }

    fn of(e: &Entry) -> SegObject {
        SegObject(
            e.hash,
            e.kind as u8,
            e.compression as u8,
            e.raw_len,
            e.stored_len,
            e.offset,
        )
    }
}

impl RemoteState {
    /// Adds segment `seg` (read from `key`). A run publication with an invalid workflow name or
    /// run ID (16.3) is passed over and recorded as damage: a name from a remote is held to the
    /// rule of local input before it can become a path or reach a terminal.
    fn add(&mut self, seg: Segment, key: &str) -> Result<()> {
        for p in seg.packs {
            self.packs.insert(p.id, p.size);
            for o in p.objects {
                let e = o.entry()?;
                self.objects.entry(e.hash).or_insert((p.id, e));
            }
        }
        for r in seg.runs {
            if let Some(bad) = [("workflow name", &r.workflow), ("run ID", &r.run_id)]
                .into_iter()
                .find(|(_, n)| !crate::run::valid_name(n))
            {
                self.damaged.push(problem(
                    key,
                    None,
                    &format!(
                        "run publication refused: {}",
                        crate::run::name_problem(bad.0, bad.1)
                    ),
                ));
                continue;
            }
            self.run_keys.insert(r.run_id.clone(), key.to_string());
            // A run is published several times while open (one part per tracking job); the
            // sealed publication wins, otherwise the parts accumulate.
            match self.runs.get_mut(&r.run_id) {
                Some(old) if old.snapshot.is_some() => {}
                Some(old) if r.snapshot.is_some() => *old = r,
                Some(old) => {
                    for p in r.parts {
                        if !old.parts.contains(&p) {
                            old.parts.push(p);
                        }
                    }
                }
                None => {
                    self.runs.insert(r.run_id.clone(), r);
                }
            }
        }
        self.roots.extend(seg.roots);
        Ok(())
    }

    /// See `meta_packs`.
    fn meta_packs(&self) -> &HashMap<Hash, Vec<Entry>> {
        self.meta_packs.get_or_init(|| {
            let mut data = HashSet::new();
            let mut meta: HashMap<Hash, Vec<Entry>> = HashMap::new();
            for (p, e) in self.objects.values() {
                if e.kind == ObjectKind::Chunk {
                    data.insert(*p);
                } else {
                    meta.entry(*p).or_default().push(e.clone());
                }
            }
            meta.retain(|p, _| {
                !data.contains(p) && self.packs.get(p).is_some_and(|n| *n <= WHOLE_META_PACK)
            });
            meta
        })
    }

    /// This state as one merged segment covering `covers`.
    fn merged(&self, covers: Vec<Hash>) -> Segment {
        let mut by_pack: BTreeMap<Hash, Vec<SegObject>> =
            self.packs.keys().map(|p| (*p, Vec::new())).collect();
        for (p, e) in self.objects.values() {
            by_pack.entry(*p).or_default().push(SegObject::of(e));
        }
        let packs = by_pack
            .into_iter()
            .map(|(id, mut objects)| {
                objects.sort_by_key(|o| o.5);
                SegPack {
                    id,
                    size: self.packs.get(&id).copied().unwrap_or(0),
                    objects,
                }
            })
            .collect();
        let mut roots: Vec<Hash> = self.roots.iter().copied().collect();
        roots.sort();
        Segment {
            format: "store-remote-segment".into(),
            version: REMOTE_FORMAT,
            created_ns: crate::engine::util::now_ns(),
            packs,
            runs: self.runs.values().cloned().collect(),
            roots,
            covers,
        }
    }
}

/// Options of [`Store::push`].
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// Runs to push (ID or unique prefix); empty pushes everything not yet there.
    pub runs: Vec<String>,
    /// Concurrent uploads.
    pub jobs: usize,
    /// Show a progress bar.
    pub progress: bool,
    /// Write a merged segment when at least this many segments are not covered by one (counting
    /// this push's); 0 never merges (what a per-job `track --push` uses, so that the jobs of a
    /// workflow do not all merge at once).
    pub merge_at: usize,
}

/// What a push did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PushReport {
    /// The remote's name.
    pub remote: String,
    /// Objects the remote lacked.
    pub objects: u64,
    /// Packs uploaded by this push.
    pub packs_uploaded: u64,
    /// Packs found complete on the remote already (an interrupted push being resumed).
    pub packs_skipped: u64,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Runs published.
    pub runs: Vec<String>,
    /// Partial uploads older than [`STALE_UPLOAD_AGE`] removed from the remote's `tmp/` (left
    /// there by killed pushes to a directory remote).
    pub stale_uploads_removed: Vec<crate::remote::PartialUpload>,
    /// The index segment written, if anything was new.
    pub segment: Option<String>,
    /// The merged segment written, if this push merged.
    pub merged: Option<String>,
    /// Requests made to the remote.
    pub requests: u64,
}

/// Options of [`Store::pull`].
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Runs to pull (ID or unique prefix); empty pulls everything.
    pub runs: Vec<String>,
    /// Concurrent downloads.
    pub jobs: usize,
    /// Show a progress bar.
    pub progress: bool,
    /// Fetch run records and manifests only; file content comes on demand at checkout.
    pub metadata_only: bool,
}

/// What a pull did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PullReport {
    /// The remote's name.
    pub remote: String,
    /// Objects downloaded (each verified against its hash).
    pub objects: u64,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Runs adopted into the local index.
    pub runs: Vec<String>,
    /// Tracked-path versions adopted.
    pub roots: u64,
    /// Requests made to the remote.
    pub requests: u64,
    /// Damage met on the remote, by key (and object, where known): segments that fail their
    /// checks, run publications with invalid names, objects that fail their hash or decoding
    /// checks or that no segment places. None of it was kept.
    pub damaged: Vec<Problem>,
    /// Runs and tracked-path versions not adopted because they need something damaged.
    pub skipped: Vec<Skipped>,
}

/// A run or tracked-path version a pull did not adopt, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    /// `run <run id>`, or `path <path>` for a version of a tracked path.
    pub what: String,
    /// The remote key of the damage (a pack, a segment), or `local store`.
    pub key: String,
    /// The damaged object it needs, when one is known.
    pub object: Option<String>,
    /// What is wrong.
    pub detail: String,
}

/// What `verify --remote` found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RemoteVerifyReport {
    /// The remote's name.
    pub remote: String,
    /// Index segments read.
    pub segments: u64,
    /// Packs checked.
    pub packs: u64,
    /// Objects re-hashed.
    pub objects: u64,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Everything wrong; empty means the remote is sound.
    pub problems: Vec<crate::workspace::maintenance::Problem>,
    /// Pack keys (with sizes) that no segment names: left by a push that was stopped before its
    /// segment (a resumed push reuses them) or written by a push still running. Not a problem:
    /// readers never see them.
    pub unreferenced: Vec<(String, u64)>,
    /// Values half-written under `tmp/` of a directory remote (key, size, age): left by a killed
    /// push, or being written by a running one. Not a problem (no reader sees them); a push
    /// removes those older than [`STALE_UPLOAD_AGE`].
    pub partial_uploads: Vec<crate::remote::PartialUpload>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
        && !name.starts_with('.')
}

/// A workflow name or run ID as one key component: bytes outside `[A-Za-z0-9._-]` become
/// `%XX`, so any name maps to one safe, reversible key.
pub fn key_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && !out.is_empty()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn pack_key(id: &Hash) -> String {
    let hex = id.to_hex();
    format!("packs/{}/{hex}.pack", &hex[..2])
}

fn run_key(workflow: &str, run_id: &str) -> String {
    format!(
        "runs/{}/{}.json",
        key_component(workflow),
        key_component(run_id)
    )
}

/// Runs `f` over `items` on `jobs` threads, stopping at the first error.
fn parallel<T: Send, R: Send>(
    items: Vec<T>,
    jobs: usize,
    f: impl Fn(T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let queue = Mutex::new(items.into_iter().enumerate());
    let results = Mutex::new(Vec::new());
    let failed = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                    return;
                }
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some((i, item)) = next else { return };
                match f(item) {
                    Ok(r) => {
                        if let Ok(mut v) = results.lock() {
                            v.push((i, r));
                        }
                    }
                    Err(e) => {
                        if let Ok(mut fl) = failed.lock() {
                            fl.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut v = results.into_inner().unwrap_or_else(|p| p.into_inner());
    v.sort_by_key(|(i, _)| *i);
    Ok(v.into_iter().map(|(_, r)| r).collect())
}

impl Store {
    fn remotes_path(&self) -> PathBuf {
        self.dir().join("remotes.json")
    }

    /// The configured remotes.
    pub fn remotes(&self) -> Result<Remotes> {
        let p = self.remotes_path();
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::corrupt(p.display().to_string(), e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Remotes::default()),
            Err(e) => Err(Error::io(&p, e)),
        }
    }

    /// Where a run's human-readable manifest is (or will be, once pushed) on the default
    /// remote: `<remote url>/runs/<workflow>/<run id>.json` (19.2); none without a default.
    pub(crate) fn run_manifest_url(&self, workflow: &str, run_id: &str) -> Result<Option<String>> {
        let r = self.remotes()?;
        Ok(r.default
            .as_ref()
            .and_then(|d| r.remotes.get(d))
            .map(|spec| {
                format!(
                    "{}/{}",
                    spec.url.trim_end_matches('/'),
                    run_key(workflow, run_id)
                )
            }))
    }

    fn update_remotes(&self, f: impl FnOnce(&mut Remotes) -> Result<()>) -> Result<()> {
        // Exclusive: two `remote add` at once must not lose one another's update.
        let _lock = self.lock(LockMode::Exclusive)?;
        let mut r = self.remotes()?;
        f(&mut r)?;
        let json = serde_json::to_vec_pretty(&r).map_err(|e| Error::Invalid(e.to_string()))?;
        crate::engine::util::atomic_write(&self.remotes_path(), &json)
    }

    /// Adds remote `name`; the first remote added becomes the default.
    pub fn remote_add(&self, name: &str, spec: RemoteSpec, make_default: bool) -> Result<()> {
        if !valid_name(name) {
            return Err(Error::Invalid(format!(
                "invalid remote name {name:?} (letters, digits, '-', '_', '.')"
            )));
        }
        spec.validate()?;
        self.update_remotes(|r| {
            if r.remotes.contains_key(name) {
                return Err(Error::Invalid(format!("remote {name} already exists")));
            }
            r.remotes.insert(name.to_string(), spec);
            if make_default || r.default.is_none() {
                r.default = Some(name.to_string());
            }
            Ok(())
        })
    }

    /// Removes remote `name` (and its cached index).
    pub fn remote_remove(&self, name: &str) -> Result<()> {
        self.update_remotes(|r| {
            if r.remotes.remove(name).is_none() {
                return Err(Error::Invalid(format!("no remote named {name}")));
            }
            if r.default.as_deref() == Some(name) {
                r.default = r.remotes.keys().next().cloned();
            }
            Ok(())
        })?;
        let cache = self.remote_cache(name);
        if cache.exists() {
            fs::remove_dir_all(&cache).map_err(|e| Error::io(&cache, e))?;
        }
        Ok(())
    }

    /// The remote named, or the default one.
    pub fn remote_spec(&self, name: Option<&str>) -> Result<(String, RemoteSpec)> {
        let r = self.remotes()?;
        let name = match name.map(str::to_string).or(r.default.clone()) {
            Some(n) => n,
            None => {
                return Err(Error::Invalid(
                    "no remote configured (store remote add NAME URL)".into(),
                ))
            }
        };
        let spec = r
            .remotes
            .get(&name)
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("no remote named {name}")))?;
        Ok((name, spec))
    }

    fn remote_cache(&self, name: &str) -> PathBuf {
        self.dir().join("remotes").join(name)
    }

    /// Reads every index segment of the remote, downloading those not cached yet.
    fn remote_state(&self, name: &str, backend: &dyn Backend) -> Result<RemoteState> {
        self.remote_state_from(name, backend, Segments::Cached)
    }

    /// [`Store::remote_state`], reading segments as `how` says.
    fn remote_state_from(
        &self,
        name: &str,
        backend: &dyn Backend,
        how: Segments,
    ) -> Result<RemoteState> {
        if let Some(b) = backend.get(MARKER_KEY)? {
            let m: Marker = serde_json::from_slice(&b).map_err(|e| {
                Error::corrupt(format!("remote {name} {MARKER_KEY}"), e.to_string())
            })?;
            if m.version > REMOTE_FORMAT {
                return Err(Error::NewerFormat {
                    what: format!("remote {name}"),
                    found: m.version,
                    supported: REMOTE_FORMAT,
                });
            }
        }
        let cache = self.remote_cache(name).join("segments");
        fs::create_dir_all(&cache).map_err(|e| Error::io(&cache, e))?;
        let listed = backend.list("index/")?;
        let mut state = RemoteState::default();
        for (key, _) in listed {
            if let Some(id) = key
                .strip_prefix("index/")
                .and_then(|k| k.strip_suffix(".seg"))
                .and_then(|h| h.parse::<Hash>().ok())
            {
                state.segments.push(id);
            }
        }
        state.segments.sort();
        // The merged segment covering the most (ties: the smallest id) stands for those. A
        // damaged one is passed over (the plain segments it covers remain) and reported by
        // `verify --remote`.
        let mut merged: Vec<(u64, Hash, String)> = backend
            .list("merged/")?
            .into_iter()
            .filter_map(|(key, _)| {
                let (n, id) = key
                    .strip_prefix("merged/")?
                    .strip_suffix(".seg")?
                    .split_once('-')?;
                Some((n.parse::<u64>().ok()?, id.parse::<Hash>().ok()?, key))
            })
            .collect();
        merged.sort_by_key(|a| (std::cmp::Reverse(a.0), a.1));
        for (_, id, key) in merged {
            match load_segment(name, backend, &cache, id, &key, how) {
                Ok(mut m) => {
                    state.covered = std::mem::take(&mut m.covers).into_iter().collect();
                    state.add(m, &key)?;
                    break;
                }
                Err(Error::Corrupt { detail, .. }) => {
                    state.damaged_merged.push(problem(&key, None, &detail))
                }
                Err(e) => return Err(e),
            }
        }
        let todo: Vec<(Hash, String)> = state
            .segments
            .iter()
            .filter(|id| !state.covered.contains(id))
            .map(|id| (*id, format!("index/{id}.seg")))
            .collect();
        let segs = parallel(todo, 8, |(id, key)| {
            Ok((
                id,
                key.clone(),
                load_segment(name, backend, &cache, id, &key, how),
            ))
        })?;
        for (id, key, s) in segs {
            match s {
                Ok(s) => state.add(s, &key)?,
                // One damaged segment must not hide the rest of a shared remote: what it named
                // is passed over (a reader reports it by key, `verify --remote` as a problem),
                // everything else is read. What it published can be published again: a push
                // that reads the remote's copy (the writer, once it drops its cached one from
                // `.store/remotes/<name>/segments/`) finds those runs and objects missing.
                Err(Error::Corrupt { detail, .. }) => {
                    state.damaged.push(problem(&key, None, &detail));
                    state.damaged_ids.insert(id);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(state)
    }

    /// Pushes runs (or everything) to a remote: only objects the remote lacks are uploaded,
    /// packed into new packs; then one index segment publishes them.
    pub fn push(&self, remote: Option<&str>, opts: &PushOptions) -> Result<PushReport> {
        let _lock = self.lock(LockMode::Shared)?;
        let (name, spec) = self.remote_spec(remote)?;
        let backend = spec.open()?;
        let marker = Marker {
            format: "store-remote".into(),
            version: REMOTE_FORMAT,
            chunking: self.config().chunking,
        };
        if backend.head(MARKER_KEY)?.is_none() {
            let b =
                serde_json::to_vec_pretty(&marker).map_err(|e| Error::Invalid(e.to_string()))?;
            backend.put_new(MARKER_KEY, b)?;
        }
        let state = self.remote_state(&name, &*backend)?;
        let mut report = PushReport {
            remote: name.clone(),
            ..PushReport::default()
        };
        // What killed pushes left half-written (directory remotes): removed once stale, so a
        // push still running elsewhere is not hurt. Never a reason to fail this push.
        report.stale_uploads_removed = backend
            .remove_stale_uploads(STALE_UPLOAD_AGE)
            .unwrap_or_default();

        // What to publish.
        let (runs, roots, wanted) = if opts.runs.is_empty() {
            let runs = self.index().runs(None)?;
            let roots: Vec<Root> = self.index().root_history(None)?;
            let mut wanted = Vec::new();
            let packs = self.index().packs()?;
            for (p, _) in packs {
                let objs = self.index().objects_in_pack(&p)?;
                wanted.extend(objs.into_iter().map(|(h, ..)| h));
            }
            (runs, roots, wanted)
        } else {
            let mut runs = Vec::new();
            let mut live = HashSet::new();
            for id in &opts.runs {
                let run = self.resolve_run(id)?;
                live.extend(self.run_closure(&run)?);
                runs.push(run);
            }
            (runs, Vec::new(), live.into_iter().collect())
        };
        let mut missing: Vec<Hash> = wanted
            .into_iter()
            .filter(|h| !state.objects.contains_key(h))
            .collect();
        missing.sort();
        missing.dedup();
        let locs = self.index().locate_many(&missing)?;
        let mut located: Vec<(Hash, Entry)> = Vec::with_capacity(missing.len());
        for (h, l) in missing.iter().zip(locs) {
            let l = l.ok_or(Error::ObjectNotFound(h.to_hex()))?;
            located.push((l.pack, l.entry));
        }
        // Deterministic packing (by local pack, then offset): a push resumed after an
        // interruption builds the same packs again and finds the finished ones in place.
        // Records and manifests go into packs of their own, ahead of the chunks: a clone or a
        // lazy checkout reads them without touching the data packs.
        located.sort_by_key(|a| (a.1.kind == ObjectKind::Chunk, a.0, a.1.offset));
        report.objects = located.len() as u64;
        let target = self.config().pack_target_size;
        let mut groups: Vec<Vec<(Hash, Entry)>> = Vec::new();
        let mut size = 0u64;
        let mut last_chunk = false;
        for item in located {
            let chunk = item.1.kind == ObjectKind::Chunk;
            if groups.is_empty() || size >= target || chunk != last_chunk {
                last_chunk = chunk;
                groups.push(Vec::new());
                size = 0;
            }
            size += u64::from(item.1.stored_len);
            if let Some(g) = groups.last_mut() {
                g.push(item);
            }
        }
        let total: u64 = groups
            .iter()
            .flatten()
            .map(|(_, e)| u64::from(e.stored_len))
            .sum();
        let pb = crate::workspace::add::progress_bar(opts.progress, total, "uploading");
        let uploaded = parallel(groups, opts.jobs.max(1), |group| {
            let mut buf = PackBuf::default();
            let mut i = 0;
            while i < group.len() {
                // Adjacent objects of one local pack are read with one positioned read.
                let (pack, first) = &group[i];
                let mut j = i + 1;
                let mut end = first.offset + u64::from(first.stored_len);
                while j < group.len()
                    && group[j].0 == *pack
                    && group[j].1.offset == end
                    && end - first.offset < (8 << 20)
                {
                    end += u64::from(group[j].1.stored_len);
                    j += 1;
                }
                let span = self
                    .reader(pack)?
                    .read_span(first.offset, end - first.offset)?;
                for (_, e) in &group[i..j] {
                    let off = (e.offset - first.offset) as usize;
                    let stored = &span[off..off + e.stored_len as usize];
                    buf.append(e.hash, e.kind, e.compression, e.raw_len, stored);
                }
                i = j;
            }
            let logical: u64 = group.iter().map(|(_, e)| u64::from(e.stored_len)).sum();
            let (id, bytes, entries) = buf.finish();
            let key = pack_key(&id);
            let len = bytes.len() as u64;
            let fresh = match backend.head(&key)? {
                Some(n) if n == len => false,
                _ => backend.put_new(&key, bytes)?,
            };
            pb.inc(logical);
            Ok((
                SegPack {
                    id,
                    size: len,
                    objects: entries.iter().map(SegObject::of).collect(),
                },
                fresh,
            ))
        })?;
        pb.finish_and_clear();
        let mut seg = Segment {
            format: "store-remote-segment".into(),
            version: REMOTE_FORMAT,
            created_ns: crate::engine::util::now_ns(),
            packs: Vec::new(),
            runs: Vec::new(),
            roots: Vec::new(),
            covers: Vec::new(),
        };
        for (p, fresh) in uploaded {
            if fresh {
                report.packs_uploaded += 1;
                report.bytes_uploaded += p.size;
            } else {
                report.packs_skipped += 1;
            }
            seg.packs.push(p);
        }
        for run in &runs {
            let parts = self.index().run_parts(&run.run_id)?;
            let r = SegRun {
                workflow: run.workflow.clone(),
                run_id: run.run_id.clone(),
                parts,
                snapshot: run.snapshot,
            };
            let known = state.runs.get(&run.run_id).is_some_and(|old| {
                old.snapshot == r.snapshot
                    && (old.snapshot.is_some() || r.parts.iter().all(|p| old.parts.contains(p)))
            });
            if !known {
                report.runs.push(run.run_id.clone());
                seg.runs.push(r);
            }
        }
        seg.roots = roots
            .iter()
            .map(|r| r.record)
            .filter(|h| !state.roots.contains(h))
            .collect();
        seg.roots.sort();
        seg.roots.dedup();
        let mut written = None;
        if !(seg.packs.is_empty() && seg.runs.is_empty() && seg.roots.is_empty()) {
            let bytes = encode_segment(&seg)?;
            let id = segment_id(&bytes);
            backend.put_new(&format!("index/{id}.seg"), bytes.clone())?;
            let cache = self.remote_cache(&name).join("segments");
            crate::engine::util::atomic_write(&cache.join(format!("{id}.seg")), &bytes)?;
            report.segment = Some(id.to_hex());
            written = Some((seg, id));
        }
        // Human-readable manifests of the sealed runs, for people browsing the remote.
        for run in runs.iter().filter(|r| r.snapshot.is_some()) {
            let key = run_key(&run.workflow, &run.run_id);
            if state
                .runs
                .get(&run.run_id)
                .is_some_and(|r| r.snapshot.is_some())
            {
                continue;
            }
            let doc = self.run_document(run, &spec.url, &key)?;
            backend.put_new(&key, doc)?;
        }
        if let Some((seg, id)) = written {
            report.merged = self.merge_segments(&name, &*backend, state, seg, id, opts.merge_at)?;
        }
        report.requests = backend.requests();
        Ok(report)
    }

    /// After a push wrote segment `id` (`seg`): when at least `merge_at` segments are outside
    /// the merged segment the push read (this one included), writes a new merged segment, the
    /// union of everything the push saw, covering every segment it read and its own. Its content
    /// is what a reader of those segments would combine, so readers may use either.
    fn merge_segments(
        &self,
        name: &str,
        backend: &dyn Backend,
        mut state: RemoteState,
        seg: Segment,
        id: Hash,
        merge_at: usize,
    ) -> Result<Option<String>> {
        let uncovered = state
            .segments
            .iter()
            .filter(|s| !state.covered.contains(s) && !state.damaged_ids.contains(s) && **s != id)
            .count()
            + 1;
        if merge_at == 0 || uncovered < merge_at {
            return Ok(None);
        }
        let key = format!("index/{id}.seg");
        state.add(seg, &key)?;
        // Everything the push read: the listed segments, those the merged one it read covers
        // (all listed, unless the listing lagged), and its own. Not a damaged segment: its
        // content is not in this union, and readers must keep reporting it.
        let mut covers: Vec<Hash> = state
            .segments
            .iter()
            .filter(|s| !state.damaged_ids.contains(s))
            .copied()
            .collect();
        covers.extend(state.covered.iter().copied());
        covers.push(id);
        covers.sort();
        covers.dedup();
        let n = covers.len();
        let bytes = encode_segment(&state.merged(covers))?;
        let mid = segment_id(&bytes);
        backend.put_new(&format!("merged/{n:010}-{mid}.seg"), bytes.clone())?;
        let cache = self.remote_cache(name).join("segments");
        crate::engine::util::atomic_write(&cache.join(format!("{mid}.seg")), &bytes)?;
        Ok(Some(mid.to_hex()))
    }

    /// Every object a run needs: its records, manifests and chunks.
    fn run_closure(&self, run: &RunRow) -> Result<HashSet<Hash>> {
        let mut records: Vec<Hash> = self.index().run_parts(&run.run_id)?;
        records.extend(run.snapshot);
        self.reachable_from(&records, Vec::new())
    }

    /// The `runs/<workflow>/<run id>.json` document of a sealed run.
    fn run_document(&self, run: &RunRow, url: &str, key: &str) -> Result<Vec<u8>> {
        let snap = self.run_snapshot(run)?;
        let manifest_url = format!("{}/{key}", url.trim_end_matches('/'));
        let files: Vec<serde_json::Value> = snap
            .entries
            .iter()
            .map(|e| {
                let mut v = crate::run::entry_metadata(&run.workflow, &run.run_id, e);
                if let Some(m) = v.as_object_mut() {
                    let mut urls = e.remote_urls.clone();
                    urls.push(manifest_url.clone());
                    m.insert("remote_urls".into(), serde_json::json!(urls));
                }
                v
            })
            .collect();
        let doc = serde_json::json!({
            "format": "store-run-manifest",
            "version": REMOTE_FORMAT,
            "workflow": run.workflow,
            "run_id": run.run_id,
            "status": "sealed",
            "created_ns": snap.created_ns,
            "sealed_ns": snap.sealed_ns,
            "snapshot": run.snapshot,
            "code": snap.code,
            "files": files,
        });
        serde_json::to_vec_pretty(&doc).map_err(|e| Error::Invalid(e.to_string()))
    }

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
            let mut all: Vec<Hash> = state.objects.keys().copied().collect();
            all.sort();
            let f = self.fetch_objects(&ctx, &self.absent(&all)?)?;
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
    fn run_rows(
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
    fn tainted(
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

    /// Makes sure every object under `starts` is local, fetching what is missing from the
    /// default remote when one is configured. Returns the objects fetched. Damage on the way
    /// fails it (exit 5, naming the key): whoever asked needs every one of those objects.
    pub(crate) fn fetch_missing(&self, starts: &[Hash]) -> Result<u64> {
        let remotes = self.remotes()?;
        if remotes.remotes.is_empty() || !self.missing_under(starts)? {
            return Ok(0);
        }
        let (name, spec) = self.remote_spec(None)?;
        let backend = spec.open()?;
        let state = self.remote_state(&name, &*backend)?;
        let ctx = Fetch {
            name: &name,
            backend: &*backend,
            state: &state,
            jobs: 4,
            progress: true,
        };
        let f = self.fetch_closure(&ctx, starts, true)?;
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

    /// True when some object under `starts` is not in the local index. Walks the graph level
    /// by level with one index query per level.
    fn missing_under(&self, starts: &[Hash]) -> Result<bool> {
        let mut seen = HashSet::new();
        let mut level: Vec<Hash> = starts.to_vec();
        let mut chunks = Vec::new();
        while !level.is_empty() {
            level.retain(|h| seen.insert(*h));
            let locs = self.index().locate_many(&level)?;
            let mut next = Vec::new();
            for (h, l) in level.iter().zip(locs) {
                let Some(l) = l else { return Ok(true) };
                let bytes = self.reader(&l.pack)?.read(&l.entry)?;
                children(h, l.entry.kind, &bytes, &mut next, &mut chunks)?;
            }
            level = next;
        }
        chunks.sort();
        chunks.dedup();
        Ok(!self.absent(&chunks)?.is_empty())
    }

    /// Those of `hashes` that the local index does not hold (one query).
    fn absent(&self, hashes: &[Hash]) -> Result<Vec<Hash>> {
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
    fn fetch_closure(&self, ctx: &Fetch<'_>, starts: &[Hash], chunks: bool) -> Result<Fetched> {
        let mut total = Fetched::default();
        let mut seen: HashSet<Hash> = HashSet::new();
        let mut level: Vec<Hash> = starts.to_vec();
        let mut chunk_set: Vec<Hash> = Vec::new();
        while !level.is_empty() {
            level.retain(|h| seen.insert(*h));
            total.add(self.fetch_objects(ctx, &self.absent(&level)?)?);
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
            total.add(self.fetch_objects(ctx, &self.absent(&chunk_set)?)?);
        }
        Ok(total)
    }

    /// Downloads `hashes` with ranged reads of the remote packs holding them, checks each
    /// against its hash and decodes it as its reader would ([`check_object`]), writes those that
    /// pass into new local packs and commits those. Those that fail (or that no segment places,
    /// or whose pack is missing or short) are returned as damage, by key.
    fn fetch_objects(&self, ctx: &Fetch<'_>, hashes: &[Hash]) -> Result<Fetched> {
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
            entries.sort_by_key(|e| e.offset);
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

    /// Checks a remote: every segment is downloaded again and checked (the local cache is not
    /// what is under test), every pack named by its index exists with its size, and every
    /// object (or, with `sample`, the objects of that many packs) decodes to its hash.
    pub fn verify_remote(
        &self,
        remote: Option<&str>,
        sample: Option<usize>,
        jobs: usize,
    ) -> Result<RemoteVerifyReport> {
        let (name, spec) = self.remote_spec(remote)?;
        let backend = spec.open()?;
        let state = self.remote_state_from(&name, &*backend, Segments::Fresh)?;
        let mut report = RemoteVerifyReport {
            remote: name.clone(),
            segments: state.segments.len() as u64,
            problems: [state.damaged_merged.clone(), state.damaged.clone()].concat(),
            ..RemoteVerifyReport::default()
        };
        // Every record a run publication names must be on the remote, and be that run's.
        let mut published: HashMap<Hash, &str> = HashMap::new();
        for r in state.runs.values() {
            let key = state
                .run_keys
                .get(&r.run_id)
                .map_or("index/", String::as_str);
            for h in r.parts.iter().chain(r.snapshot.iter()) {
                published.insert(*h, &r.run_id);
                if !state.objects.contains_key(h) {
                    report.problems.push(problem(
                        key,
                        Some(*h),
                        &format!(
                            "a record of run {} that no segment places on the remote",
                            r.run_id
                        ),
                    ));
                }
            }
        }
        let mut roots: Vec<&Hash> = state.roots.iter().collect();
        roots.sort();
        for h in roots {
            if !state.objects.contains_key(h) {
                report.problems.push(problem(
                    "index/",
                    Some(*h),
                    "a root record that no segment places on the remote",
                ));
            }
        }
        let mut by_pack: BTreeMap<Hash, Vec<Entry>> = BTreeMap::new();
        for (p, e) in state.objects.values() {
            by_pack.entry(*p).or_default().push(e.clone());
        }
        let mut packs: Vec<(Hash, u64)> = state.packs.iter().map(|(p, s)| (*p, *s)).collect();
        packs.sort();
        if let Some(n) = sample {
            // A spread-out sample: every k-th pack in hash order (hash order is random).
            let k = packs.len().div_ceil(n.max(1)).max(1);
            packs = packs.into_iter().step_by(k).collect();
        }
        let results = parallel(packs, jobs.max(1), |(pack, size)| {
            let key = pack_key(&pack);
            let mut problems = Vec::new();
            let mut objects = 0u64;
            let mut bytes = 0u64;
            match backend.head(&key)? {
                None => problems.push(problem(&key, None, "listed in the index but missing")),
                Some(n) if n != size => problems.push(problem(
                    &key,
                    None,
                    &format!("has {n} bytes, the index says {size}"),
                )),
                Some(_) => {
                    let data = backend.get_range(&key, 0..size)?;
                    bytes = size;
                    for e in by_pack.get(&pack).map(Vec::as_slice).unwrap_or(&[]) {
                        objects += 1;
                        let end = e.offset.saturating_add(u64::from(e.stored_len));
                        let what = || format!("remote {name} {key}");
                        // Checked as a reader checks it: hash, then decoding (names in trees,
                        // duplicates, run names), then that what it references is there.
                        let r = data
                            .get(e.offset as usize..end as usize)
                            .ok_or_else(|| Error::corrupt(what(), "object beyond the end"))
                            .and_then(|s| crate::engine::pack::decode_verified(e, s, &what))
                            .and_then(|raw| {
                                let run_id = check_object(e.kind, &raw, &e.hash)?;
                                Ok((raw, run_id))
                            });
                        let (raw, run_id) = match r {
                            Ok(x) => x,
                            Err(x) => {
                                problems.push(problem(&key, Some(e.hash), &x.to_string()));
                                continue;
                            }
                        };
                        if let (Some(id), Some(named)) = (run_id, published.get(&e.hash)) {
                            if id != *named {
                                problems.push(problem(
                                    &key,
                                    Some(e.hash),
                                    &format!(
                                        "a record of run {id:?}, published as one of run {named}"
                                    ),
                                ));
                            }
                        }
                        let (mut next, mut chunks) = (Vec::new(), Vec::new());
                        if e.kind != ObjectKind::Chunk
                            && children(&e.hash, e.kind, &raw, &mut next, &mut chunks).is_ok()
                        {
                            if let Some(c) = next
                                .iter()
                                .chain(chunks.iter())
                                .find(|c| !state.objects.contains_key(c))
                            {
                                problems.push(problem(
                                    &key,
                                    Some(e.hash),
                                    &format!(
                                        "references {c}, which no segment places on the remote"
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
            Ok((problems, objects, bytes))
        })?;
        for (p, o, b) in results {
            report.packs += 1;
            report.objects += o;
            report.bytes += b;
            report.problems.extend(p);
        }
        let named: HashSet<String> = state.packs.keys().map(pack_key).collect();
        report.unreferenced = backend
            .list("packs/")?
            .into_iter()
            .filter(|(k, _)| !named.contains(k))
            .collect();
        report.unreferenced.sort();
        report.partial_uploads = backend.partial_uploads()?;
        Ok(report)
    }
}

/// A remote run's index rows: the parts a store lacks, and the seal.
type RunRows = (
    Vec<crate::engine::index::RunPartRow>,
    Option<crate::engine::index::SealRow>,
);

/// What one fetch downloaded, and the damage it met (by object).
#[derive(Default)]
struct Fetched {
    objects: u64,
    bytes: u64,
    damaged: BTreeMap<Hash, Problem>,
}

impl Fetched {
    fn add(&mut self, o: Fetched) {
        self.objects += o.objects;
        self.bytes += o.bytes;
        self.damaged.extend(o.damaged);
    }
}

/// Decodes object `h` (of `kind`, content `raw`, already checked against its hash) as its
/// readers will, so that nothing a reader would refuse is taken from a remote: manifests (tree
/// entry names, duplicates, lengths), root records, run objects (their names and entry paths,
/// held to the rules of local input). Returns the run ID of a run object.
fn check_object(kind: ObjectKind, raw: &[u8], h: &Hash) -> Result<Option<String>> {
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
fn check_entry_paths(entries: &[crate::run::RunEntry]) -> Result<()> {
    for e in entries {
        crate::run::safe_relative(&e.path)?;
    }
    Ok(())
}

/// What object `h` (of `kind`, content `bytes`) references: manifests and records go to
/// `next`, chunks to `chunks`.
fn children(
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

fn problem(key: &str, object: Option<Hash>, detail: &str) -> Problem {
    Problem {
        pack: key.to_string(),
        object: object.map(|h| h.to_hex()),
        detail: detail.to_string(),
    }
}

fn find_remote_run<'a>(state: &'a RemoteState, id: &str, remote: &str) -> Result<&'a SegRun> {
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
struct Fetch<'a> {
    name: &'a str,
    backend: &'a dyn Backend,
    state: &'a RemoteState,
    jobs: usize,
    progress: bool,
}

/// Writes fetched objects into local packs.
struct FetchWriter<'a> {
    store: &'a Store,
    current: Option<PackWriter>,
    finished: Vec<crate::engine::pack::FinishedPack>,
}

impl FetchWriter<'_> {
    fn append(&mut self, e: &Entry, stored: &[u8]) -> Result<()> {
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

    fn commit(mut self) -> Result<()> {
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

/// How segments are read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Segments {
    /// From the local cache when there, else downloaded (and cached).
    Cached,
    /// Always downloaded and checked (`verify --remote`: the remote's copy is under test).
    Fresh,
}

/// A segment (plain or merged) from the local cache (unless `how` is `Fresh`), else
/// downloaded, checked against its id and cached.
fn load_segment(
    name: &str,
    backend: &dyn Backend,
    cache: &Path,
    id: Hash,
    key: &str,
    how: Segments,
) -> Result<Segment> {
    let local = cache.join(format!("{id}.seg"));
    // A cached copy damaged locally is not the remote's fault: it is downloaded again.
    let cached = match how {
        Segments::Cached => fs::read(&local).ok().filter(|b| segment_id(b) == id),
        Segments::Fresh => None,
    };
    let bytes = match cached {
        Some(b) => b,
        None => {
            let b = backend
                .get(key)?
                .ok_or_else(|| crate::remote::remote_error(name, key, "listed but missing"))?;
            if segment_id(&b) != id {
                return Err(Error::corrupt(
                    format!("remote {name} {key}"),
                    "segment fails its hash check",
                ));
            }
            crate::engine::util::atomic_write(&local, &b)?;
            b
        }
    };
    decode_segment(&bytes, &format!("remote {name} {key}"))
}

fn segment_id(bytes: &[u8]) -> Hash {
    Hash(
        *blake3::Hasher::new_derive_key(SEGMENT_CONTEXT)
            .update(bytes)
            .finalize()
            .as_bytes(),
    )
}

fn encode_segment(seg: &Segment) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(seg).map_err(|e| Error::Invalid(e.to_string()))?;
    zstd::bulk::compress(&json, 3).map_err(|e| Error::io("<segment>", e))
}

fn decode_segment(bytes: &[u8], what: &str) -> Result<Segment> {
    let json = zstd::stream::decode_all(bytes).map_err(|e| {
        Error::corrupt(
            what.to_string(),
            format!("segment does not decompress: {e}"),
        )
    })?;
    let v: serde_json::Value = serde_json::from_slice(&json)
        .map_err(|e| Error::corrupt(what.to_string(), e.to_string()))?;
    let version = v.get("version").and_then(|x| x.as_u64()).unwrap_or(0);
    if version > u64::from(REMOTE_FORMAT) {
        return Err(Error::NewerFormat {
            what: what.to_string(),
            found: version as u32,
            supported: REMOTE_FORMAT,
        });
    }
    serde_json::from_value(v).map_err(|e| Error::corrupt(what.to_string(), e.to_string()))
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
