//! Pegasus 5 workflows (the only module that touches YAML): reading and validating the
//! abstract workflow ([`Workflow`]) with its sub-workflows ([`WorkflowTree`]), deciding what to
//! track from plain Pegasus metadata tags and a policy, and writing an augmented workflow tree
//! with tracking jobs that call `store` ([`augment`]); [`WorkflowTree::plan`] flattens a tree
//! into jobs for the local runner.
//!
//! The document is kept as a generic YAML tree (`doc`), so keys this module does not know
//! survive a round trip untouched; only `jobs`, `jobDependencies` and the catalogs are read, and
//! new jobs, dependencies and one transformation are appended. It is written back by a small
//! emitter of its own (`emit`).
//!
//! Layer: above runs, knowing none of them: it reads and writes workflow documents and uses
//! only the error type. The runner and the CLI use it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use crate::error::{Error, Result};

mod apply;
mod augment;
mod catalogs;
mod container;
mod doc;
mod emit;
mod limits;
mod relocate;
mod split;
mod tags;
mod tree;

pub use augment::{
    add_to_jobs, augment, AugmentOptions, AugmentReport, TrackedJob, WorkflowReport,
};
pub use catalogs::{side_kind, side_lfn, CatalogOptions, SideCatalogs, SIDE_KINDS};
pub use container::{ContainerSpec, ContainerType};
pub use relocate::{RelocateMaps, Relocation};
pub use tree::{PlannedJob, RuntimeSub, SubWorkflow, WorkflowTree};

use doc::{Map, Node};

/// What a workflow-level policy tracks (see the table in the README and issue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Only what tags ask for.
    Tags,
    /// Inputs, outputs, intermediates and their logical names.
    Basic,
    /// Basic plus the workflow description and transformations.
    Full,
    /// Input (and intermediate) files.
    Inputs,
    /// Output (and intermediate) files.
    Outputs,
    /// Transformations (code).
    Transformations,
}

impl Policy {
    /// Its name in `store_track`.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Tags => "tags",
            Policy::Basic => "basic",
            Policy::Full => "full",
            Policy::Inputs => "inputs",
            Policy::Outputs => "outputs",
            Policy::Transformations => "transformations",
        }
    }
}

/// The policy names, for messages.
const POLICIES: &str = "full, basic, inputs, outputs, transformations";

impl std::str::FromStr for Policy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Policy> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "" | "none" | "tags" => Policy::Tags,
            "basic" => Policy::Basic,
            "full" => Policy::Full,
            "inputs" | "input" => Policy::Inputs,
            "outputs" | "output" => Policy::Outputs,
            "transformations" | "transformation" | "code" => Policy::Transformations,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown policy {other:?} ({POLICIES})"
                )))
            }
        })
    }
}

/// Pegasus metadata values are strings: "true"/"false", "1"/"0", "yes"/"no", "on"/"off"
/// (any case; "False" is false). YAML booleans and numbers are accepted too.
fn truthy(v: &Node) -> Option<bool> {
    match v {
        Node::Bool(b) => Some(*b),
        Node::Int(i) => Some(*i != 0),
        Node::UInt(_) => Some(true),
        Node::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" | "on" => Some(true),
            "false" | "0" | "no" | "n" | "off" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn get<'a>(m: &'a Map, k: &str) -> Option<&'a Node> {
    m.get(k)
}

fn str_of<'a>(m: &'a Map, k: &str) -> Option<&'a str> {
    get(m, k).and_then(Node::as_str)
}

/// A metadata flag, looked up under any of `names` (keys compared case-insensitively).
fn flag(meta: Option<&Node>, names: &[&str]) -> Result<Option<bool>> {
    let Some(Node::Map(m)) = meta else {
        return Ok(None);
    };
    match tags::lookup(m, names) {
        None => Ok(None),
        Some((n, v)) => truthy(v)
            .map(Some)
            .ok_or_else(|| Error::Invalid(format!("metadata {n}: {v:?} is not true or false"))),
    }
}

use tags::{INPUT_TAGS, OUTPUT_TAGS, TRANS_TAGS, WF_TAGS};

/// A validated workflow.
pub struct Workflow {
    doc: Node,
    /// Workflow name.
    pub name: String,
    /// Job IDs in document order.
    pub jobs: Vec<String>,
    /// Parents of each job.
    pub parents: HashMap<String, BTreeSet<String>>,
    /// Catalog entries from files beside it (shared by every workflow of a tree).
    side: std::sync::Arc<SideCatalogs>,
}

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: {what}", path.display()))
}

impl Workflow {
    /// Parses and validates a Pegasus 5 abstract workflow.
    pub fn parse(text: &str, path: &Path) -> Result<Workflow> {
        let doc = doc::parse(text).map_err(|e| match e.location() {
            Some(l) => bad(
                path,
                format!(
                    "invalid YAML at line {}, column {}: {e}",
                    l.line(),
                    l.column()
                ),
            ),
            None => bad(path, format!("invalid YAML: {e}")),
        })?;
        Workflow::validate(doc, path)
    }

    /// Serializes the workflow document to YAML.
    pub fn to_yaml(&self) -> Result<String> {
        emit::to_yaml(&self.doc)
    }

    fn validate(doc: Node, path: &Path) -> Result<Workflow> {
        let top = doc.as_map().ok_or_else(|| {
            bad(
                path,
                "not a Pegasus workflow (expected a mapping at the top)",
            )
        })?;
        let version = match get(top, "pegasus") {
            Some(Node::Str(s)) => s.clone(),
            Some(n @ (Node::Int(_) | Node::UInt(_) | Node::Float(..))) => {
                n.scalar_text().unwrap_or_default()
            }
            _ => {
                return Err(bad(
                    path,
                    "missing required key `pegasus` (the API version, 5.x)",
                ))
            }
        };
        if !version.starts_with('5') {
            return Err(bad(
                path,
                format!("Pegasus API version {version} is not 5.x"),
            ));
        }
        let name = str_of(top, "name")
            .ok_or_else(|| bad(path, "missing required key `name`"))?
            .to_string();
        let jobs_v = get(top, "jobs")
            .and_then(Node::as_seq)
            .ok_or_else(|| bad(path, "missing required key `jobs` (a list)"))?;
        let mut jobs = Vec::new();
        let mut seen = HashSet::new();
        for (i, j) in jobs_v.iter().enumerate() {
            let m = j
                .as_map()
                .ok_or_else(|| bad(path, format!("job #{} is not a mapping", i + 1)))?;
            let id =
                str_of(m, "id").ok_or_else(|| bad(path, format!("job #{} has no `id`", i + 1)))?;
            let ty =
                str_of(m, "type").ok_or_else(|| bad(path, format!("job {id} has no `type`")))?;
            check_uses(path, id, m)?;
            check_job_keys(path, id, m)?;
            match ty {
                "job" => {
                    str_of(m, "name").ok_or_else(|| {
                        bad(path, format!("job {id} has no `name` (transformation)"))
                    })?;
                }
                "pegasusWorkflow" | "condorWorkflow" => {
                    str_of(m, "file")
                        .ok_or_else(|| bad(path, format!("sub-workflow job {id} has no `file`")))?;
                }
                other => return Err(bad(path, format!("job {id} has unknown type {other:?}"))),
            }
            if !seen.insert(id.to_string()) {
                return Err(bad(path, format!("duplicate job id {id}")));
            }
            jobs.push(id.to_string());
        }
        let mut parents: HashMap<String, BTreeSet<String>> =
            jobs.iter().map(|j| (j.clone(), BTreeSet::new())).collect();
        if let Some(deps) = get(top, "jobDependencies").filter(|d| !d.is_null()) {
            let deps = deps
                .as_seq()
                .ok_or_else(|| bad(path, "`jobDependencies` is not a list"))?;
            for d in deps {
                let m = d
                    .as_map()
                    .ok_or_else(|| bad(path, "a jobDependencies entry is not a mapping"))?;
                let id = str_of(m, "id")
                    .ok_or_else(|| bad(path, "a jobDependencies entry has no `id`"))?;
                if !seen.contains(id) {
                    return Err(bad(path, format!("jobDependencies names unknown job {id}")));
                }
                let children = get(m, "children").and_then(Node::as_seq).ok_or_else(|| {
                    bad(
                        path,
                        format!("jobDependencies entry for {id} has no `children` list"),
                    )
                })?;
                for c in children {
                    let c = c
                        .as_str()
                        .ok_or_else(|| bad(path, format!("a child of {id} is not a job id")))?;
                    let p = parents
                        .get_mut(c)
                        .ok_or_else(|| bad(path, format!("job {id} has unknown child {c}")))?;
                    p.insert(id.to_string());
                }
            }
        }
        let wf = Workflow {
            doc,
            name,
            jobs,
            parents,
            side: std::sync::Arc::default(),
        };
        if let Some(j) = wf.find_cycle() {
            return Err(bad(path, format!("dependency cycle through job {j}")));
        }
        Ok(wf)
    }

    fn find_cycle(&self) -> Option<String> {
        // Kahn's algorithm: whatever cannot be ordered lies on or behind a cycle.
        let mut indeg: HashMap<&str, usize> = self
            .jobs
            .iter()
            .map(|j| (j.as_str(), self.parents[j].len()))
            .collect();
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for (c, ps) in &self.parents {
            for p in ps {
                children.entry(p.as_str()).or_default().push(c.as_str());
            }
        }
        let mut ready: Vec<&str> = indeg
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(j, _)| *j)
            .collect();
        let mut done = 0;
        while let Some(j) = ready.pop() {
            done += 1;
            for c in children.get(j).into_iter().flatten() {
                let d = indeg.get_mut(c).expect("every child is a job");
                *d -= 1;
                if *d == 0 {
                    ready.push(c);
                }
            }
        }
        (done < self.jobs.len()).then(|| {
            let mut left: Vec<&str> = indeg
                .iter()
                .filter(|(_, d)| **d > 0)
                .map(|(j, _)| *j)
                .collect();
            left.sort();
            left[0].to_string()
        })
    }

    fn top(&self) -> &Map {
        self.doc.as_map().expect("validated: a mapping")
    }

    /// Each job's transformation name (job ID -> `name`), for jobs of type `job`.
    pub fn transformations(&self) -> HashMap<String, String> {
        self.job_maps()
            .filter_map(|j| Some((str_of(j, "id")?.to_string(), str_of(j, "name")?.to_string())))
            .collect()
    }

    fn job_maps(&self) -> impl Iterator<Item = &Map> {
        get(self.top(), "jobs")
            .and_then(Node::as_seq)
            .into_iter()
            .flatten()
            .filter_map(Node::as_map)
    }

    /// The entries of a catalog (`replicaCatalog`/`replicas`, `transformationCatalog`/
    /// `transformations`): the embedded ones, then those of the side files whose logical or
    /// transformation name no embedded entry has (catalogs.rs).
    fn catalog_entries<'a>(&'a self, cat: &'a str, list: &str) -> impl Iterator<Item = &'a Map> {
        let embedded: Vec<&Map> = catalog(self.top(), cat, list).collect();
        let names: HashSet<&str> = embedded
            .iter()
            .filter_map(|e| catalogs::entry_key(cat, e))
            .collect();
        let side: Vec<&Map> = self
            .side
            .entries(cat)
            .iter()
            .filter(|e| catalogs::entry_key(cat, e).is_none_or(|k| !names.contains(k)))
            .collect();
        embedded.into_iter().chain(side)
    }

    /// Replica-catalog metadata by logical name (one pass; lookups are then constant time).
    fn replica_meta(&self) -> HashMap<&str, &Node> {
        self.catalog_entries("replicaCatalog", "replicas")
            .filter_map(|r| Some((str_of(r, "lfn")?, get(r, "metadata")?)))
            .collect()
    }
}

impl Workflow {
    /// Physical file names of the replica catalog, by logical name (first PFN). Relative PFNs
    /// are taken relative to `base` (the workflow file's directory): a convenience of the local
    /// runner, so a committed example runs from any checkout.
    pub fn replicas(&self, base: &Path) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for r in self.catalog_entries("replicaCatalog", "replicas") {
            let (Some(lfn), Some(pfn)) = (str_of(r, "lfn"), first_pfn(r, "pfns")) else {
                continue;
            };
            out.entry(lfn.to_string())
                .or_insert_with(|| resolve(base, pfn));
        }
        out
    }

    /// The `pegasusWorkflow` jobs: (job ID, `file`). Already planned sub-workflows
    /// (`condorWorkflow`, a DAG) are not workflows this module reads.
    fn sub_jobs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.job_maps().filter_map(|j| {
            (str_of(j, "type") == Some("pegasusWorkflow"))
                .then(|| Some((str_of(j, "id")?, str_of(j, "file")?)))
                .flatten()
        })
    }
}

/// How a job uses a file (Pegasus's `linkType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// Read.
    Input,
    /// Written.
    Output,
    /// Read, then written.
    Inout,
    /// Written (and read back on a restart); often also staged in.
    Checkpoint,
    /// Neither (`none`).
    Nothing,
}

/// The link types of Pegasus's workflow schema (`wf-5.0.yml`, `linkType`).
const LINK_TYPES: &str = "input, output, inout, checkpoint, none";

impl Link {
    fn parse(s: &str) -> Option<Link> {
        Some(match s {
            "input" => Link::Input,
            "output" => Link::Output,
            "inout" => Link::Inout,
            "checkpoint" => Link::Checkpoint,
            "none" => Link::Nothing,
            _ => return None,
        })
    }
}

/// One entry of a job's `uses`.
struct Use<'a> {
    lfn: &'a str,
    /// The job reads it (input, inout, checkpoint when present).
    input: bool,
    /// The job writes it (output, inout, checkpoint).
    output: bool,
    /// Read if present: a checkpoint file the first job that writes it finds missing.
    optional_input: bool,
    meta: Option<&'a Node>,
    /// A file the planner reads (a sub-workflow's own workflow file), not data of the job.
    for_planning: bool,
}

fn uses_of(job: &Map) -> impl Iterator<Item = Use<'_>> {
    get(job, "uses")
        .and_then(Node::as_seq)
        .into_iter()
        .flatten()
        .filter_map(Node::as_map)
        .filter_map(|u| {
            let lfn = str_of(u, "lfn")?;
            // (validated: a missing or unknown type never reaches here from a parsed workflow)
            let link = str_of(u, "type")
                .and_then(Link::parse)
                .unwrap_or(Link::Input);
            Some(Use {
                lfn,
                input: matches!(link, Link::Input | Link::Inout | Link::Checkpoint),
                output: matches!(link, Link::Output | Link::Inout | Link::Checkpoint),
                optional_input: link == Link::Checkpoint,
                meta: get(u, "metadata"),
                for_planning: get(u, "forPlanning").and_then(truthy).unwrap_or(false),
            })
        })
}

/// Checks the keys every job needs, as Pegasus's schema (`wf-5.0.yml`, `abstractJob`) and its
/// loader require them: `arguments` and `uses` lists (`[]` when none), `profiles` a mapping.
fn check_job_keys(path: &Path, id: &str, job: &Map) -> Result<()> {
    for key in ["arguments", "uses"] {
        match get(job, key) {
            None | Some(Node::Null) => {
                return Err(bad(
                    path,
                    format!(
                        "job {id} has no `{key}` (a list, `[]` when empty; Pegasus requires it)"
                    ),
                ))
            }
            Some(Node::Seq(_)) => {}
            Some(_) => return Err(bad(path, format!("job {id}: `{key}` is not a list"))),
        }
    }
    if let Some(p) = get(job, "profiles").filter(|p| !p.is_null()) {
        if p.as_map().is_none() {
            return Err(bad(
                path,
                format!("job {id}: `profiles` is not a mapping (namespace: {{key: value}})"),
            ));
        }
    }
    Ok(())
}

/// Checks a job's `uses` against Pegasus's schema (`wf-5.0.yml`): a list of mappings, each
/// with a string `lfn` and a `type` of [`LINK_TYPES`]; `stageOut`, `registerReplica`,
/// `optional` and `forPlanning`, when present, booleans.
fn check_uses(path: &Path, id: &str, job: &Map) -> Result<()> {
    let Some(uses) = get(job, "uses").filter(|u| !u.is_null()) else {
        return Ok(());
    };
    let uses = uses
        .as_seq()
        .ok_or_else(|| bad(path, format!("job {id}: `uses` is not a list")))?;
    for (i, u) in uses.iter().enumerate() {
        let at = |what: String| bad(path, format!("job {id}: uses #{}: {what}", i + 1));
        let m = u.as_map().ok_or_else(|| at("not a mapping".into()))?;
        let lfn = str_of(m, "lfn").ok_or_else(|| at("no `lfn` (a string)".into()))?;
        let at = |what: String| bad(path, format!("job {id}: uses {lfn:?}: {what}"));
        match get(m, "type") {
            None => return Err(at(format!("no `type` (one of {LINK_TYPES})"))),
            Some(t) => {
                let t = t.as_str().unwrap_or("");
                if Link::parse(t).is_none() {
                    return Err(at(format!(
                        "type {:?} is not a link type (one of {LINK_TYPES})",
                        get(m, "type")
                            .and_then(Node::scalar_text)
                            .unwrap_or_default()
                    )));
                }
            }
        }
        for key in ["stageOut", "registerReplica", "optional", "forPlanning"] {
            if let Some(v) = get(m, key).filter(|v| !matches!(v, Node::Bool(_))) {
                return Err(at(format!(
                    "`{key}` must be true or false, not {:?}",
                    v.scalar_text().unwrap_or_default()
                )));
            }
        }
    }
    Ok(())
}

/// The entries of an embedded catalog (`replicaCatalog.replicas`, ...).
fn catalog<'a>(top: &'a Map, cat: &str, list: &str) -> impl Iterator<Item = &'a Map> {
    get(top, cat)
        .and_then(Node::as_map)
        .and_then(|c| get(c, list))
        .and_then(Node::as_seq)
        .into_iter()
        .flatten()
        .filter_map(Node::as_map)
}

/// The first `pfn` in the list `key` of a catalog entry (`pfns` of a replica, `sites` of a
/// transformation).
fn first_pfn<'a>(entry: &'a Map, key: &str) -> Option<&'a str> {
    get(entry, key)
        .and_then(Node::as_seq)
        .into_iter()
        .flatten()
        .filter_map(Node::as_map)
        .find_map(|p| str_of(p, "pfn"))
}

fn resolve(base: &Path, pfn: &str) -> String {
    let plain = pfn.strip_prefix("file://").unwrap_or(pfn);
    if plain.starts_with('/') || plain.contains("://") {
        plain.to_string()
    } else {
        base.join(plain).to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pegasus_strings_parse_as_booleans() {
        for (s, b) in [
            ("true", true),
            ("True", true),
            ("1", true),
            ("yes", true),
            ("False", false),
            ("0", false),
            ("no", false),
        ] {
            assert_eq!(truthy(&Node::str(s)), Some(b), "{s}");
        }
        assert_eq!(truthy(&Node::str("maybe")), None);
    }
}
