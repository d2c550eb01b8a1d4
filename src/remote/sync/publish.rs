//! `store publish`: a sealed run as a folder a person can browse (`store-format.md` 19.12):
//! `<prefix>/<workflow>/<run id>/{workflow,inputs,outputs,intermediate,code,environment}/
//! <logical name>` as whole files, and the run's `metadata.json` (Table I for every file, with
//! the published URLs). The packed layout stays the source of truth: this is a view of it,
//! written from the local store.
//!
//! Idempotent and resumable: the run's folder is listed once and only what it lacks is written
//! (each value whole or not at all); `metadata.json` comes last. A file whose content an
//! earlier publication on the same remote holds (or an earlier file of this one) is copied
//! there server-side, never uploaded twice.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::engine::hash::Hash;
use crate::engine::index::RunRow;
use crate::engine::manifest::EntryKind;
use crate::engine::util::now_ns;
use crate::error::{Error, Result};
use crate::remote::{Backend, RemoteSpec};
use crate::run::published::{PublishedFile, PublishedRun};
use crate::run::{Role, RunEntry};

use super::*;

/// Where views go when the remote names no `publish_prefix`.
pub const DEFAULT_PUBLISH_PREFIX: &str = "published";
/// Top-level names of the packed layout, which a view must not use.
const RESERVED: &[&str] = &[
    "packs", "index", "merged", "runs", "claims", "tmp", MARKER_KEY,
];

/// Checks a `publish_prefix`: relative, `/`-separated, no empty, `.` or `..` component, not
/// inside the packed layout.
pub(crate) fn check_publish_prefix(p: &str) -> Result<()> {
    let bad = p.is_empty()
        || p.starts_with('/')
        || p.split('/').any(|c| {
            c.is_empty() || c == "." || c == ".." || c.bytes().any(|b| b < 0x20 || b == b'\\')
        });
    if bad {
        return Err(Error::Invalid(format!(
            "publish_prefix {p:?} must be a relative path like \"published\" or \"views/runs\""
        )));
    }
    let top = p.split('/').next().unwrap_or(p);
    if RESERVED.contains(&top) {
        return Err(Error::Invalid(format!(
            "publish_prefix {p:?} is inside the store's own layout ({top}/); choose another"
        )));
    }
    Ok(())
}

fn prefix_of(spec: &RemoteSpec) -> &str {
    spec.options
        .get("publish_prefix")
        .map(String::as_str)
        .unwrap_or(DEFAULT_PUBLISH_PREFIX)
}

/// The folder of a role in a run's view.
fn role_folder(role: Role) -> &'static str {
    match role {
        Role::Input => "inputs",
        Role::Output => "outputs",
        Role::Intermediate => "intermediate",
        Role::Code => "code",
        Role::Workflow => "workflow",
        Role::Environment => "environment",
    }
}

/// A logical name as a path in the view: `/`-separated components kept, except empty and `.`
/// ones (dropped); `..`, control characters, `\` and `%` are %-escaped, so no name leaves its
/// folder and every name maps to one path.
fn view_path(name: &str) -> String {
    let mut comps = Vec::new();
    for c in name.split('/') {
        if c.is_empty() || c == "." {
            continue;
        }
        if c == ".." {
            comps.push("%2E%2E".to_string());
            continue;
        }
        let mut out = String::with_capacity(c.len());
        for ch in c.chars() {
            if ch.is_control() || ch == '\\' || ch == '%' {
                let mut buf = [0u8; 4];
                for b in ch.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            } else {
                out.push(ch);
            }
        }
        comps.push(out);
    }
    if comps.is_empty() {
        "%2E".to_string()
    } else {
        comps.join("/")
    }
}

/// Options of [`Store::publish`].
#[derive(Clone, Debug, Default)]
pub struct PublishOptions {
    /// Runs to publish (ID or unique prefix); empty publishes every sealed run.
    pub runs: Vec<String>,
    /// The remote (default: the default remote).
    pub remote: Option<String>,
    /// Concurrent uploads and copies.
    pub jobs: usize,
    /// Show a progress bar.
    pub progress: bool,
}

/// What publishing one run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunPublication {
    /// The run.
    pub run_id: String,
    /// Its workflow.
    pub workflow: String,
    /// The key of its folder.
    pub folder: String,
    /// The URLs of its `metadata.json`.
    pub metadata_urls: Vec<String>,
    /// Files in the view.
    pub files: u64,
    /// Files uploaded.
    pub uploaded: u64,
    /// Files copied server-side from an earlier publication.
    pub copied: u64,
    /// Files the view held already.
    pub present: u64,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Bytes copied server-side.
    pub bytes_copied: u64,
    /// Whether `metadata.json` was (re)written.
    pub metadata_written: bool,
}

/// What a publish did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PublishReport {
    /// The remote's name.
    pub remote: String,
    /// Each run published.
    pub runs: Vec<RunPublication>,
    /// Requests made to the remote.
    pub requests: u64,
}

impl Store {
    /// Publishes sealed runs as browsable folders on a remote (19.12).
    pub fn publish(&self, opts: &PublishOptions) -> Result<PublishReport> {
        let (name, spec) = self.remote_spec(opts.remote.as_deref())?;
        let rows = if opts.runs.is_empty() {
            self.index()
                .runs(None)?
                .into_iter()
                .filter(|r| r.sealed_ns.is_some())
                .collect()
        } else {
            let mut rows = Vec::new();
            for id in &opts.runs {
                let r = self.resolve_run(id)?;
                if r.sealed_ns.is_none() {
                    return Err(Error::Invalid(format!(
                        "run {} is open: seal it before publishing it",
                        r.run_id
                    )));
                }
                rows.push(r);
            }
            rows
        };
        let backend = spec.open_in(&self.dir().join("remotes"))?;
        // What earlier publications on this remote hold, by content.
        let mut known: HashMap<Hash, String> = HashMap::new();
        for p in self.published_runs(&name)? {
            for f in p.files {
                known.entry(f.content).or_insert(f.key);
            }
        }
        let mut report = PublishReport {
            remote: name.clone(),
            ..PublishReport::default()
        };
        for row in &rows {
            let r = self.publish_run(&name, &spec, backend.as_ref(), row, &mut known, opts)?;
            report.runs.push(r);
        }
        report.requests = backend.requests();
        Ok(report)
    }

    fn publish_run(
        &self,
        name: &str,
        spec: &RemoteSpec,
        backend: &dyn Backend,
        row: &RunRow,
        known: &mut HashMap<Hash, String>,
        opts: &PublishOptions,
    ) -> Result<RunPublication> {
        let mut snap = self.run_snapshot(row)?;
        let folder = format!(
            "{}/{}/{}",
            prefix_of(spec),
            key_component(&row.workflow),
            key_component(&row.run_id)
        );
        let mut plan = self.plan_view(&snap.entries, &folder)?;
        let listed: HashMap<String, u64> =
            backend.list(&format!("{folder}/"))?.into_iter().collect();
        let mut out = RunPublication {
            run_id: row.run_id.clone(),
            workflow: row.workflow.clone(),
            folder: folder.clone(),
            files: plan.len() as u64,
            ..RunPublication::default()
        };
        // Sort the plan into files present, to upload (the first of each content nowhere on
        // the remote yet) and to copy (from an earlier publication, or from that first one).
        let mut uploads = Vec::new();
        let mut copies = Vec::new();
        let mut first_of: HashMap<Hash, String> = HashMap::new();
        for (i, f) in plan.iter().enumerate() {
            match listed.get(&f.key) {
                Some(size) if *size == f.size => {
                    out.present += 1;
                    first_of.entry(f.content).or_insert(f.key.clone());
                    continue;
                }
                // Not what this run holds there (damaged, or written by something else).
                Some(_) => backend.delete(&f.key)?,
                None => {}
            }
            // (An earlier publication of this very file that is gone now is no source.)
            let earlier = known.get(&f.content).filter(|k| **k != f.key);
            if let Some(src) = earlier.or(first_of.get(&f.content)) {
                copies.push((i, src.clone()));
            } else {
                first_of.insert(f.content, f.key.clone());
                uploads.push(i);
            }
        }
        let bar = crate::engine::progress::items(
            opts.progress,
            (uploads.len() + copies.len()) as u64,
            "publishing",
        );
        let jobs = opts.jobs.max(1);
        let upload = |f: &PublishedFile| -> Result<()> {
            let mut data = Vec::with_capacity(f.size as usize);
            self.cat(&f.content, &mut data)?;
            backend.put_new(&f.key, data)?;
            bar.inc(1);
            Ok(())
        };
        let uploaded = parallel(uploads, jobs, |i| upload(&plan[i]).map(|()| (i, false)))?;
        let copied = parallel(copies, jobs, |(i, src)| {
            if backend.copy(&src, &plan[i].key)? {
                bar.inc(1);
                return Ok((i, true));
            }
            // The earlier copy is gone (its view was deleted): upload.
            upload(&plan[i]).map(|()| (i, false))
        })?;
        bar.finish_and_clear();
        for (i, was_copy) in uploaded.into_iter().chain(copied) {
            let size = plan[i].size;
            if was_copy {
                out.copied += 1;
                out.bytes_copied += size;
            } else {
                out.uploaded += 1;
                out.bytes_uploaded += size;
            }
        }
        let urls = parallel((0..plan.len()).collect(), jobs, |i| {
            backend.urls(&plan[i].key)
        })?;
        for (f, u) in plan.iter_mut().zip(urls) {
            f.urls = u;
        }
        // metadata.json: the run's record with every published URL in it, written last.
        let rec = PublishedRun {
            remote: name.to_string(),
            url: spec.url.clone(),
            run_id: row.run_id.clone(),
            folder: folder.clone(),
            metadata_urls: Vec::new(),
            published_ns: now_ns(),
            files: plan,
        };
        crate::run::published::overlay(&mut snap, std::slice::from_ref(&rec));
        self.mlflow_overlay(&mut snap)?;
        let all: Vec<&RunEntry> = snap.entries.iter().collect();
        let mut doc = crate::run::record::named(
            crate::run::record::run_record(row, &snap, &all),
            &row.workflow,
            &row.run_id,
        );
        if let Some(m) = doc.as_object_mut() {
            m.insert(
                "published".into(),
                serde_json::json!({ "folder": folder, "files": rec.files }),
            );
        }
        let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| Error::Invalid(e.to_string()))?;
        let meta_key = format!("{folder}/metadata.json");
        let same = match listed.get(&meta_key) {
            Some(size) if *size == bytes.len() as u64 => {
                backend.get(&meta_key)?.as_deref() == Some(bytes.as_slice())
            }
            Some(_) => false,
            None => false,
        };
        if !same {
            if listed.contains_key(&meta_key) {
                backend.delete(&meta_key)?;
            }
            backend.put_new(&meta_key, bytes)?;
            out.metadata_written = true;
        }
        out.metadata_urls = backend.urls(&meta_key)?;
        let rec = PublishedRun {
            metadata_urls: out.metadata_urls.clone(),
            ..rec
        };
        for f in &rec.files {
            known.entry(f.content).or_insert(f.key.clone());
        }
        self.record_published(&rec)?;
        Ok(out)
    }

    /// The files of a run's view: one per distinct (role, logical name, content); the files of
    /// a recorded directory under its name. When one name holds several contents, the most
    /// recently recorded keeps it and the others get `@<job id>` after it.
    fn plan_view(&self, entries: &[RunEntry], folder: &str) -> Result<Vec<PublishedFile>> {
        // (role, lfn) -> contents, newest first.
        let mut by_name: BTreeMap<(Role, &str), Vec<&RunEntry>> = BTreeMap::new();
        for e in entries {
            by_name.entry((e.role, e.lfn.as_str())).or_default().push(e);
        }
        let mut plan = Vec::new();
        let mut taken: HashSet<String> = HashSet::new();
        for ((role, lfn), mut es) in by_name {
            es.sort_by_key(|e| std::cmp::Reverse(e.recorded_ns));
            let mut seen = Vec::new();
            for e in es {
                if seen.contains(&e.hash) {
                    continue;
                }
                let name = match role {
                    Role::Environment => lfn.strip_prefix("environment/").unwrap_or(lfn),
                    _ => lfn,
                };
                let mut path = view_path(name);
                if !seen.is_empty() {
                    path = format!("{path}@{}", view_path(&e.job_id).replace('/', "%2F"));
                }
                let mut key = format!("{folder}/{}/{path}", role_folder(role));
                if taken.contains(&key) {
                    key = format!("{key}~{}", &e.hash.to_hex()[..12]);
                }
                taken.insert(key.clone());
                seen.push(e.hash);
                let file =
                    |member: Option<String>, content: Hash, size: u64, key: String| PublishedFile {
                        role,
                        lfn: lfn.to_string(),
                        hash: e.hash,
                        member,
                        content,
                        size,
                        key,
                        urls: Vec::new(),
                    };
                if e.kind == "tree" {
                    let mut members = Vec::new();
                    self.tree_files(&e.hash, "", &mut members)?;
                    for (rel, content, size) in members {
                        let k = format!("{key}/{}", view_path(&rel));
                        plan.push(file(Some(rel), content, size, k));
                    }
                } else {
                    plan.push(file(None, e.hash, e.size, key));
                }
            }
        }
        Ok(plan)
    }

    /// The files of tree `hash` (path below it, content, size); symbolic links are not
    /// published (the record keeps them).
    fn tree_files(
        &self,
        hash: &Hash,
        base: &str,
        out: &mut Vec<(String, Hash, u64)>,
    ) -> Result<()> {
        self.ensure_local(&[*hash])?;
        for e in self.tree_manifest(hash)?.entries {
            let name = String::from_utf8_lossy(&e.name);
            let rel = if base.is_empty() {
                name.into_owned()
            } else {
                format!("{base}/{name}")
            };
            match e.kind {
                EntryKind::File(h) => out.push((rel, h, e.size)),
                EntryKind::Dir(h) => self.tree_files(&h, &rel, out)?,
                EntryKind::Symlink(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_paths_stay_inside_their_folder() {
        assert_eq!(view_path("d/f1.txt"), "d/f1.txt");
        assert_eq!(view_path("/abs/./x"), "abs/x");
        assert_eq!(view_path("../../etc/passwd"), "%2E%2E/%2E%2E/etc/passwd");
        assert_eq!(view_path("a\\b%c\n"), "a%5Cb%25c%0A");
        assert_eq!(view_path(""), "%2E");
        assert_eq!(view_path("résumé.csv"), "résumé.csv");
    }

    #[test]
    fn publish_prefixes_stay_out_of_the_packed_layout() {
        for good in ["published", "views/runs", "experiments"] {
            assert!(check_publish_prefix(good).is_ok(), "{good}");
        }
        for bad in [
            "", "/abs", "a//b", "../x", "packs", "runs/x", "index", MARKER_KEY,
        ] {
            assert!(check_publish_prefix(bad).is_err(), "{bad}");
        }
    }
}
