//! Index segments: their encoding, loading (checked against their ids, damage passed over
//! and reported) and the remote state built from them (19.3).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::hash::{Hash, ObjectKind};
use crate::engine::pack::{Compression, Entry};
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::remote::Backend;
use crate::workspace::maintenance::Problem;

use super::*;

/// The marker object at the root of a remote.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Marker {
    pub(super) format: String,
    pub(super) version: u32,
    pub(super) chunking: crate::engine::store::ChunkParams,
}

/// One object of a pack as a segment lists it: hash, kind, compression, raw length, stored
/// length, offset.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct SegObject(
    pub(super) Hash,
    pub(super) u8,
    pub(super) u8,
    pub(super) u32,
    pub(super) u32,
    pub(super) u64,
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct SegPack {
    pub(super) id: Hash,
    pub(super) size: u64,
    pub(super) objects: Vec<SegObject>,
}

/// A run as a segment publishes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SegRun {
    pub(super) workflow: String,
    pub(super) run_id: String,
    pub(super) parts: Vec<Hash>,
    pub(super) snapshot: Option<Hash>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Segment {
    pub(super) format: String,
    pub(super) version: u32,
    pub(super) created_ns: i64,
    pub(super) packs: Vec<SegPack>,
    pub(super) runs: Vec<SegRun>,
    pub(super) roots: Vec<Hash>,
    /// In a merged segment: the segments whose union it is (absent in a plain one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) covers: Vec<Hash>,
    /// Run IDs `remote gc` took back (19.9): readers leave them out of their view.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) removed: Vec<String>,
    /// Packs `remote gc` condemned, each with the generation (ns) of the event: still read,
    /// never deduplicated against by a push.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) condemned: Vec<(Hash, i64)>,
    /// Packs `remote gc` deleted (out of readers' view), with the generation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) gone: Vec<(Hash, i64)>,
    /// Packs brought back to normal (by gc, or by a push listing a condemned or gone pack
    /// again), with the generation. A pack's status is its latest event's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) revived: Vec<(Hash, i64)>,
}

/// A pack's status under gc's tombstones (19.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PackStatus {
    /// In view, and deduplicated against.
    Normal,
    /// In view (readers still read it), but a push uploads its objects again rather than
    /// relying on it.
    Condemned,
    /// Deleted: out of view.
    Gone,
}

impl Segment {
    /// An empty plain segment.
    pub(super) fn new() -> Segment {
        Segment {
            format: "store-remote-segment".into(),
            version: REMOTE_FORMAT,
            created_ns: crate::engine::util::now_ns(),
            packs: Vec::new(),
            runs: Vec::new(),
            roots: Vec::new(),
            covers: Vec::new(),
            removed: Vec::new(),
            condemned: Vec::new(),
            gone: Vec::new(),
            revived: Vec::new(),
        }
    }
}

/// What a remote holds, from all its segments.
#[derive(Default)]
pub(super) struct RemoteState {
    pub(super) objects: HashMap<Hash, (Hash, Entry)>,
    pub(super) packs: HashMap<Hash, u64>,
    pub(super) runs: BTreeMap<String, SegRun>,
    pub(super) roots: HashSet<Hash>,
    /// Segments under `index/` (each one's content is in this state).
    pub(super) segments: Vec<Hash>,
    /// Of those, the ones the merged segment read covers.
    pub(super) covered: HashSet<Hash>,
    /// Packs holding no chunk (records and manifests only, 19.4) and at most
    /// [`WHOLE_META_PACK`] bytes, with their objects: computed on first use.
    pub(super) meta_packs: std::sync::OnceLock<HashMap<Hash, Vec<Entry>>>,
    /// What a reader passes over and loses, by key: plain segments that fail their checks, and
    /// run publications whose names break the rule of names (16.3).
    pub(super) damaged: Vec<Problem>,
    /// Merged segments passed over because they fail their checks: nothing is lost (the plain
    /// segments they cover remain), so only `verify --remote` reports them.
    pub(super) damaged_merged: Vec<Problem>,
    /// The ids of the damaged segments: never counted as covered by a merge this push writes.
    pub(super) damaged_ids: HashSet<Hash>,
    /// The segment key each run's current publication was read from (to name it in reports).
    pub(super) run_keys: HashMap<String, String>,
    /// Runs taken back by `remote gc` (out of `runs`).
    pub(super) removed: HashSet<String>,
    /// The latest condemnation of each pack condemned by `remote gc`.
    pub(super) condemns: HashMap<Hash, i64>,
    /// The latest deletion of each pack `remote gc` deleted.
    pub(super) gones: HashMap<Hash, i64>,
    /// The latest revival of each pack revived.
    pub(super) revivals: HashMap<Hash, i64>,
    /// Packs out of view (gone): size and the objects placed in them. Not in `packs` or
    /// `objects`; kept for merges.
    pub(super) gone_packs: HashMap<Hash, (u64, Vec<Entry>)>,
    /// Placements of objects other than the one in `objects` (another pack holding the same
    /// object): where an object goes when its pack is condemned or gone.
    pub(super) extra_places: Vec<(Hash, Entry)>,
}

impl SegObject {
    pub(super) fn entry(&self) -> Result<Entry> {
        let kind = ObjectKind::from_u8(self.1).ok_or_else(|| Error::NewerFormat {
            what: format!("remote object {}", self.0),
            found: u32::from(self.1),
            supported: 7,
        })?;
        let compression = Compression::from_u8(self.2).ok_or_else(|| Error::NewerFormat {
            what: format!("remote object {}", self.0),
            found: u32::from(self.2),
            supported: Compression::Group as u32,
        })?;
        Ok(Entry {
            hash: self.0,
            kind,
            compression,
            raw_len: self.3,
            stored_len: self.4,
            offset: self.5,
        })
    }

    pub(super) fn of(e: &Entry) -> SegObject {
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
    pub(super) fn add(&mut self, seg: Segment, key: &str) -> Result<()> {
        for p in seg.packs {
            self.packs.insert(p.id, p.size);
            for o in p.objects {
                let e = o.entry()?;
                match self.objects.entry(e.hash) {
                    std::collections::hash_map::Entry::Occupied(at) => {
                        if at.get().0 != p.id {
                            self.extra_places.push((p.id, e));
                        }
                    }
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert((p.id, e));
                    }
                }
            }
        }
        self.removed.extend(seg.removed);
        for (map, events) in [
            (&mut self.condemns, seg.condemned),
            (&mut self.gones, seg.gone),
            (&mut self.revivals, seg.revived),
        ] {
            for (p, g) in events {
                let at = map.entry(p).or_insert(g);
                *at = (*at).max(g);
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

    /// Pack `p`'s status: its latest event's (condemned, gone, revived; none: normal).
    pub(super) fn status(&self, p: &Hash) -> PackStatus {
        let revived = self.revivals.get(p).copied().unwrap_or(i64::MIN);
        let c = self.condemns.get(p).copied().filter(|c| *c > revived);
        let g = self.gones.get(p).copied().filter(|g| *g > revived);
        match (c, g) {
            (_, Some(g)) if c.is_none_or(|c| g >= c) => PackStatus::Gone,
            (Some(_), _) => PackStatus::Condemned,
            _ => PackStatus::Normal,
        }
    }

    /// True when a push may rely on the remote holding `h`: a segment places it in a pack in
    /// view that gc has not condemned.
    pub(super) fn has_for_push(&self, h: &Hash) -> bool {
        self.objects
            .get(h)
            .is_some_and(|(p, _)| self.status(p) == PackStatus::Normal)
    }

    /// Applies gc's tombstones once segments are added (again after adding more): removed runs
    /// leave `runs`; gone packs leave `packs` and `objects` (packs revived since come back);
    /// each object is placed in a normal pack where one holds it.
    pub(super) fn finish(&mut self) {
        let removed = std::mem::take(&mut self.removed);
        self.runs.retain(|id, _| !removed.contains(id));
        self.run_keys.retain(|id, _| !removed.contains(id));
        self.removed = removed;
        if self.condemns.is_empty() && self.gones.is_empty() {
            return;
        }
        let back: Vec<Hash> = self
            .gone_packs
            .keys()
            .filter(|p| self.status(p) != PackStatus::Gone)
            .copied()
            .collect();
        for p in back {
            if let Some((size, entries)) = self.gone_packs.remove(&p) {
                self.packs.insert(p, size);
                for e in entries {
                    if let Some(old) = self.objects.insert(e.hash, (p, e)) {
                        self.extra_places.push(old);
                    }
                }
            }
        }
        let out: Vec<Hash> = self
            .packs
            .keys()
            .filter(|p| self.status(p) == PackStatus::Gone)
            .copied()
            .collect();
        for p in &out {
            if let Some(size) = self.packs.remove(p) {
                self.gone_packs.entry(*p).or_insert((size, Vec::new()));
            }
        }
        let mut moved = Vec::new();
        let gone = &self.gone_packs;
        self.objects.retain(|_, (p, e)| {
            if gone.contains_key(p) {
                moved.push((*p, e.clone()));
                false
            } else {
                true
            }
        });
        for (p, e) in moved {
            if let Some(d) = self.gone_packs.get_mut(&p) {
                if !d.1.iter().any(|x| x.hash == e.hash) {
                    d.1.push(e);
                }
            }
        }
        // Each object placed in a normal pack where one holds it, else a condemned one.
        let extra = std::mem::take(&mut self.extra_places);
        let mut kept = Vec::with_capacity(extra.len());
        for (p, e) in extra {
            let st = self.status(&p);
            if st == PackStatus::Gone || !self.packs.contains_key(&p) {
                kept.push((p, e));
                continue;
            }
            let better = match self.objects.get(&e.hash) {
                None => true,
                Some((q, _)) => st == PackStatus::Normal && self.status(q) != PackStatus::Normal,
            };
            if better {
                if let Some(old) = self.objects.insert(e.hash, (p, e)) {
                    kept.push(old);
                }
            } else {
                kept.push((p, e));
            }
        }
        self.extra_places = kept;
    }

    /// See `meta_packs`.
    pub(super) fn meta_packs(&self) -> &HashMap<Hash, Vec<Entry>> {
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

    /// This state as one merged segment covering `covers`: every pack in view or gone (with
    /// every placement of its objects, so that a revival brings them back) and gc's tombstones.
    pub(super) fn merged(&self, covers: Vec<Hash>) -> Segment {
        let mut by_pack: BTreeMap<Hash, Vec<SegObject>> = self
            .packs
            .keys()
            .chain(self.gone_packs.keys())
            .map(|p| (*p, Vec::new()))
            .collect();
        for (p, e) in self.objects.values().chain(self.extra_places.iter()) {
            by_pack.entry(*p).or_default().push(SegObject::of(e));
        }
        for (p, (_, entries)) in &self.gone_packs {
            by_pack
                .entry(*p)
                .or_default()
                .extend(entries.iter().map(SegObject::of));
        }
        let packs = by_pack
            .into_iter()
            .map(|(id, mut objects)| {
                // Members of a group frame share an offset (store-format.md 5.4).
                objects.sort_by_key(|o| (o.5, o.0));
                objects.dedup_by_key(|o| (o.5, o.0));
                SegPack {
                    id,
                    size: self
                        .packs
                        .get(&id)
                        .or(self.gone_packs.get(&id).map(|d| &d.0))
                        .copied()
                        .unwrap_or(0),
                    objects,
                }
            })
            .collect();
        let mut roots: Vec<Hash> = self.roots.iter().copied().collect();
        roots.sort();
        let mut removed: Vec<String> = self.removed.iter().cloned().collect();
        removed.sort();
        let events = |m: &HashMap<Hash, i64>| {
            let mut v: Vec<(Hash, i64)> = m.iter().map(|(p, g)| (*p, *g)).collect();
            v.sort();
            v
        };
        Segment {
            packs,
            runs: self.runs.values().cloned().collect(),
            roots,
            covers,
            removed,
            condemned: events(&self.condemns),
            gone: events(&self.gones),
            revived: events(&self.revivals),
            ..Segment::new()
        }
    }
}

/// How segments are read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Segments {
    /// From the local cache when there, else downloaded (and cached).
    Cached,
    /// Always downloaded and checked (`verify --remote`: the remote's copy is under test).
    Fresh,
}

/// A segment (plain or merged) from the local cache (unless `how` is `Fresh`), else
/// downloaded, checked against its id and cached.
pub(super) fn load_segment(
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

pub(super) fn segment_id(bytes: &[u8]) -> Hash {
    Hash(
        *blake3::Hasher::new_derive_key(SEGMENT_CONTEXT)
            .update(bytes)
            .finalize()
            .as_bytes(),
    )
}

pub(super) fn encode_segment(seg: &Segment) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(seg).map_err(|e| Error::Invalid(e.to_string()))?;
    zstd::bulk::compress(&json, 3).map_err(|e| Error::io("<segment>", e))
}

/// The largest a segment may decompress to: a segment that claims more is damage (or a
/// decompression bomb), not an index.
pub(super) const MAX_SEGMENT_JSON: u64 = 1 << 30;

pub(super) fn decode_segment(bytes: &[u8], what: &str) -> Result<Segment> {
    let bad = |e: String| {
        Error::corrupt(
            what.to_string(),
            format!("segment does not decompress: {e}"),
        )
    };
    let decoder = zstd::stream::read::Decoder::new(bytes).map_err(|e| bad(e.to_string()))?;
    let mut json = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(decoder, MAX_SEGMENT_JSON + 1),
        &mut json,
    )
    .map_err(|e| bad(e.to_string()))?;
    if json.len() as u64 > MAX_SEGMENT_JSON {
        return Err(bad(format!("more than {MAX_SEGMENT_JSON} bytes")));
    }
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

impl Store {
    /// Reads every index segment of the remote, downloading those not cached yet.
    pub(super) fn remote_state(&self, name: &str, backend: &dyn Backend) -> Result<RemoteState> {
        self.remote_state_from(name, backend, Segments::Cached)
    }

    /// [`Store::remote_state`], reading segments as `how` says.
    pub(super) fn remote_state_from(
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
        state.finish();
        Ok(state)
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    proptest! {
        /// A segment from a remote: any bytes, or any JSON-ish text compressed, decode or
        /// name the damage.
        #[test]
        fn segments_decode_or_name_the_damage(
            raw in proptest::collection::vec(any::<u8>(), 0..512),
            text in "[\\[\\]{}:,\"a-z0-9 .\\-]{0,300}",
        ) {
            let _ = super::decode_segment(&raw, "fuzz");
            let packed = zstd::bulk::compress(text.as_bytes(), 1).expect("compress");
            let _ = super::decode_segment(&packed, "fuzz");
        }
    }
}
