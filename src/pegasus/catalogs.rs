//! Catalogs beside the workflow, found as `pegasus-plan` finds them. Most real workflows keep
//! their replica and transformation catalogs in files (`replicas.yml`, `transformations.yml`,
//! written by the Python API's `write()`), or name them in `pegasus.properties`, instead of
//! embedding them.
//!
//! Where (for the root workflow's directory, or `--catalog-dir DIR`):
//! 1. `pegasus.properties` there, if present: `pegasus.catalog.replica.file`,
//!    `pegasus.catalog.transformation.file` (relative paths against the properties file's
//!    directory), `pegasus.catalog.replica` (`YAML`, the default, or `File`, the text format
//!    `LFN PFN key="value"...`), `pegasus.catalog.replica.directory` (an input directory);
//! 2. else `replicas.yml` and `transformations.yml` there, if present (Pegasus's defaults, in
//!    the directory it is planned from);
//! 3. input directories (`--input-dir DIR`, like `pegasus-plan --input-dir`): every file below
//!    DIR under its path relative to DIR as logical name.
//!
//! Precedence, as Pegasus states it for catalogs in the workflow ("any entry included in the
//! workflow takes precedence over regular replica and transformation catalog entries"): an
//! entry embedded in the workflow wins for its logical name or transformation name; then the
//! catalog file's; then the input directories'. Side entries apply to every workflow of a
//! tree. Relative PFNs in a side file are taken against that file's directory. Side files are
//! read, never written: what augmentation adds goes into the augmented workflow itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::doc::{self, Map, Node};
use super::{bad, get, resolve, str_of};
use crate::error::{Error, Result};

/// Where to look for side catalogs besides the workflow's directory.
#[derive(Clone, Debug, Default)]
pub struct CatalogOptions {
    /// Look here instead of the root workflow's directory (like planning from DIR).
    pub catalog_dir: Option<PathBuf>,
    /// Input directories (`pegasus-plan --input-dir`).
    pub input_dirs: Vec<PathBuf>,
}

/// Replica and transformation entries read from side files.
#[derive(Debug, Default)]
pub struct SideCatalogs {
    pub(crate) replicas: Vec<Map>,
    pub(crate) transformations: Vec<Map>,
    /// The files and directories read, for messages and reports.
    pub sources: Vec<PathBuf>,
    /// The catalog files read, each with its kind ([`SIDE_KINDS`]): what a tracked run
    /// records beside its description, so that a rerun has them.
    pub files: Vec<(&'static str, PathBuf)>,
}

/// The kinds of side catalog files: a YAML replica catalog, a text one, a YAML
/// transformation catalog, `pegasus.properties`.
pub const SIDE_KINDS: [&str; 4] = ["replicas", "replicas-text", "transformations", "properties"];

/// The logical name a side catalog file is recorded under in a run:
/// `store-catalogs/<kind>/<file name>`.
pub fn side_lfn(kind: &str, path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| kind.to_string());
    format!("store-catalogs/{kind}/{name}")
}

/// The kind of a side catalog file from the logical name [`side_lfn`] gave it.
pub fn side_kind(lfn: &str) -> Option<&'static str> {
    let rest = lfn.strip_prefix("store-catalogs/")?;
    let (kind, _) = rest.split_once('/')?;
    SIDE_KINDS.iter().copied().find(|k| *k == kind)
}

/// The transformations of a YAML transformation catalog file, PFNs as written (a restored
/// copy's relative PFNs are mapped like an embedded catalog's).
pub(crate) fn transformations_as_written(path: &Path) -> Result<Vec<Map>> {
    yaml_entries(path, "transformations", None)
}

/// `key = value`, `key: value` or `key value` lines of a Java properties file (comments `#`
/// and `!`).
fn properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let at = l.find(['=', ':', ' ', '\t'])?;
            let (k, v) = l.split_at(at);
            let v = v[1..].trim_start_matches(['=', ':', ' ', '\t']).trim();
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Makes every `pfn` under `key` of each entry absolute against `dir`.
fn absolute_pfns(entries: &mut [Map], key: &str, dir: &Path) {
    for e in entries.iter_mut() {
        let items = e
            .get_mut(key)
            .and_then(Node::as_seq_mut)
            .into_iter()
            .flatten()
            .filter_map(Node::as_map_mut);
        for p in items {
            if let Some(pfn) = p.get("pfn").and_then(Node::as_str).map(str::to_string) {
                p.insert("pfn", Node::str(&resolve(dir, &pfn)));
            }
        }
    }
}

/// The entries of the list `list` of a YAML catalog file, with the PFNs under `pfn_key` made
/// absolute against the file's directory (when given).
fn yaml_entries(path: &Path, list: &str, pfn_key: Option<&str>) -> Result<Vec<Map>> {
    let text = read(path)?;
    let node = doc::parse(&text).map_err(|e| bad(path, format!("invalid YAML: {e}")))?;
    let top = node
        .as_map()
        .ok_or_else(|| bad(path, "not a catalog (expected a mapping at the top)"))?;
    let mut entries: Vec<Map> = match get(top, list) {
        None => Vec::new(),
        Some(l) => l
            .as_seq()
            .ok_or_else(|| bad(path, format!("`{list}` is not a list")))?
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e.as_map()
                    .cloned()
                    .ok_or_else(|| bad(path, format!("{list} #{} is not a mapping", i + 1)))
            })
            .collect::<Result<_>>()?,
    };
    if let Some(key) = pfn_key {
        let dir = path.parent().unwrap_or(Path::new("."));
        absolute_pfns(&mut entries, key, dir);
    }
    Ok(entries)
}

fn replica(lfn: &str, pfn: &str) -> Map {
    Map::from([
        ("lfn", Node::str(lfn)),
        (
            "pfns",
            Node::Seq(vec![Node::Map(Map::from([
                ("site", Node::str("local")),
                ("pfn", Node::str(pfn)),
            ]))]),
        ),
    ])
}

/// The text replica catalog: `LFN PFN [key="value"]...` per line (quotes allowed).
fn text_replicas(path: &Path) -> Result<Vec<Map>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (n, line) in read(path)?.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace().map(|w| w.trim_matches('"'));
        match (words.next(), words.next()) {
            (Some(lfn), Some(pfn)) => out.push(replica(lfn, &resolve(dir, pfn))),
            _ => {
                return Err(bad(
                    path,
                    format!("line {}: expected `LFN PFN [key=value]...`", n + 1),
                ))
            }
        }
    }
    Ok(out)
}

/// Every file below `dir`, by its path relative to `dir` (sorted).
fn input_dir(dir: &Path) -> Result<Vec<Map>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for e in entries {
            let e = e.map_err(|e| Error::io(&d, e))?;
            let p = e.path();
            let ty = e.file_type().map_err(|e| Error::io(&p, e))?;
            if ty.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                let abs = std::path::absolute(&p).map_err(|e| Error::io(&p, e))?;
                out.push((
                    rel.to_string_lossy().into_owned(),
                    abs.to_string_lossy().into_owned(),
                ));
            }
        }
    }
    out.sort();
    Ok(out.iter().map(|(l, p)| replica(l, p)).collect())
}

impl SideCatalogs {
    /// Reads the side catalogs for a workflow in `wf_dir` (see the module documentation).
    pub fn find(wf_dir: &Path, opts: &CatalogOptions) -> Result<SideCatalogs> {
        let dir = opts.catalog_dir.as_deref().unwrap_or(wf_dir);
        let mut out = SideCatalogs::default();
        let props_path = dir.join("pegasus.properties");
        let props = if props_path.is_file() {
            out.sources.push(props_path.clone());
            out.files.push(("properties", props_path.clone()));
            properties(&read(&props_path)?)
        } else {
            BTreeMap::new()
        };
        let named = |key: &str, default: &str| -> Option<PathBuf> {
            match props.get(key) {
                Some(f) => Some(dir.join(f)),
                None => Some(dir.join(default)).filter(|p| p.is_file()),
            }
        };
        if let Some(rc) = named("pegasus.catalog.replica.file", "replicas.yml") {
            let text_format = props
                .get("pegasus.catalog.replica")
                .is_some_and(|t| t.eq_ignore_ascii_case("file"));
            out.replicas = if text_format {
                text_replicas(&rc)?
            } else {
                yaml_entries(&rc, "replicas", Some("pfns"))?
            };
            let kind = if text_format {
                "replicas-text"
            } else {
                "replicas"
            };
            out.files.push((kind, rc.clone()));
            out.sources.push(rc);
        }
        if let Some(tc) = named("pegasus.catalog.transformation.file", "transformations.yml") {
            if props
                .get("pegasus.catalog.transformation")
                .is_some_and(|t| t.eq_ignore_ascii_case("text"))
            {
                return Err(bad(
                    &tc,
                    "the Text transformation catalog format is not read; write it as YAML (pegasus-tc-converter)",
                ));
            }
            out.transformations = yaml_entries(&tc, "transformations", Some("sites"))?;
            out.files.push(("transformations", tc.clone()));
            out.sources.push(tc);
        }
        let mut dirs: Vec<PathBuf> = opts.input_dirs.clone();
        if let Some(d) = props.get("pegasus.catalog.replica.directory") {
            dirs.push(dir.join(d));
        }
        for d in dirs {
            if !d.is_dir() {
                return Err(Error::Invalid(format!(
                    "input directory {} is not a directory",
                    d.display()
                )));
            }
            out.replicas.extend(input_dir(&d)?);
            out.sources.push(d);
        }
        Ok(out)
    }

    /// The side entries of an embedded catalog's list (`replicaCatalog.replicas`, ...).
    pub(crate) fn entries(&self, cat: &str) -> &[Map] {
        match cat {
            "replicaCatalog" => &self.replicas,
            "transformationCatalog" => &self.transformations,
            _ => &[],
        }
    }
}

/// The key a catalog entry is known by: `lfn` of a replica, `name` of a transformation.
pub(crate) fn entry_key<'a>(cat: &str, entry: &'a Map) -> Option<&'a str> {
    match cat {
        "replicaCatalog" => str_of(entry, "lfn"),
        _ => str_of(entry, "name"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_properties_in_their_three_spellings() {
        let p = properties(
            "# comment\npegasus.catalog.replica.file = rc.yml\n! also\na.b: c d\nx.y z\n",
        );
        assert_eq!(p["pegasus.catalog.replica.file"], "rc.yml");
        assert_eq!(p["a.b"], "c d");
        assert_eq!(p["x.y"], "z");
    }
}
