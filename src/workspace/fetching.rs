//! Restoring files whose content is partly on the default remote (a checkout in a clone):
//! each missing chunk is written into its files straight from the downloaded bytes, verified,
//! while the rest downloads, instead of fetching everything into packs and reading it back.
//! The fetched chunks are kept in the store as a pull would keep them.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::engine::hash::Hash;
use crate::engine::progress::ProgressBar;
use crate::engine::store::Store;
use crate::error::{Error, Result};

use super::checkout::{tmp_beside, Job, LinkMode, Outcome};

/// A file being assembled under its temporary name while its chunks arrive.
struct Assembling {
    job: usize,
    tmp: PathBuf,
    /// Chunk placements still to be written.
    left: AtomicUsize,
}

impl Store {
    /// Restores `jobs` (their manifests local), fetching the chunks this store lacks from its
    /// object source. A file none of whose chunks is here is assembled from the downloaded
    /// chunks as they arrive and renamed into place once its last chunk is written; files
    /// with all their chunks here are restored as always meanwhile; a file with some of its
    /// chunks here is restored as always once the fetch is done (its local part is read at
    /// full speed, window by window). On failure no temporary file is left behind.
    pub(super) fn restore_fetching(
        &self,
        jobs: &[Job],
        link: LinkMode,
        pb: &ProgressBar,
    ) -> Result<Vec<Outcome>> {
        let manifests = jobs
            .par_iter()
            .map(|j| self.file_manifest(&j.hash))
            .collect::<Result<Vec<_>>>()?;
        let mut all: Vec<Hash> = manifests
            .iter()
            .flat_map(|m| m.chunks.iter().map(|c| c.0))
            .collect();
        all.sort();
        all.dedup();
        let locs = self.index().locate_many(&all)?;
        let missing: Vec<Hash> = all
            .iter()
            .zip(locs)
            .filter(|(_, l)| l.is_none())
            .map(|(h, _)| *h)
            .collect();
        let missing_set: HashSet<Hash> = missing.iter().copied().collect();
        let mut outcomes: Vec<Option<Outcome>> = (0..jobs.len()).map(|_| None).collect();
        let (mut here, mut after, mut stream) = (Vec::new(), Vec::new(), Vec::new());
        for (i, m) in manifests.iter().enumerate() {
            let lacking = m
                .chunks
                .iter()
                .filter(|c| missing_set.contains(&c.0))
                .count();
            if lacking == 0 {
                here.push(i);
                continue;
            }
            // A verified workspace copy beats a download.
            if link == LinkMode::Reflink {
                if let Some(o) = self.copy_from_workspace(&jobs[i])? {
                    outcomes[i] = Some(o);
                    continue;
                }
            }
            if lacking == m.chunks.len() {
                stream.push(i);
            } else {
                after.push(i);
            }
        }

        // Each file to assemble, created under its temporary name; where each missing chunk
        // goes.
        let created: Vec<Result<Assembling>> = stream
            .par_iter()
            .map(|&i| create(i, &jobs[i], manifests[i].chunks.len()))
            .collect();
        let mut files = Vec::with_capacity(created.len());
        let mut failed = None;
        for c in created {
            match c {
                Ok(a) => files.push(a),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            remove_unfinished(&files);
            return Err(e);
        }
        let mut wants: HashMap<Hash, Vec<(usize, u64)>> = HashMap::new();
        for (k, a) in files.iter().enumerate() {
            let mut off = 0u64;
            for (h, len) in &manifests[a.job].chunks {
                wants.entry(*h).or_default().push((k, off));
                off += u64::from(*len);
            }
        }
        let wants = Mutex::new(wants);
        let sink = |h: &Hash, raw: &[u8]| -> Result<()> {
            let placements = wants.lock().ok().and_then(|mut w| w.remove(h));
            for (k, off) in placements.unwrap_or_default() {
                let a = &files[k];
                File::options()
                    .write(true)
                    .open(&a.tmp)
                    .and_then(|f| f.write_all_at(raw, off))
                    .map_err(|e| Error::io(&a.tmp, e))?;
                if a.left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    finish(a, &jobs[a.job])?;
                    pb.inc(jobs[a.job].size);
                }
            }
            Ok(())
        };
        let restore = |which: &[usize]| {
            which
                .par_iter()
                .map(|&i| {
                    let o = self.restore_file(&jobs[i], link)?;
                    pb.inc(jobs[i].size);
                    Ok((i, o))
                })
                .collect::<Result<Vec<_>>>()
        };
        let (fetched, restored) =
            rayon::join(|| self.fetch_chunks(&missing, &sink), || restore(&here));
        let left = wants.into_inner().unwrap_or_default();
        let restored = match (fetched, restored) {
            // The source delivered less than asked without saying why.
            (Ok(_), Ok(_)) if !left.is_empty() => Err(Error::ObjectNotFound(
                left.keys().next().map(Hash::to_hex).unwrap_or_default(),
            )),
            (Ok(_), Ok(r)) => Ok(r),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        let restored = match restored {
            Ok(r) => r,
            Err(e) => {
                remove_unfinished(&files);
                return Err(e);
            }
        };
        for (i, o) in restored.into_iter().chain(restore(&after)?) {
            outcomes[i] = Some(o);
        }
        for a in &files {
            outcomes[a.job] = Some(Outcome::Written);
        }
        outcomes
            .into_iter()
            .zip(jobs)
            .map(|(o, j)| o.ok_or_else(|| Error::ObjectNotFound(j.hash.to_hex())))
            .collect()
    }
}

/// Creates job `i`'s file (of `chunks` chunk placements, none written yet) under a temporary
/// name beside its destination.
fn create(i: usize, job: &Job, chunks: usize) -> Result<Assembling> {
    let tmp = tmp_beside(&job.dest);
    let f = File::options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    if let Err(e) = f.set_len(job.size) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    Ok(Assembling {
        job: i,
        tmp,
        left: AtomicUsize::new(chunks),
    })
}

/// Gives an assembled file its mode and its name (or removes it).
fn finish(a: &Assembling, job: &Job) -> Result<()> {
    let r = fs::set_permissions(&a.tmp, fs::Permissions::from_mode(job.mode & 0o7777))
        .map_err(|e| Error::io(&a.tmp, e))
        .and_then(|()| fs::rename(&a.tmp, &job.dest).map_err(|e| Error::io(&job.dest, e)));
    if r.is_err() {
        let _ = fs::remove_file(&a.tmp);
    }
    r
}

/// Removes the temporary files of those not renamed into place.
fn remove_unfinished(files: &[Assembling]) {
    for a in files.iter().filter(|a| a.left.load(Ordering::Acquire) > 0) {
        let _ = fs::remove_file(&a.tmp);
    }
}
