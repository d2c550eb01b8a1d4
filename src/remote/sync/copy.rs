//! `remote sync SRC DST [RUN...]`: copies to one remote what it lacks of another, any backend
//! pair (`store-format.md` 19.11). Like a push whose objects come from a remote: the packs DST
//! lacks are downloaded whole, every object checked against its hash, uploaded under the same
//! key; then one segment naming them and the runs copied; then the runs' manifests. A sync
//! killed part-way is completed by running it again: packs already on DST are found by key and
//! size, not copied twice.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::engine::hash::Hash;
use crate::engine::pack::Entry;
use crate::engine::store::{LockMode, Store};
use crate::error::{Error, Result};
use crate::remote::Backend;

use super::*;

/// Options of [`Store::remote_sync`].
#[derive(Clone, Debug, Default)]
pub struct RemoteSyncOptions {
    /// Runs to copy (ID or unique prefix on SRC); empty copies everything in view.
    pub runs: Vec<String>,
    /// Concurrent pack copies.
    pub jobs: usize,
    /// Show a progress bar.
    pub progress: bool,
    /// Also give DST the browsable views (19.12) the runs have on SRC, published from this
    /// store (the URLs differ per remote, so views are written anew, not copied).
    pub published: bool,
}

/// What a sync did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RemoteSyncReport {
    /// The source remote's name.
    pub src: String,
    /// The destination remote's name.
    pub dst: String,
    /// Packs copied (downloaded, checked, uploaded).
    pub packs_copied: u64,
    /// Packs found on DST already (a sync being completed, or copied before).
    pub packs_found: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Objects checked against their hashes.
    pub objects_checked: u64,
    /// Runs published on DST.
    pub runs: Vec<String>,
    /// Run manifests copied.
    pub manifests: u64,
    /// The segment written on DST, if anything was new.
    pub segment: Option<String>,
    /// Requests made to SRC.
    pub src_requests: u64,
    /// Requests made to DST.
    pub dst_requests: u64,
    /// The views published on DST (with `published`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<super::PublishReport>,
}

impl Store {
    /// Copies what remote `dst` lacks of remote `src` (both configured names).
    pub fn remote_sync(
        &self,
        src: &str,
        dst: &str,
        opts: &RemoteSyncOptions,
    ) -> Result<RemoteSyncReport> {
        let _lock = self.lock(LockMode::Shared)?;
        let (src_name, src_spec) = self.remote_spec(Some(src))?;
        let (dst_name, dst_spec) = self.remote_spec(Some(dst))?;
        if src_spec.url == dst_spec.url {
            return Err(Error::Invalid(format!(
                "remotes {src_name} and {dst_name} are the same location"
            )));
        }
        let from = src_spec.open()?;
        let to = dst_spec.open_in(&self.dir().join("remotes"))?;
        let mut report = RemoteSyncReport {
            src: src_name.clone(),
            dst: dst_name.clone(),
            ..RemoteSyncReport::default()
        };
        let marker = from.get(MARKER_KEY)?.ok_or_else(|| Error::Remote {
            remote: src_name.clone(),
            detail: format!("{MARKER_KEY}: missing (not a store remote, or empty)"),
        })?;
        let state = self.remote_state(&src_name, &*from)?;
        if !state.damaged.is_empty() {
            return Err(Error::corrupt(
                format!("remote {src_name}"),
                format!(
                    "{} damaged segment(s): run `store verify --remote {src_name}`",
                    state.damaged.len()
                ),
            ));
        }
        // The destination's marker must agree (chunking) or is created from the source's.
        match to.get(MARKER_KEY)? {
            None => {
                to.put_new(MARKER_KEY, marker.clone())?;
            }
            Some(b) => {
                let (m, d): (Marker, Marker) = (
                    serde_json::from_slice(&marker)
                        .map_err(|e| Error::corrupt(format!("remote {src_name}"), e.to_string()))?,
                    serde_json::from_slice(&b)
                        .map_err(|e| Error::corrupt(format!("remote {dst_name}"), e.to_string()))?,
                );
                if m.chunking != d.chunking {
                    return Err(Error::Invalid(format!(
                        "remotes {src_name} and {dst_name} chunk differently; a sync would not \
                         deduplicate"
                    )));
                }
            }
        }
        let have = self.remote_state(&dst_name, &*to)?;

        // What to copy: runs (named, else all in view) and the packs holding what they need.
        let runs: Vec<SegRun> = if opts.runs.is_empty() {
            state.runs.values().cloned().collect()
        } else {
            let mut v = Vec::new();
            for id in &opts.runs {
                v.push(find_remote_run(&state, id, &src_name)?.clone());
            }
            v
        };
        let mut by_pack: BTreeMap<Hash, Vec<Entry>> = BTreeMap::new();
        for (p, e) in state.objects.values().chain(state.extra_places.iter()) {
            if state.packs.contains_key(p) {
                by_pack.entry(*p).or_default().push(e.clone());
            }
        }
        // With runs named, a segment on DST lists only the objects they need (a pack holds
        // more: records of other runs, whose references DST would lack).
        let mut only: Option<HashSet<Hash>> = None;
        let wanted_packs: Vec<Hash> = if opts.runs.is_empty() {
            by_pack
                .keys()
                .filter(|p| state.status(p) == PackStatus::Normal)
                .copied()
                .collect()
        } else {
            let mut starts: Vec<Hash> = Vec::new();
            for r in &runs {
                starts.extend(r.parts.iter().copied());
                starts.extend(r.snapshot);
            }
            let ctx = Fetch {
                name: &src_name,
                backend: &*from,
                state: &state,
                jobs: 8,
                progress: false,
            };
            let f = self.fetch_closure(&ctx, &starts, false)?;
            let (needed, unreadable) = self.local_closure(&starts);
            if unreadable > 0 || !f.damaged.is_empty() {
                return Err(Error::corrupt(
                    format!("remote {src_name}"),
                    "records of the runs asked for cannot be read: run `store verify --remote`",
                ));
            }
            let mut set: HashSet<Hash> = HashSet::new();
            for h in &needed {
                if let Some((p, _)) = state.objects.get(h) {
                    set.insert(*p);
                }
            }
            let mut v: Vec<Hash> = set.into_iter().collect();
            v.sort();
            only = Some(needed);
            v
        };
        // Packs whose objects (those to be listed) DST's view lacks, some or all: a pack an
        // earlier sync of named runs listed only in part is listed again, whole.
        let todo: Vec<Hash> = wanted_packs
            .into_iter()
            .filter(|p| {
                by_pack.get(p).is_some_and(|entries| {
                    entries
                        .iter()
                        .filter(|e| only.as_ref().is_none_or(|n| n.contains(&e.hash)))
                        .any(|e| !have.objects.contains_key(&e.hash))
                })
            })
            .collect();
        let total: u64 = todo
            .iter()
            .map(|p| state.packs.get(p).copied().unwrap_or(0))
            .sum();
        let pb = crate::workspace::add::progress_bar(opts.progress, total, "copying");
        let copied = parallel(todo, opts.jobs.max(1), |pack| {
            let key = pack_key(&pack);
            let size = state.packs.get(&pack).copied().unwrap_or(0);
            let entries = by_pack.get(&pack).cloned().unwrap_or_default();
            if to.head(&key)? == Some(size) {
                pb.inc(size);
                return Ok((pack, size, entries, false, 0u64));
            }
            let (bytes, n) = copy_checked(&*from, &src_name, &key, size, &entries)?;
            to.put_new(&key, bytes)?;
            pb.inc(size);
            Ok((pack, size, entries, true, n))
        })?;
        pb.finish_and_clear();
        let mut seg = Segment::new();
        let mut found = Vec::new();
        for (pack, size, mut entries, fresh, n) in copied {
            report.objects_checked += n;
            if fresh {
                report.packs_copied += 1;
                report.bytes += size;
            } else {
                report.packs_found += 1;
                found.push(pack);
            }
            // Members of a group frame share an offset (store-format.md 5.4).
            entries.sort_by_key(|e| (e.offset, e.hash));
            entries.dedup_by_key(|e| (e.offset, e.hash));
            if let Some(needed) = &only {
                entries.retain(|e| needed.contains(&e.hash));
            }
            if have.status(&pack) != PackStatus::Normal {
                seg.revived.push((pack, seg.created_ns));
            }
            seg.packs.push(SegPack {
                id: pack,
                size,
                objects: entries.iter().map(SegObject::of).collect(),
            });
        }
        let mut copy_manifests = Vec::new();
        for r in runs.iter().filter(|r| !have.removed.contains(&r.run_id)) {
            let known = have.runs.get(&r.run_id).is_some_and(|old| {
                old.snapshot == r.snapshot
                    && (old.snapshot.is_some() || r.parts.iter().all(|p| old.parts.contains(p)))
            });
            if !known {
                report.runs.push(r.run_id.clone());
                seg.runs.push(r.clone());
                if r.snapshot.is_some() {
                    copy_manifests.push(run_key(&r.workflow, &r.run_id));
                }
            }
        }
        if opts.runs.is_empty() {
            let mut roots: Vec<Hash> = state
                .roots
                .iter()
                .filter(|h| !have.roots.contains(h))
                .copied()
                .collect();
            roots.sort();
            seg.roots = roots;
        }
        if !(seg.packs.is_empty() && seg.runs.is_empty() && seg.roots.is_empty()) {
            let bytes = encode_segment(&seg)?;
            let id = segment_id(&bytes);
            to.put_new(&format!("index/{id}.seg"), bytes.clone())?;
            let cache = self.remote_cache(&dst_name).join("segments");
            crate::engine::util::atomic_write(&cache.join(format!("{id}.seg")), &bytes)?;
            report.segment = Some(id.to_hex());
        }
        // A pack found in place (a killed sync's) that `remote gc` deleted before this
        // segment named it is copied again (as a push does, 19.4).
        for pack in found {
            let key = pack_key(&pack);
            if to.head(&key)?.is_none() {
                let size = state.packs.get(&pack).copied().unwrap_or(0);
                let entries = by_pack.get(&pack).cloned().unwrap_or_default();
                let (bytes, _) = copy_checked(&*from, &src_name, &key, size, &entries)?;
                to.put_new(&key, bytes)?;
            }
        }
        for key in copy_manifests {
            if let Some(doc) = from.get(&key)? {
                if to.put_new(&key, doc)? {
                    report.manifests += 1;
                }
            }
        }
        report.src_requests = from.requests();
        report.dst_requests = to.requests();
        if opts.published {
            let runs: Vec<String> = self
                .published_runs(&src_name)?
                .into_iter()
                .map(|p| p.run_id)
                .filter(|id| opts.runs.is_empty() || opts.runs.iter().any(|r| id.starts_with(r)))
                .collect();
            if !runs.is_empty() {
                report.published = Some(self.publish(&super::PublishOptions {
                    runs,
                    remote: Some(dst_name.clone()),
                    jobs: opts.jobs,
                    progress: opts.progress,
                })?);
            }
        }
        Ok(report)
    }
}

/// Pack `key` of `size` bytes from `from`, each of its `entries` checked against its hash.
/// Returns the bytes and the objects checked.
fn copy_checked(
    from: &dyn Backend,
    name: &str,
    key: &str,
    size: u64,
    entries: &[Entry],
) -> Result<(Vec<u8>, u64)> {
    let bytes = from
        .get(key)?
        .ok_or_else(|| crate::remote::remote_error(name, key, "named by a segment but missing"))?;
    let what = || format!("remote {name} {key}");
    if bytes.len() as u64 != size {
        return Err(Error::corrupt(
            what(),
            format!("has {} bytes, its segment says {size}", bytes.len()),
        ));
    }
    let mut seen: HashMap<Hash, ()> = HashMap::new();
    for e in entries {
        if seen.insert(e.hash, ()).is_some() {
            continue;
        }
        let end = e.offset.saturating_add(u64::from(e.stored_len));
        let stored = bytes
            .get(e.offset as usize..end as usize)
            .ok_or_else(|| Error::corrupt(what(), "object beyond the end"))?;
        crate::engine::pack::decode_verified(e, stored, &what)?;
    }
    Ok((bytes, seen.len() as u64))
}
