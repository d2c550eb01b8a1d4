//! One counting vocabulary for a run, shared by `runs`, `show`, `checkout` and `stats`:
//!
//! - **jobs**: the workflow's jobs that recorded data (an input, output or intermediate file);
//!   the pseudo-jobs that record the code and the description (`transformations`,
//!   `workflow`) are not jobs of the workflow;
//! - **files**: distinct (path, version) pairs, what a checkout writes (a tree counts once);
//! - **records**: distinct (job, role, path, version) entries, the environment once per job
//!   (a file read by ten jobs is one file and ten records);
//! - **bytes**: the size of the files, each counted once.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::engine::hash::Hash;
use crate::engine::run_object::{Direction, Role, RunEntry};

/// A run's numbers (see the module documentation for what each counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    /// Jobs of the workflow that recorded data files.
    pub jobs: u64,
    /// Distinct (path, version) pairs.
    pub files: u64,
    /// Distinct (job, role, path, version) records, the environment once per job.
    pub records: u64,
    /// Total size of the files.
    pub bytes: u64,
}

/// Counts incrementally, from snapshot entries or index rows alike.
#[derive(Default)]
pub(crate) struct Counter<'a> {
    jobs: HashSet<&'a str>,
    files: HashMap<(&'a str, Hash), u64>,
    records: HashSet<(&'a str, &'a str, &'a str, Hash)>,
    /// Per job, the environment record a snapshot keeps (the least path and version, as its
    /// merge sorts them), when several processes of one job captured one.
    environments: HashMap<&'a str, (&'a str, Hash, u64)>,
}

impl<'a> Counter<'a> {
    pub(crate) fn add(
        &mut self,
        job: &'a str,
        role: &'a str,
        path: &'a str,
        hash: Hash,
        size: u64,
    ) {
        if matches!(role, "input" | "output" | "intermediate") {
            self.jobs.insert(job);
        }
        if role == Role::Environment.as_str() {
            let kept = self.environments.entry(job).or_insert((path, hash, size));
            if (path, hash) < (kept.0, kept.1) {
                *kept = (path, hash, size);
            }
        } else {
            self.files.insert((path, hash), size);
            self.records.insert((job, role, path, hash));
        }
    }

    pub(crate) fn counts(&self) -> RunCounts {
        let mut files = self.files.clone();
        for (path, hash, size) in self.environments.values() {
            files.insert((path, *hash), *size);
        }
        RunCounts {
            jobs: self.jobs.len() as u64,
            files: files.len() as u64,
            records: (self.records.len() + self.environments.len()) as u64,
            bytes: files.values().sum(),
        }
    }
}

impl RunCounts {
    /// The numbers of a run's entries.
    pub fn of(entries: &[RunEntry]) -> RunCounts {
        let mut c = Counter::default();
        for e in entries {
            c.add(&e.job_id, e.role.as_str(), &e.path, e.hash, e.size);
        }
        c.counts()
    }
}

/// Whether the job read or wrote the entry: what its tracking job recorded (before the job:
/// consumed; after: produced), else what the role says (an input is consumed, an output
/// produced; an intermediate recorded by hand is `unknown`; code, workflow and environment
/// entries are `recorded`).
pub fn direction(e: &RunEntry) -> &'static str {
    match (e.direction, e.role) {
        (Some(d), _) => d.as_str(),
        (None, Role::Input) => Direction::Consumed.as_str(),
        (None, Role::Output) => Direction::Produced.as_str(),
        (None, Role::Intermediate) => "unknown",
        (None, _) => "recorded",
    }
}
