//! Pointing a restored workflow at restored files: the physical names (PFNs) of its
//! transformation catalog and replica catalog are rewritten through two maps, so that
//! `pegasus-plan` (or `store run`) of a restored run reads the restored copies and nothing at
//! the original locations. The caller (which knows the run) supplies the maps; this module
//! knows only the document.

use std::path::Path;

use super::doc::{Map, Node};
use super::{resolve, str_of, uses_of, Workflow};
use crate::error::{Error, Result};

/// What [`Workflow::relocate`] did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Relocation {
    /// PFNs rewritten.
    pub rewritten: usize,
    /// Transformations used by a job whose executable has no restored copy: (name, the PFN
    /// as resolved against the original workflow directory).
    pub unmapped: Vec<(String, String)>,
}

/// How to map a workflow's files.
pub struct RelocateMaps<'a> {
    /// The directory the workflow's relative PFNs were resolved against when it was run.
    pub original_dir: &'a Path,
    /// A transformation's executable: (its PFN as written, as resolved against
    /// `original_dir`) to the restored copy's path.
    pub code: &'a dyn Fn(&str, &str) -> Option<String>,
    /// A logical file name to the restored copy's path.
    pub file: &'a dyn Fn(&str) -> Option<String>,
}

fn pfn_entries_mut<'a>(
    top: &'a mut Map,
    cat: &str,
    list: &str,
) -> impl Iterator<Item = &'a mut Map> {
    top.get_mut(cat)
        .and_then(Node::as_map_mut)
        .and_then(|c| c.get_mut(list))
        .and_then(Node::as_seq_mut)
        .into_iter()
        .flatten()
        .filter_map(Node::as_map_mut)
}

/// Rewrites every `pfn` in the list `key` of a catalog entry through `f`; returns how many
/// were rewritten and whether every one was.
fn rewrite_pfns(entry: &mut Map, key: &str, f: &dyn Fn(&str) -> Option<String>) -> (usize, bool) {
    let mut n = 0;
    let mut all = true;
    let items = entry
        .get_mut(key)
        .and_then(Node::as_seq_mut)
        .into_iter()
        .flatten()
        .filter_map(Node::as_map_mut);
    for p in items {
        let Some(old) = p.get("pfn").and_then(Node::as_str).map(str::to_string) else {
            continue;
        };
        match f(&old) {
            Some(new) => {
                if new != old {
                    p.insert("pfn", Node::str(&new));
                    n += 1;
                }
            }
            None => all = false,
        }
    }
    (n, all)
}

impl Workflow {
    /// Adds to the embedded transformation catalog the transformations of the given catalog
    /// files (restored copies of side catalogs) that it does not embed, PFNs as written, so
    /// [`relocate`](Self::relocate) maps them like embedded ones; returns how many.
    pub fn embed_transformations(&mut self, files: &[std::path::PathBuf]) -> Result<usize> {
        let mut added = 0;
        for f in files {
            let entries = super::catalogs::transformations_as_written(f)?;
            let top = self
                .doc
                .as_map_mut()
                .ok_or_else(|| Error::Invalid("workflow is not a mapping".into()))?;
            let tc = top
                .entry("transformationCatalog", || Node::Map(Map::new()))
                .as_map_mut()
                .ok_or_else(|| Error::Invalid("transformationCatalog is not a mapping".into()))?;
            let Node::Seq(list) = tc.entry("transformations", || Node::Seq(Vec::new())) else {
                return Err(Error::Invalid(
                    "transformationCatalog.transformations is not a list".into(),
                ));
            };
            for e in entries {
                let name = str_of(&e, "name");
                let embedded = list
                    .iter()
                    .filter_map(Node::as_map)
                    .any(|t| str_of(t, "name") == name);
                if name.is_some() && !embedded {
                    list.push(Node::Map(e));
                    added += 1;
                }
            }
        }
        Ok(added)
    }

    /// Rewrites the workflow's transformation and replica catalogs through `maps`: every
    /// transformation's site PFNs, every replica's PFNs, and, for a file that a job reads
    /// (or a sub-workflow file) which no job here writes and the replica catalog does not
    /// list (it came from a side catalog or an input directory), a new replica entry for its
    /// restored copy.
    pub fn relocate(&mut self, maps: &RelocateMaps<'_>) -> Result<Relocation> {
        let used: std::collections::BTreeSet<String> = self
            .job_maps()
            .filter(|j| str_of(j, "type") == Some("job"))
            .filter_map(|j| str_of(j, "name").map(str::to_string))
            .collect();
        let produced: std::collections::HashSet<&str> = self
            .job_maps()
            .flat_map(uses_of)
            .filter(|u| u.output)
            .map(|u| u.lfn)
            .collect();
        let mut wanted: Vec<String> = self.sub_jobs().map(|(_, f)| f.to_string()).collect();
        for u in self.job_maps().flat_map(uses_of) {
            if u.input && !produced.contains(u.lfn) && !wanted.iter().any(|w| w == u.lfn) {
                wanted.push(u.lfn.to_string());
            }
        }
        let mut out = Relocation::default();
        let top = self
            .doc
            .as_map_mut()
            .ok_or_else(|| Error::Invalid("workflow is not a mapping".into()))?;
        for t in pfn_entries_mut(top, "transformationCatalog", "transformations") {
            let Some(name) = str_of(t, "name").map(str::to_string) else {
                continue;
            };
            let first = t
                .get("sites")
                .and_then(Node::as_seq)
                .into_iter()
                .flatten()
                .filter_map(Node::as_map)
                .find_map(|s| str_of(s, "pfn"))
                .map(str::to_string);
            let code = |pfn: &str| (maps.code)(pfn, &resolve(maps.original_dir, pfn));
            let (n, all) = rewrite_pfns(t, "sites", &code);
            out.rewritten += n;
            if !all && used.contains(&name) {
                let pfn = first.unwrap_or_default();
                out.unmapped.push((name, resolve(maps.original_dir, &pfn)));
            }
        }
        let mut listed = std::collections::HashSet::new();
        for r in pfn_entries_mut(top, "replicaCatalog", "replicas") {
            let Some(lfn) = str_of(r, "lfn").map(str::to_string) else {
                continue;
            };
            listed.insert(lfn.clone());
            if let Some(new) = (maps.file)(&lfn) {
                out.rewritten += rewrite_pfns(r, "pfns", &|_| Some(new.clone())).0;
            }
        }
        for f in wanted.iter().filter(|f| !listed.contains(*f)) {
            if let Some(new) = (maps.file)(f) {
                super::apply::add_replica(top, f, &new).map_err(Error::Invalid)?;
                out.rewritten += 1;
            }
        }
        Ok(out)
    }
}
