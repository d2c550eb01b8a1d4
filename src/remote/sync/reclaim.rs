//! Taking runs back (`remote gc --keep-last`, `--older-than`) and reclaiming the packs only
//! they needed, under gc's tombstones (`store-format.md` 19.9, "Removing runs"): a cycle
//! removes the runs selected and condemns every pack no kept run needs (still read, never
//! deduplicated against); a cycle at least the grace period later deletes a condemned pack
//! still needed by no run in view, or revives it if a run published meanwhile needs it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::engine::hash::Hash;
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::remote::Backend;

use super::gc::{RemoteGcItem, RemoteGcOptions, RemoteGcReport};
use super::*;

/// Added to the grace period before a condemned pack is deleted: the time between a
/// condemnation's generation (taken just before its segment is written) and the segment
/// being listed.
const CONDEMN_MARGIN: Duration = Duration::from_secs(2);

/// What one reclaim decided: the tombstone segment to write and the packs to delete.
pub(super) struct Reclaim {
    pub(super) segment: Option<Segment>,
    pub(super) delete: Vec<String>,
    pub(super) manifests: Vec<String>,
}

impl Store {
    /// Decides the removal of `removing` (run IDs) and the fate of every pack, filling the
    /// report; nothing is written here.
    pub(super) fn gc_reclaim(
        &self,
        name: &str,
        backend: &dyn Backend,
        state: &RemoteState,
        removing: &HashSet<String>,
        opts: &RemoteGcOptions,
        report: &mut RemoteGcReport,
    ) -> Result<Reclaim> {
        let mut out = Reclaim {
            segment: None,
            delete: Vec::new(),
            manifests: Vec::new(),
        };
        let active =
            !removing.is_empty() || !state.removed.is_empty() || !state.condemns.is_empty();
        if !active {
            return Ok(out);
        }
        if !state.damaged.is_empty() {
            report.held_back.push(
                "runs are not removed and no pack is condemned while a segment is damaged".into(),
            );
            return Ok(out);
        }
        // What the kept runs and the tracked-path versions need.
        let mut starts: Vec<Hash> = state.roots.iter().copied().collect();
        for r in state
            .runs
            .values()
            .filter(|r| !removing.contains(&r.run_id))
        {
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
        let fetched = self.fetch_closure(&ctx, &starts, false)?;
        let (live, unreadable) = self.local_closure(&starts);
        if unreadable > 0 || !fetched.damaged.is_empty() {
            report.held_back.push(format!(
                "{} records or manifests of kept runs could not be read: no pack is condemned \
                 or deleted (run `store verify --remote {name}`)",
                unreadable.max(fetched.damaged.len() as u64)
            ));
            return Ok(out);
        }
        // Which packs hold which objects, and how many normal packs hold each.
        let mut holds: HashMap<Hash, Vec<Hash>> = HashMap::new();
        let mut normal: HashMap<Hash, u32> = HashMap::new();
        for (p, e) in state.objects.values().chain(state.extra_places.iter()) {
            if !state.packs.contains_key(p) {
                continue;
            }
            let list = holds.entry(*p).or_default();
            if !list.contains(&e.hash) {
                list.push(e.hash);
                if state.status(p) == PackStatus::Normal {
                    *normal.entry(e.hash).or_default() += 1;
                }
            }
        }
        let now = crate::engine::util::now_ns();
        let mut seg = Segment::new();
        let mut packs: Vec<(&Hash, &u64)> = state.packs.iter().collect();
        packs.sort();
        for (p, size) in packs {
            let st = state.status(p);
            let own = u32::from(st == PackStatus::Normal);
            // Needed: it holds an object a kept run needs that no other normal pack holds.
            let needed = holds.get(p).is_some_and(|objs| {
                objs.iter()
                    .any(|o| live.contains(o) && normal.get(o).copied().unwrap_or(0) <= own)
            });
            let key = pack_key(p);
            match st {
                PackStatus::Normal if !needed => {
                    // The next pack holding the same objects is then the one that stays.
                    for o in holds.get(p).into_iter().flatten() {
                        if let Some(n) = normal.get_mut(o) {
                            *n = n.saturating_sub(1);
                        }
                    }
                    seg.condemned.push((*p, now));
                    report.packs_condemned.push(RemoteGcItem {
                        key,
                        size: *size,
                        reason: "no kept run needs it: condemned, deleted by a cycle after the \
                                 grace period"
                            .into(),
                    });
                }
                PackStatus::Condemned if needed => {
                    for o in holds.get(p).into_iter().flatten() {
                        *normal.entry(*o).or_default() += 1;
                    }
                    seg.revived.push((*p, now));
                    report.packs_revived.push(key);
                }
                PackStatus::Condemned => {
                    let since = state.condemns.get(p).copied().unwrap_or(now);
                    let age = Duration::from_nanos(u64::try_from(now - since).unwrap_or(0));
                    if age >= opts.grace + CONDEMN_MARGIN {
                        seg.gone.push((*p, now));
                        out.delete.push(key.clone());
                        report.packs.push(RemoteGcItem {
                            key,
                            size: *size,
                            reason: format!(
                                "condemned {} s ago, still needed by no run",
                                age.as_secs()
                            ),
                        });
                    } else {
                        report.young_condemned_packs += 1;
                    }
                }
                _ => {}
            }
        }
        let mut removed: Vec<String> = removing.iter().cloned().collect();
        removed.sort();
        for id in &removed {
            if let Some(r) = state.runs.get(id) {
                out.manifests.push(run_key(&r.workflow, &r.run_id));
            }
        }
        seg.removed = removed;
        if !(seg.removed.is_empty()
            && seg.condemned.is_empty()
            && seg.revived.is_empty()
            && seg.gone.is_empty())
        {
            out.segment = Some(seg);
        }
        Ok(out)
    }

    /// Writes a reclaim's tombstone segment (before anything is deleted).
    pub(super) fn write_tombstones(
        &self,
        name: &str,
        backend: &dyn Backend,
        seg: &Segment,
    ) -> Result<String> {
        let bytes = encode_segment(seg)?;
        let id = segment_id(&bytes);
        if !backend.put_new(&format!("index/{id}.seg"), bytes.clone())? {
            return Err(Error::Remote {
                remote: name.to_string(),
                detail: format!("index/{id}.seg exists already"),
            });
        }
        let cache = self.remote_cache(name).join("segments");
        crate::engine::util::atomic_write(&cache.join(format!("{id}.seg")), &bytes)?;
        Ok(id.to_hex())
    }
}
