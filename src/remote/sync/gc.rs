//! `remote gc`: what no reader will need again, removed from a remote that pushers and readers
//! keep using without a lock (`store-format.md`, "Remote gc"). One call is one cycle: it reads
//! the remote, decides by the rules below and, unless it is a dry run, deletes.
//!
//! - A pack that no segment names (left by a killed push, or uploaded by a push still running)
//!   goes once it is older than the grace period: a running push names its packs in a segment
//!   within that time.
//! - A plain segment goes once the merged segment readers choose covers it, that merged
//!   segment is older than the grace period, and every merged segment as large covers it too.
//! - A merged segment goes once the chosen one covers everything it covers and is older than
//!   the grace period.
//! - A directory remote's partial uploads go once older than the grace period.
//!
//! - Runs `--keep-last` / `--older-than` select are removed, and the packs only they needed
//!   reclaimed over two cycles (`reclaim`).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use crate::engine::hash::Hash;
use crate::engine::store::{LockMode, Store};
use crate::error::{Error, Result};
use crate::remote::{Backend, Listed};

use super::*;

/// The default grace period of `remote gc`: longer than any push or read is expected to take.
pub const DEFAULT_GC_GRACE: Duration = Duration::from_secs(3600);

/// Options of [`Store::remote_gc`].
#[derive(Clone, Debug)]
pub struct RemoteGcOptions {
    /// Delete (otherwise only report what would go).
    pub yes: bool,
    /// Nothing younger than this is deleted, and a superseded segment goes only once what
    /// supersedes it is this old. Must exceed the longest push or read.
    pub grace: Duration,
    /// Keep the newest N sealed runs of each workflow; the others are removed (with `yes`):
    /// taken out of every reader's view by a tombstone, and the packs only they needed
    /// reclaimed over two cycles (`store-format.md` 19.9, "Removing runs").
    pub keep_last: Option<usize>,
    /// Select sealed runs sealed longer ago than this (with `keep_last`: runs beyond the
    /// newest N and older than this).
    pub older_than: Option<Duration>,
}

impl Default for RemoteGcOptions {
    fn default() -> RemoteGcOptions {
        RemoteGcOptions {
            yes: false,
            grace: DEFAULT_GC_GRACE,
            keep_last: None,
            older_than: None,
        }
    }
}

/// One key gc deletes (or would), and why.
#[derive(Clone, Debug, Serialize)]
pub struct RemoteGcItem {
    /// Its key on the remote.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Why it goes.
    pub reason: String,
}

/// A run selected by `--keep-last` / `--older-than`.
#[derive(Clone, Debug, Serialize)]
pub struct RemoteGcRun {
    /// Its workflow.
    pub workflow: String,
    /// Its ID.
    pub run_id: String,
    /// When it was sealed (ns since the epoch).
    pub sealed_ns: i64,
    /// Bytes of objects only this run uses among the runs on the remote.
    pub unique_bytes: u64,
}

/// What one gc cycle found and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RemoteGcReport {
    /// The remote's name.
    pub remote: String,
    /// False for a dry run.
    pub deleted: bool,
    /// The grace period, in seconds.
    pub grace_secs: u64,
    /// Packs no segment names, older than the grace period.
    pub packs: Vec<RemoteGcItem>,
    /// Superseded segments (plain and merged).
    pub segments: Vec<RemoteGcItem>,
    /// Partial uploads older than the grace period.
    pub partial_uploads: Vec<RemoteGcItem>,
    /// Merge claims (19.3.1) older than the grace period: their minute is long past, and no
    /// one reads a claim.
    pub claims: Vec<RemoteGcItem>,
    /// Bytes of everything above.
    pub bytes: u64,
    /// Packs no segment names that are younger than the grace period (kept: a push may still
    /// be writing the segment naming them).
    pub young_unreferenced_packs: u64,
    /// Superseded segments kept because what supersedes them is younger than the grace period.
    pub young_superseded_segments: u64,
    /// Runs `--keep-last` / `--older-than` select: removed (with `--yes`).
    pub runs_selected: Vec<RemoteGcRun>,
    /// Packs no kept run needs, condemned by this cycle: still read, never relied on by a
    /// push, deleted by a cycle after the grace period (unless a run needs them again).
    pub packs_condemned: Vec<RemoteGcItem>,
    /// Condemned packs a run needs again (published by a push that relied on them before
    /// their condemnation): back to normal.
    pub packs_revived: Vec<String>,
    /// Condemned packs kept because their condemnation is younger than the grace period.
    pub young_condemned_packs: u64,
    /// Run manifests (`runs/<workflow>/<run id>.json`) of the runs removed.
    pub manifests: Vec<String>,
    /// The segment carrying this cycle's tombstones, if one was written.
    pub tombstones: Option<String>,
    /// Why nothing (or less) was deleted, when gc held back.
    pub held_back: Vec<String>,
    /// Requests made to the remote.
    pub requests: u64,
}

/// A merged segment as gc sees it.
struct MergedSeg {
    key: String,
    n: u64,
    id: Hash,
    size: u64,
    age: Option<Duration>,
    covers: Option<HashSet<Hash>>,
}

/// The pack id of a `packs/<2 hex>/<id>.pack` key.
pub(super) fn pack_id_of(key: &str) -> Option<Hash> {
    let rest = key.strip_prefix("packs/")?;
    let (dir, file) = rest.split_once('/')?;
    let id: Hash = file.strip_suffix(".pack")?.parse().ok()?;
    (id.to_hex()[..2] == *dir).then_some(id)
}

fn old_enough(age: Option<Duration>, grace: Duration) -> bool {
    age.is_some_and(|a| a >= grace)
}

impl Store {
    /// One gc cycle on a remote: see the module documentation and `store-format.md`.
    pub fn remote_gc(
        &self,
        remote: Option<&str>,
        opts: &RemoteGcOptions,
    ) -> Result<RemoteGcReport> {
        let _lock = self.lock(LockMode::Shared)?;
        let (name, spec) = self.remote_spec(remote)?;
        let backend = spec.open()?;
        let grace = opts.grace;
        let mut report = RemoteGcReport {
            remote: name.clone(),
            deleted: opts.yes,
            grace_secs: grace.as_secs(),
            ..RemoteGcReport::default()
        };
        // Packs are listed before the segments are read: a pack listed here and older than the
        // grace period was uploaded by a push whose segment (if it ever writes one) is written
        // by now, so the segments read next name it.
        let packs = backend.list_aged("packs/")?;
        let index = backend.list_aged("index/")?;
        let merged_listed = backend.list_aged("merged/")?;
        let state = self.remote_state_from(&name, &*backend, Segments::Fresh)?;
        if !state.damaged.is_empty() {
            // A damaged segment's packs are unknown: none is deleted for being unnamed.
            report.held_back.push(format!(
                "{} damaged segment(s) (run `store verify --remote {name}`): no pack is deleted \
                 while a segment cannot be read",
                state.damaged.len()
            ));
        }
        self.gc_packs(&packs, &state, grace, &mut report);
        let merged = self.gc_merged_segments(&name, &*backend, &merged_listed)?;
        gc_segments(&index, &merged, grace, &mut report);
        for p in backend.partial_uploads()? {
            if p.age_secs >= grace.as_secs() {
                report.partial_uploads.push(RemoteGcItem {
                    key: p.key,
                    size: p.size,
                    reason: format!("partial upload, {} s old", p.age_secs),
                });
            }
        }
        // A claim counts only in its own minute: one older than the grace (at least 60 s) is dead.
        let claim_grace = grace.max(Duration::from_secs(120));
        for l in backend.list_aged("claims/")? {
            if l.key.starts_with(crate::remote::sync::push::MERGE_CLAIMS)
                && old_enough(l.age, claim_grace)
            {
                report.claims.push(RemoteGcItem {
                    key: l.key,
                    size: l.size,
                    reason: "merge claim past its minute".into(),
                });
            }
        }
        if opts.keep_last.is_some() || opts.older_than.is_some() {
            report.runs_selected = self.gc_select_runs(&name, &*backend, &state, opts)?;
        }
        let removing: HashSet<String> = report
            .runs_selected
            .iter()
            .map(|r| r.run_id.clone())
            .collect();
        let reclaim = self.gc_reclaim(&name, &*backend, &state, &removing, opts, &mut report)?;
        report.manifests = reclaim.manifests.clone();
        report.bytes = report
            .packs
            .iter()
            .chain(&report.segments)
            .chain(&report.partial_uploads)
            .chain(&report.claims)
            .map(|i| i.size)
            .sum();
        if opts.yes {
            // Tombstones first: a pack deleted is out of view before it goes.
            if let Some(seg) = &reclaim.segment {
                report.tombstones = Some(self.write_tombstones(&name, &*backend, seg)?);
            }
            parallel(reclaim.manifests.clone(), 8, |k| backend.delete(&k))?;
            // Segments first (they only stop being read), then packs.
            let keys: Vec<String> = report
                .segments
                .iter()
                .chain(&report.packs)
                .chain(&report.claims)
                .map(|i| i.key.clone())
                .collect();
            parallel(keys, 8, |k| backend.delete(&k))?;
            backend.remove_stale_uploads(grace)?;
        }
        report.requests = backend.requests();
        Ok(report)
    }

    fn gc_packs(
        &self,
        packs: &[Listed],
        state: &RemoteState,
        grace: Duration,
        report: &mut RemoteGcReport,
    ) {
        let hold = !state.damaged.is_empty();
        for l in packs {
            let Some(id) = pack_id_of(&l.key) else {
                continue;
            };
            if state.packs.contains_key(&id) {
                continue;
            }
            let gone = state.gone_packs.contains_key(&id);
            if !old_enough(l.age, grace) {
                report.young_unreferenced_packs += 1;
            } else if !hold {
                report.packs.push(RemoteGcItem {
                    key: l.key.clone(),
                    size: l.size,
                    reason: if gone {
                        "deleted by an earlier cycle; deleting again".to_string()
                    } else {
                        format!(
                            "no segment names it, {} s old (a killed push's)",
                            l.age.map_or(0, |a| a.as_secs())
                        )
                    },
                });
            }
        }
    }

    /// Every merged segment listed, with what it covers (None when it fails its checks).
    fn gc_merged_segments(
        &self,
        name: &str,
        backend: &dyn Backend,
        listed: &[Listed],
    ) -> Result<Vec<MergedSeg>> {
        let cache = self.remote_cache(name).join("segments");
        let mut out = Vec::new();
        for l in listed {
            let Some((n, id)) = l
                .key
                .strip_prefix("merged/")
                .and_then(|k| k.strip_suffix(".seg"))
                .and_then(|k| k.split_once('-'))
                .and_then(|(n, id)| Some((n.parse::<u64>().ok()?, id.parse::<Hash>().ok()?)))
            else {
                continue;
            };
            let covers = match load_segment(name, backend, &cache, id, &l.key, Segments::Fresh) {
                Ok(s) => Some(s.covers.into_iter().collect()),
                Err(Error::Corrupt { .. }) => None,
                // Deleted meanwhile by another gc: as good as absent.
                Err(Error::Remote { .. }) if backend.head(&l.key)?.is_none() => continue,
                Err(e) => return Err(e),
            };
            out.push(MergedSeg {
                key: l.key.clone(),
                n,
                id,
                size: l.size,
                age: l.age,
                covers,
            });
        }
        Ok(out)
    }

    /// Runs `--keep-last` / `--older-than` select, with the bytes only they use.
    fn gc_select_runs(
        &self,
        name: &str,
        backend: &dyn Backend,
        state: &RemoteState,
        opts: &RemoteGcOptions,
    ) -> Result<Vec<RemoteGcRun>> {
        let usage = self.remote_usage_of(name, backend, state)?;
        let now = crate::engine::util::now_ns();
        let mut by_wf: BTreeMap<&str, Vec<&RunUsage>> = BTreeMap::new();
        for r in usage.runs.iter().filter(|r| r.sealed_ns.is_some()) {
            by_wf.entry(r.workflow.as_str()).or_default().push(r);
        }
        let mut out = Vec::new();
        for runs in by_wf.values_mut() {
            // Newest first.
            runs.sort_by_key(|r| std::cmp::Reverse((r.sealed_ns, r.run_id.clone())));
            for (i, r) in runs.iter().enumerate() {
                let sealed = r.sealed_ns.unwrap_or(now);
                let beyond = opts.keep_last.is_none_or(|n| i >= n);
                let old = opts.older_than.is_none_or(|d| {
                    now.saturating_sub(sealed) >= i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
                });
                if beyond && old {
                    out.push(RemoteGcRun {
                        workflow: r.workflow.clone(),
                        run_id: r.run_id.clone(),
                        sealed_ns: sealed,
                        unique_bytes: r.unique_bytes,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Superseded segments: see the module documentation.
fn gc_segments(
    index: &[Listed],
    merged: &[MergedSeg],
    grace: Duration,
    report: &mut RemoteGcReport,
) {
    let sound = || merged.iter().filter(|m| m.covers.is_some());
    // The reference: the largest sound merged segment older than the grace period (ties: the
    // smallest id, as readers choose). Every reader and merging push that started after it was
    // written takes it or a larger one.
    let reference = sound()
        .filter(|m| old_enough(m.age, grace))
        .max_by_key(|m| (m.n, std::cmp::Reverse(m.id)));
    // What a younger reference would free, counted (kept until it is old enough).
    let largest = sound().max_by_key(|m| (m.n, std::cmp::Reverse(m.id)));
    let Some(largest) = largest else { return };
    let base = reference.unwrap_or(largest);
    let Some(base_covers) = base.covers.as_ref() else {
        return;
    };
    let settled = reference.is_some();
    // Every sound merged segment as large as the reference: a reader or a merging push may
    // take any of them, so a plain segment goes only if all of them cover it.
    let peers: Vec<&HashSet<Hash>> = sound()
        .filter(|m| m.n >= base.n)
        .filter_map(|m| m.covers.as_ref())
        .collect();
    for l in index {
        let Some(id) = l
            .key
            .strip_prefix("index/")
            .and_then(|k| k.strip_suffix(".seg"))
            .and_then(|h| h.parse::<Hash>().ok())
        else {
            continue;
        };
        if !peers.iter().all(|c| c.contains(&id)) {
            // Covered by the largest, not yet by every segment as large as the reference: a
            // later cycle frees it.
            if largest.covers.as_ref().is_some_and(|c| c.contains(&id)) {
                report.young_superseded_segments += 1;
            }
            continue;
        }
        if !settled {
            report.young_superseded_segments += 1;
            continue;
        }
        report.segments.push(RemoteGcItem {
            key: l.key.clone(),
            size: l.size,
            reason: format!("covered by {}", base.key),
        });
    }
    for m in sound() {
        let Some(c) = m.covers.as_ref() else { continue };
        if m.key == base.key || !c.is_subset(base_covers) {
            if m.key != largest.key && largest.covers.as_ref().is_some_and(|l| c.is_subset(l)) {
                report.young_superseded_segments += 1;
            }
            continue;
        }
        if !settled {
            report.young_superseded_segments += 1;
            continue;
        }
        report.segments.push(RemoteGcItem {
            key: m.key.clone(),
            size: m.size,
            reason: format!("superseded by {}", base.key),
        });
    }
}
