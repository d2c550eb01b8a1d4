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

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::engine::hash::Hash;
use crate::engine::store::{LockMode, Store};
use crate::error::{Error, Result};
use crate::remote::RemoteSpec;
use crate::workspace::maintenance::Problem;

mod copy;
mod gc;
mod publish;
mod pull;
mod push;
mod reclaim;
mod segments;
mod usage;
mod verify;

pub use copy::{RemoteSyncOptions, RemoteSyncReport};
pub use gc::{RemoteGcItem, RemoteGcOptions, RemoteGcReport, RemoteGcRun, DEFAULT_GC_GRACE};
pub(crate) use publish::check_publish_prefix;
pub use publish::{PublishOptions, PublishReport, RunPublication, DEFAULT_PUBLISH_PREFIX};
pub use usage::{RemoteUsage, RunUsage, WorkflowUsage};

pub use pull::clone_remote;
use pull::*;
use segments::*;
use verify::*;

/// Version of the remote layout this program writes and reads.
pub const REMOTE_FORMAT: u32 = 1;
/// The remote's marker object.
pub const MARKER_KEY: &str = "store-remote.json";
/// BLAKE3 `derive_key` context naming index segments.
pub const SEGMENT_CONTEXT: &str = "store 2026-11 remote segment v1";
/// Adjacent objects of one pack are fetched in one ranged read when the gap between them is
/// at most this many bytes.
const COALESCE_GAP: u64 = 1 << 20;
/// Concurrent ranged reads of a fetch on demand (a checkout or `cat` in a clone).
const ON_DEMAND_JOBS: usize = 8;
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
    /// Partial uploads older than [`STALE_UPLOAD_AGE`](crate::remote::STALE_UPLOAD_AGE) removed from the remote's `tmp/` (left
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
    /// Packs `remote gc` condemned (19.9): not checked, since no run needs them.
    pub condemned_packs: u64,
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
    /// removes those older than [`STALE_UPLOAD_AGE`](crate::remote::STALE_UPLOAD_AGE).
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

    /// Sets option `key` of remote `name` to `value` (`None` removes it), checked as
    /// `remote add` checks it.
    pub fn remote_set_option(&self, name: &str, key: &str, value: Option<&str>) -> Result<()> {
        self.update_remotes(|r| {
            let spec = r
                .remotes
                .get_mut(name)
                .ok_or_else(|| Error::Invalid(format!("no remote named {name}")))?;
            let mut new = spec.clone();
            match value {
                Some(v) => new.options.insert(key.to_string(), v.to_string()),
                None => new.options.remove(key),
            };
            new.validate()?;
            *spec = new;
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
}
