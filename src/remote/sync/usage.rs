//! `remote du`: what a remote holds, per workflow and per run, shared and unique. A run's
//! objects are its closure (records, manifests, chunks) located by the remote's segments; an
//! object in the closure of more than one run is shared, the others are unique to their run.
//! Sizes are the bytes stored on the remote (compressed where the pack compresses).
//!
//! Records and manifests are fetched into the local store to walk the graph (as `pull
//! --metadata-only` does); no file content is downloaded.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::engine::hash::Hash;
use crate::engine::store::{LockMode, Store};
use crate::error::Result;
use crate::remote::Backend;

use super::*;

/// One run's share of a remote.
#[derive(Clone, Debug, Serialize)]
pub struct RunUsage {
    /// Its workflow.
    pub workflow: String,
    /// Its ID.
    pub run_id: String,
    /// When it was sealed (ns since the epoch); `None` while open.
    pub sealed_ns: Option<i64>,
    /// Objects it needs (records, manifests, chunks) found on the remote.
    pub objects: u64,
    /// Their stored bytes.
    pub bytes: u64,
    /// Of those, objects no other run needs.
    pub unique_objects: u64,
    /// Their bytes.
    pub unique_bytes: u64,
    /// Bytes of objects other runs need too.
    pub shared_bytes: u64,
    /// Objects it needs that no segment places on the remote (or whose records could not be
    /// read): 0 on a sound remote.
    pub missing: u64,
}

/// One workflow's share of a remote.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkflowUsage {
    /// Its name.
    pub workflow: String,
    /// Its runs on the remote.
    pub runs: u64,
    /// Distinct objects its runs need.
    pub objects: u64,
    /// Their stored bytes.
    pub bytes: u64,
    /// Bytes of objects only this workflow's runs need.
    pub unique_bytes: u64,
    /// Bytes of objects runs of other workflows need too.
    pub shared_bytes: u64,
}

/// What `remote du` reports.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RemoteUsage {
    /// The remote's name.
    pub remote: String,
    /// Packs named by the remote's segments.
    pub packs: u64,
    /// Their bytes.
    pub pack_bytes: u64,
    /// Objects the segments place.
    pub objects: u64,
    /// Plain and merged segments, and their bytes.
    pub segments: u64,
    /// Bytes of the segments.
    pub segment_bytes: u64,
    /// Bytes of objects no run needs (tracked-path versions outside runs, objects of removed or
    /// never-published runs).
    pub other_bytes: u64,
    /// Bytes of objects more than one run needs (counted once).
    pub shared_bytes: u64,
    /// Per workflow.
    pub workflows: Vec<WorkflowUsage>,
    /// Per run, by workflow then run ID.
    pub runs: Vec<RunUsage>,
    /// Requests made to the remote.
    pub requests: u64,
}

impl Store {
    /// `remote du`: bytes and objects per workflow and run, shared and unique.
    pub fn remote_usage(&self, remote: Option<&str>) -> Result<RemoteUsage> {
        let _lock = self.lock(LockMode::Shared)?;
        let (name, spec) = self.remote_spec(remote)?;
        let backend = spec.open()?;
        let state = self.remote_state(&name, &*backend)?;
        let mut usage = self.remote_usage_of(&name, &*backend, &state)?;
        for prefix in ["index/", "merged/"] {
            for (_, size) in backend.list(prefix)? {
                usage.segments += 1;
                usage.segment_bytes += size;
            }
        }
        usage.requests = backend.requests();
        Ok(usage)
    }

    /// The usage of the runs in `state` (segment counts and requests left to the caller).
    pub(super) fn remote_usage_of(
        &self,
        name: &str,
        backend: &dyn Backend,
        state: &RemoteState,
    ) -> Result<RemoteUsage> {
        let mut starts: Vec<Hash> = Vec::new();
        for r in state.runs.values() {
            starts.extend(r.parts.iter().copied());
            starts.extend(r.snapshot);
        }
        let ctx = Fetch {
            name,
            backend,
            state,
            jobs: 8,
            progress: false,
        };
        // Damage met here is reported as missing objects of the runs needing it.
        self.fetch_closure(&ctx, &starts, false)?;
        // A group member (store-format.md 5.4) counts its share of its frame.
        let shares =
            crate::engine::group::stored_shares(state.objects.iter().map(|(h, (p, e))| (h, p, e)));
        let size = |h: &Hash| shares.get(h).copied();
        let mut closures: Vec<(&SegRun, HashSet<Hash>, u64, Option<i64>)> = Vec::new();
        let mut refs: HashMap<Hash, u32> = HashMap::new();
        let mut wf_refs: HashMap<Hash, HashSet<&str>> = HashMap::new();
        for r in state.runs.values() {
            let mut roots: Vec<Hash> = r.parts.clone();
            roots.extend(r.snapshot);
            let (objs, missing) = self.local_closure(&roots);
            let sealed_ns = r.snapshot.and_then(|s| {
                let (kind, bytes) = self.read_object(&s).ok()?;
                let snap: crate::run::RunSnapshot =
                    crate::run::parse_run_object(kind, &bytes, &s).ok()?;
                Some(snap.sealed_ns)
            });
            for h in &objs {
                *refs.entry(*h).or_default() += 1;
                wf_refs.entry(*h).or_default().insert(r.workflow.as_str());
            }
            closures.push((r, objs, missing, sealed_ns));
        }
        let mut out = RemoteUsage {
            remote: name.to_string(),
            packs: state.packs.len() as u64,
            pack_bytes: state.packs.values().sum(),
            objects: state.objects.len() as u64,
            ..RemoteUsage::default()
        };
        let mut wfs: BTreeMap<&str, (WorkflowUsage, HashSet<Hash>)> = BTreeMap::new();
        for (r, objs, unreadable, sealed_ns) in &closures {
            let mut u = RunUsage {
                workflow: r.workflow.clone(),
                run_id: r.run_id.clone(),
                sealed_ns: *sealed_ns,
                objects: 0,
                bytes: 0,
                unique_objects: 0,
                unique_bytes: 0,
                shared_bytes: 0,
                missing: *unreadable,
            };
            let (wu, seen) = wfs.entry(r.workflow.as_str()).or_default();
            wu.workflow = r.workflow.clone();
            wu.runs += 1;
            for h in objs {
                let Some(n) = size(h) else {
                    u.missing += 1;
                    continue;
                };
                u.objects += 1;
                u.bytes += n;
                if refs.get(h).copied().unwrap_or(0) > 1 {
                    u.shared_bytes += n;
                } else {
                    u.unique_objects += 1;
                    u.unique_bytes += n;
                }
                if seen.insert(*h) {
                    wu.objects += 1;
                    wu.bytes += n;
                    if wf_refs.get(h).is_some_and(|w| w.len() > 1) {
                        wu.shared_bytes += n;
                    } else {
                        wu.unique_bytes += n;
                    }
                }
            }
            out.runs.push(u);
        }
        out.runs
            .sort_by(|a, b| (&a.workflow, &a.run_id).cmp(&(&b.workflow, &b.run_id)));
        out.workflows = wfs.into_values().map(|(w, _)| w).collect();
        let mut needed = 0u64;
        for (h, n) in &refs {
            let s = size(h).unwrap_or(0);
            needed += s;
            if *n > 1 {
                out.shared_bytes += s;
            }
        }
        let placed: u64 = shares.values().sum();
        out.other_bytes = placed.saturating_sub(needed);
        Ok(out)
    }

    /// Every object under `roots`, walked in the local store (records and manifests must be
    /// local; chunks need not be), and how many records or manifests could not be read.
    pub(super) fn local_closure(&self, roots: &[Hash]) -> (HashSet<Hash>, u64) {
        let mut seen: HashSet<Hash> = HashSet::new();
        let mut level: Vec<Hash> = roots.to_vec();
        let mut chunks: Vec<Hash> = Vec::new();
        let mut unreadable = 0;
        while !level.is_empty() {
            level.retain(|h| seen.insert(*h));
            let mut next = Vec::new();
            for h in &level {
                let ok = self
                    .read_object(h)
                    .and_then(|(kind, bytes)| children(h, kind, &bytes, &mut next, &mut chunks));
                if ok.is_err() {
                    unreadable += 1;
                }
            }
            level = next;
        }
        seen.extend(chunks);
        (seen, unreadable)
    }
}
