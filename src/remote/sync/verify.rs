//! `verify --remote`: every segment, pack and object a reader can reach, checked (19.6).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::engine::hash::{Hash, ObjectKind};
use crate::engine::pack::Entry;
use crate::engine::store::Store;
use crate::error::{Error, Result};

use crate::workspace::maintenance::Problem;

use super::*;

pub(super) fn problem(key: &str, object: Option<Hash>, detail: &str) -> Problem {
    Problem {
        pack: key.to_string(),
        object: object.map(|h| h.to_hex()),
        detail: detail.to_string(),
    }
}

impl Store {
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
        // Packs `remote gc` condemned hold what no run in view needs, and may be deleted at any
        // moment: counted, not checked. What gc deleted is no reference's problem either: gc
        // deletes only what no run in view or path version reaches.
        let gone: HashSet<Hash> = state
            .gone_packs
            .values()
            .flat_map(|(_, entries)| entries.iter().map(|e| e.hash))
            .collect();
        let mut packs: Vec<(Hash, u64)> = state
            .packs
            .iter()
            .filter(|(p, _)| state.status(p) == PackStatus::Normal)
            .map(|(p, s)| (*p, *s))
            .collect();
        report.condemned_packs = (state.packs.len() - packs.len()) as u64;
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
                                .find(|c| !state.objects.contains_key(c) && !gone.contains(c))
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
        let named: HashSet<String> = state
            .packs
            .keys()
            .chain(state.gone_packs.keys())
            .map(pack_key)
            .collect();
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
