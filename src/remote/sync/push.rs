//! `push`: packs, the segment naming them, run documents, and merged segments (19.4).

use std::collections::HashSet;

use crate::engine::hash::{Hash, ObjectKind};
use crate::engine::index::{Root, RunRow};
use crate::engine::pack::{Compression, Entry, PackBuf};
use crate::engine::store::{LockMode, Store};
use crate::error::{Error, Result};
use crate::remote::{Backend, STALE_UPLOAD_AGE};

use super::*;

/// Where pushers claim a merge (19.3.1): `claims/merge-<BLAKE3 of the covered segment ids the
/// push read>-<minute since the epoch>`, created if absent; its content is the claiming
/// push's segment id.
pub const MERGE_CLAIMS: &str = "claims/merge-";

impl Store {
    /// Pushes runs (or everything) to a remote: only objects the remote lacks are uploaded,
    /// packed into new packs; then one index segment publishes them.
    pub fn push(&self, remote: Option<&str>, opts: &PushOptions) -> Result<PushReport> {
        let _lock = self.lock(LockMode::Shared)?;
        let (name, spec) = self.remote_spec(remote)?;
        let backend = spec.open_in(&self.dir().join("remotes"))?;
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
            (runs, roots, self.index().object_hashes()?)
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
            .filter(|h| !state.has_for_push(h))
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
            if let Some(g) = groups.last_mut() {
                if !g.last().is_some_and(|l| same_frame(l, &item)) {
                    size += u64::from(item.1.stored_len);
                }
                g.push(item);
            }
        }
        let total: u64 = groups.iter().map(|g| stored_bytes(g)).sum();
        let pb = crate::workspace::add::progress_bar(opts.progress, total, "uploading");
        // Builds one group's pack: (id, bytes, entries).
        let build = |group: &[(Hash, Entry)]| -> Result<(Hash, Vec<u8>, Vec<Entry>)> {
            let mut buf = PackBuf::with_room(group.len(), stored_bytes(group));
            let mut entries = Vec::new();
            let mut i = 0;
            while i < group.len() {
                // Adjacent objects of one local pack are read with one positioned read,
                // straight into the pack; a group frame is never split between two reads.
                let (pack, first) = &group[i];
                let mut j = i + 1;
                let mut end = first.offset + u64::from(first.stored_len);
                while j < group.len()
                    && group[j].0 == *pack
                    && (same_frame(&group[j - 1], &group[j])
                        || (group[j].1.offset == end && end - first.offset < (8 << 20)))
                {
                    if !same_frame(&group[j - 1], &group[j]) {
                        end += u64::from(group[j].1.stored_len);
                    }
                    j += 1;
                }
                entries.clear();
                entries.extend(group[i..j].iter().map(|(_, e)| e.clone()));
                let src = self.reader(pack)?;
                buf.append_span(&src, first.offset, end - first.offset, &entries)?;
                i = j;
            }
            Ok(buf.finish())
        };
        let uploaded = parallel(groups, opts.jobs.max(1), |group| {
            let logical = stored_bytes(&group);
            let (id, bytes, entries) = build(&group)?;
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
                // A pack found in place (a killed push's, being resumed) is checked again once
                // the segment naming it is written: see below.
                (!fresh).then_some(group),
            ))
        })?;
        pb.finish_and_clear();
        let mut seg = Segment::new();
        let mut reused = Vec::new();
        for (p, fresh, group) in uploaded {
            reused.extend(group.map(|g| (pack_key(&p.id), g)));
            // A pack `remote gc` condemned or deleted (its objects looked unneeded) that this
            // push lists again is back to normal with this segment.
            if state.status(&p.id) != PackStatus::Normal {
                seg.revived.push((p.id, seg.created_ns));
            }
            if fresh {
                report.packs_uploaded += 1;
                report.bytes_uploaded += p.size;
            } else {
                report.packs_skipped += 1;
            }
            seg.packs.push(p);
        }
        // Runs `remote gc` took back are not published again (19.9).
        for run in runs.iter().filter(|r| !state.removed.contains(&r.run_id)) {
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
        if !(seg.packs.is_empty()
            && seg.runs.is_empty()
            && seg.roots.is_empty()
            && seg.revived.is_empty())
        {
            let bytes = encode_segment(&seg)?;
            let id = segment_id(&bytes);
            backend.put_new(&format!("index/{id}.seg"), bytes.clone())?;
            let cache = self.remote_cache(&name).join("segments");
            crate::engine::util::atomic_write(&cache.join(format!("{id}.seg")), &bytes)?;
            report.segment = Some(id.to_hex());
            written = Some((seg, id));
        }
        // Human-readable manifests of the sealed runs, for people browsing the remote.
        for run in runs
            .iter()
            .filter(|r| r.snapshot.is_some() && !state.removed.contains(&r.run_id))
        {
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
        // A pack this push found in place instead of uploading was no segment's until this
        // push's: `remote gc` may have deleted it meanwhile, as a killed push's (it deletes
        // only packs older than its grace period, which a resumed push can meet). Now that the
        // segment names it, one that is gone is uploaded again, built the same way.
        for (key, group) in reused {
            if backend.head(&key)?.is_none() {
                let (_, bytes, _) = build(&group)?;
                backend.put_new(&key, bytes)?;
            }
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
    pub(super) fn merge_segments(
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
        // One merge per threshold crossing: the pushers that read the same merged segment (or
        // none) and crossed the threshold race to create the claim named after it, and only the
        // winner merges. A claim holds for its minute: a winner killed before it wrote lets the
        // next minute's pushers merge.
        let mut base: Vec<Hash> = state.covered.iter().copied().collect();
        base.sort();
        let mut h = blake3::Hasher::new();
        for c in &base {
            h.update(c.as_bytes());
        }
        let minute = crate::engine::util::now_ns().div_euclid(60_000_000_000);
        let claim = format!("{MERGE_CLAIMS}{}-{minute}", h.finalize().to_hex());
        if !backend.put_new(&claim, id.to_hex().into_bytes())? {
            return Ok(None);
        }
        let key = format!("index/{id}.seg");
        state.add(seg, &key)?;
        state.finish();
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
    pub(super) fn run_closure(&self, run: &RunRow) -> Result<HashSet<Hash>> {
        let mut records: Vec<Hash> = self.index().run_parts(&run.run_id)?;
        records.extend(run.snapshot);
        self.reachable_from(&records, Vec::new())
    }

    /// The `runs/<workflow>/<run id>.json` document of a sealed run.
    pub(super) fn run_document(&self, run: &RunRow, url: &str, key: &str) -> Result<Vec<u8>> {
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
}

/// True when two located objects are members of one group frame (`store-format.md` 5.4).
fn same_frame(a: &(Hash, Entry), b: &(Hash, Entry)) -> bool {
    a.1.compression == Compression::Group
        && b.1.compression == Compression::Group
        && a.0 == b.0
        && a.1.offset == b.1.offset
}

/// Stored bytes of located objects (pack, entry), a group frame counted once.
fn stored_bytes(objects: &[(Hash, Entry)]) -> u64 {
    crate::engine::group::stored_bytes(objects.iter().map(|(p, e)| (p, e)))
}
