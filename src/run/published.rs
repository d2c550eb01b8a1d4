//! Where a run's files were published (19.12): one record per remote and run, kept beside the
//! store as `.store/published/<remote>/<run id>.json` (runs are immutable; the URLs a
//! publication gives them are not part of them). `store show`, `metadata export`, MLflow's
//! `files.json` and the Python package lay them over the run's entries (`remote_urls`).
//!
//! The records are also what makes the next publication cheap: a file whose content an earlier
//! published run holds on the same remote is copied there server-side, not uploaded again.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Role, RunSnapshot};
use crate::engine::hash::Hash;
use crate::engine::store::Store;
use crate::error::{Error, Result};

/// One published file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedFile {
    /// The role of the entry it comes from.
    pub role: Role,
    /// The entry's logical name.
    pub lfn: String,
    /// The entry's content hash (a file manifest, or the tree the file is a member of).
    pub hash: Hash,
    /// For a member of a recorded directory: its path inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The file's own content (its file manifest's hash).
    pub content: Hash,
    /// Its size in bytes.
    pub size: u64,
    /// Its key on the remote.
    pub key: String,
    /// Where a person opens it.
    pub urls: Vec<String>,
}

/// A run's publication on one remote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedRun {
    /// The remote's name.
    pub remote: String,
    /// Its URL.
    pub url: String,
    /// The run.
    pub run_id: String,
    /// The key of the run's folder (`<prefix>/<workflow>/<run id>`).
    pub folder: String,
    /// The URLs of its `metadata.json`.
    pub metadata_urls: Vec<String>,
    /// When the publication completed, ns since the epoch.
    pub published_ns: i64,
    /// Every published file.
    pub files: Vec<PublishedFile>,
}

impl Store {
    fn published_dir(&self) -> PathBuf {
        self.dir().join("published")
    }

    fn published_path(&self, remote: &str, run_id: &str) -> Result<PathBuf> {
        super::check_name("run ID", run_id)?;
        Ok(self
            .published_dir()
            .join(remote)
            .join(format!("{run_id}.json")))
    }

    /// The run's publication on `remote`, if it completed.
    pub fn published_on(&self, remote: &str, run_id: &str) -> Result<Option<PublishedRun>> {
        let p = self.published_path(remote, run_id)?;
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::corrupt(p.display().to_string(), e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&p, e)),
        }
    }

    /// Keeps the record of a completed publication.
    pub fn record_published(&self, rec: &PublishedRun) -> Result<()> {
        let p = self.published_path(&rec.remote, &rec.run_id)?;
        let json = serde_json::to_vec_pretty(rec).map_err(|e| Error::Invalid(e.to_string()))?;
        if let Some(dir) = p.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        crate::engine::util::atomic_write(&p, &json)
    }

    /// Every run's publication on `remote`.
    pub fn published_runs(&self, remote: &str) -> Result<Vec<PublishedRun>> {
        let dir = self.published_dir().join(remote);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(&dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if let Some(run_id) = name.strip_suffix(".json") {
                if let Some(r) = self.published_on(remote, run_id)? {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// The run's publications, on every remote.
    pub fn publications(&self, run_id: &str) -> Result<Vec<PublishedRun>> {
        let dir = self.published_dir();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut out = Vec::new();
        for remote in names {
            if let Some(r) = self.published_on(&remote, run_id)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Adds the URLs of the run's published files to its entries' `remote_urls` (see
    /// [`overlay`]).
    pub fn published_overlay(&self, snap: &mut RunSnapshot) -> Result<()> {
        let pubs = self.publications(&snap.run_id)?;
        overlay(snap, &pubs);
        Ok(())
    }
}

/// Adds the URLs of the files of publications `pubs` to the entries of `snap` they come from
/// (the files of a recorded directory are listed in the publication, not on the entry).
pub fn overlay(snap: &mut RunSnapshot, pubs: &[PublishedRun]) {
    let mut by_entry: HashMap<(Role, &str, Hash), Vec<&String>> = HashMap::new();
    for f in pubs.iter().flat_map(|p| &p.files) {
        if f.member.is_none() {
            by_entry
                .entry((f.role, f.lfn.as_str(), f.hash))
                .or_default()
                .extend(&f.urls);
        }
    }
    for e in &mut snap.entries {
        if let Some(urls) = by_entry.get(&(e.role, e.lfn.as_str(), e.hash)) {
            for u in urls {
                if !e.remote_urls.contains(u) {
                    e.remote_urls.push((*u).clone());
                }
            }
        }
    }
}
