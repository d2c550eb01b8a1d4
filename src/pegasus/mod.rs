//! Pegasus 5 workflows (the only module that touches YAML): reading and validating the
//! abstract workflow, deciding what to track from plain Pegasus metadata tags and a policy,
//! and writing an augmented workflow with tracking jobs that call `store`.
//!
//! The document is kept as a generic YAML tree ([`doc`]), so keys this module does not know
//! survive a round trip untouched; only `jobs`, `jobDependencies` and the catalogs are read, and
//! new jobs, dependencies and one transformation are appended. It is written back by a small
//! emitter of its own ([`emit`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use crate::error::{Error, Result};
use crate::run::Role;

mod doc;
mod emit;

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

/// A metadata flag, looked up under any of `names`.
fn flag(meta: Option<&Node>, names: &[&str]) -> Result<Option<bool>> {
    let Some(Node::Map(m)) = meta else {
        return Ok(None);
    };
    for n in names {
        if let Some(v) = get(m, n) {
            return truthy(v).map(Some).ok_or_else(|| {
                Error::Invalid(format!("metadata {n}: {v:?} is not true or false"))
            });
        }
    }
    Ok(None)
}

const INPUT_TAGS: &[&str] = &["input_track", "input_Track", "track_input"];
const OUTPUT_TAGS: &[&str] = &["output_track", "output_Track", "track_output"];
const TRANS_TAGS: &[&str] = &["track_trans", "track_Trans", "trans_track", "trans_Track"];
const WF_TAGS: &[&str] = &["wf_track", "wf_Track", "track_wf"];

/// A validated workflow.
pub struct Workflow {
    doc: Node,
    /// Workflow name.
    pub name: String,
    /// Job IDs in document order.
    pub jobs: Vec<String>,
    /// Parents of each job.
    pub parents: HashMap<String, BTreeSet<String>>,
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

    fn job_maps(&self) -> impl Iterator<Item = &Map> {
        get(self.top(), "jobs")
            .and_then(Node::as_seq)
            .into_iter()
            .flatten()
            .filter_map(Node::as_map)
    }

    /// Replica-catalog metadata of an LFN, if the workflow embeds a replica catalog.
    /// Replica-catalog metadata by logical name (one pass; lookups are then constant time).
    fn replica_meta(&self) -> HashMap<&str, &Node> {
        let rc = get(self.top(), "replicaCatalog").and_then(Node::as_map);
        rc.and_then(|rc| get(rc, "replicas"))
            .and_then(Node::as_seq)
            .into_iter()
            .flatten()
            .filter_map(Node::as_map)
            .filter_map(|r| Some((str_of(r, "lfn")?, get(r, "metadata")?)))
            .collect()
    }
}

/// One job ready to execute locally (see `runner`).
#[derive(Clone, Debug)]
pub struct PlannedJob {
    /// Job ID.
    pub id: String,
    /// Executable path (the transformation's PFN).
    pub executable: String,
    /// Arguments (file arguments are their logical names).
    pub args: Vec<String>,
    /// Logical names of its input files.
    pub inputs: Vec<String>,
    /// Environment profiles (`profiles.env`).
    pub env: Vec<(String, String)>,
    /// Parent job IDs.
    pub parents: Vec<String>,
}

impl Workflow {
    /// Physical file names of the replica catalog, by logical name (first PFN). Relative PFNs
    /// are taken relative to `base` (the workflow file's directory): a convenience of the local
    /// runner, so a committed example runs from any checkout.
    pub fn replicas(&self, base: &Path) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for r in catalog(self.top(), "replicaCatalog", "replicas") {
            let Some(lfn) = str_of(r, "lfn") else {
                continue;
            };
            let pfn = first_pfn(r, "pfns");
            if let Some(pfn) = pfn {
                out.entry(lfn.to_string())
                    .or_insert_with(|| resolve(base, pfn));
            }
        }
        out
    }

    /// Every job with its executable resolved from the transformation catalog (relative PFNs
    /// against `base`, as for [`Workflow::replicas`]).
    pub fn plan(&self, base: &Path) -> Result<Vec<PlannedJob>> {
        let mut exes = HashMap::new();
        for t in catalog(self.top(), "transformationCatalog", "transformations") {
            let pfn = first_pfn(t, "sites");
            if let (Some(name), Some(pfn)) = (str_of(t, "name"), pfn) {
                exes.insert(name.to_string(), resolve(base, pfn));
            }
        }
        let mut out = Vec::new();
        for j in self.job_maps() {
            let id = str_of(j, "id").expect("validated").to_string();
            if str_of(j, "type") != Some("job") {
                return Err(Error::Invalid(format!(
                    "job {id} is a sub-workflow: run it with pegasus-plan (the local runner executes plain jobs)"
                )));
            }
            let name = str_of(j, "name").expect("validated");
            let executable = exes.get(name).cloned().ok_or_else(|| {
                Error::Invalid(format!(
                    "job {id}: transformation {name} is not in the transformation catalog"
                ))
            })?;
            let args = get(j, "arguments")
                .and_then(Node::as_seq)
                .into_iter()
                .flatten()
                .map(|a| a.scalar_text().unwrap_or_default())
                .collect();
            let inputs = uses_of(j)
                .filter(|u| u.input)
                .map(|u| u.lfn.to_string())
                .collect();
            let env = get(j, "profiles")
                .and_then(Node::as_map)
                .and_then(|p| get(p, "env"))
                .and_then(Node::as_map)
                .into_iter()
                .flat_map(Map::iter)
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.scalar_text()?)))
                .collect();
            let parents = self.parents[&id].iter().cloned().collect();
            out.push(PlannedJob {
                id,
                executable,
                args,
                inputs,
                env,
                parents,
            });
        }
        Ok(out)
    }
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

/// Options for [`augment`].
#[derive(Clone, Debug)]
pub struct AugmentOptions {
    /// Policy from the command line (overrides the workflow's `store_track` metadata).
    pub policy: Option<Policy>,
    /// Where execution nodes find the `store` binary.
    pub store_bin: String,
    /// The store directory the tracking jobs use (`--store`), if not their own default.
    pub store_dir: Option<String>,
    /// The site the `store` transformation is registered for.
    pub site: String,
    /// Absolute path of the workflow file (tracked as the workflow description).
    pub workflow_pfn: String,
    /// Directory relative PFNs are resolved against (the workflow file's directory).
    pub base_dir: std::path::PathBuf,
}

/// What [`augment`] decided.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct AugmentReport {
    /// Main jobs.
    pub main_jobs: usize,
    /// Tracking jobs added (including the seal job).
    pub added_jobs: usize,
    /// Files tracked, with their roles.
    pub tracked: BTreeMap<String, String>,
    /// Transformations tracked.
    pub transformations: Vec<String>,
    /// Whether the workflow description is tracked.
    pub workflow_tracked: bool,
}

struct Use<'a> {
    lfn: &'a str,
    input: bool,
    meta: Option<&'a Node>,
}

fn uses_of(job: &Map) -> impl Iterator<Item = Use<'_>> {
    get(job, "uses")
        .and_then(Node::as_seq)
        .into_iter()
        .flatten()
        .filter_map(Node::as_map)
        .filter_map(|u| {
            let lfn = str_of(u, "lfn")?;
            let ty = str_of(u, "type").unwrap_or("input");
            Some(Use {
                lfn,
                input: ty == "input",
                meta: get(u, "metadata"),
            })
        })
}

fn unique_id(taken: &mut HashSet<String>, want: String) -> String {
    let mut id = want.clone();
    let mut n = 2;
    while !taken.insert(id.clone()) {
        id = format!("{want}_{n}");
        n += 1;
    }
    id
}

fn job_node(id: &str, args: Vec<String>, inputs: &[String]) -> Node {
    let uses = inputs
        .iter()
        .map(|lfn| {
            Node::Map(Map::from([
                ("lfn", Node::str(lfn)),
                ("type", Node::str("input")),
            ]))
        })
        .collect();
    Node::Map(Map::from([
        ("type", Node::str("job")),
        ("name", Node::str("store")),
        ("id", Node::str(id)),
        (
            "arguments",
            Node::Seq(args.into_iter().map(Node::Str).collect()),
        ),
        ("uses", Node::Seq(uses)),
    ]))
}

/// Adds tracking to a workflow without changing any main job, its arguments or the
/// dependencies between main jobs: per tracked job an input tracker (J's parents as parents,
/// so it runs beside J) and an output tracker (J as parent); one job for the workflow file, one
/// for the transformations; one seal job after every tracking job and every leaf job. At most
/// 2n + 3 jobs for n tracked jobs. No credential is written: tracking jobs read theirs from
/// the execution node's environment.
pub fn augment(wf: Workflow, opts: &AugmentOptions) -> Result<(Workflow, AugmentReport)> {
    let top = wf.top();
    let meta = get(top, "metadata");
    let policy = match opts.policy {
        Some(p) => p,
        None => match meta
            .and_then(Node::as_map)
            .and_then(|m| str_of(m, "store_track"))
        {
            Some(s) => s.parse()?,
            None => Policy::Tags,
        },
    };
    let files_all = matches!(policy, Policy::Basic | Policy::Full);
    let inputs_all = files_all || policy == Policy::Inputs;
    let outputs_all = files_all || policy == Policy::Outputs;
    let code_all = matches!(policy, Policy::Full | Policy::Transformations);
    let wf_tracked = flag(meta, WF_TAGS)?.unwrap_or(policy == Policy::Full);

    // Who produces and who consumes each LFN.
    let mut produced = HashSet::new();
    let mut consumed = HashSet::new();
    for j in wf.job_maps() {
        for u in uses_of(j) {
            if u.input {
                consumed.insert(u.lfn);
            } else {
                produced.insert(u.lfn);
            }
        }
    }
    let mut report = AugmentReport {
        main_jobs: wf.jobs.len(),
        workflow_tracked: wf_tracked,
        ..AugmentReport::default()
    };
    let mut taken: HashSet<String> = wf.jobs.iter().cloned().collect();
    let mut new_jobs = Vec::new();
    let mut deps: Vec<(String, String)> = Vec::new(); // (parent, child)
    let mut trackers = Vec::new();
    let base_args = |job: &str| -> Vec<String> {
        let mut a = Vec::new();
        if let Some(d) = &opts.store_dir {
            a.push("--store".to_string());
            a.push(d.clone());
        }
        a.extend(["track".to_string(), "--job".to_string(), job.to_string()]);
        a
    };
    let mut used_trans = BTreeSet::new();
    let rmeta = wf.replica_meta();
    for j in wf.job_maps() {
        let id = str_of(j, "id").expect("validated").to_string();
        if str_of(j, "type") == Some("job") {
            used_trans.insert(str_of(j, "name").expect("validated").to_string());
        }
        let mut ins = Vec::new();
        let mut outs = Vec::new();
        for u in uses_of(j) {
            let tag_in = flag(u.meta, INPUT_TAGS)?.or(flag(rmeta.get(u.lfn).copied(), INPUT_TAGS)?);
            let tag_out =
                flag(u.meta, OUTPUT_TAGS)?.or(flag(rmeta.get(u.lfn).copied(), OUTPUT_TAGS)?);
            let intermediate = produced.contains(u.lfn) && consumed.contains(u.lfn);
            let tracked = if intermediate {
                files_all
                    || tag_in.or(tag_out).unwrap_or(false)
                    || inputs_all && u.input
                    || outputs_all && !u.input
            } else if u.input {
                tag_in.unwrap_or(inputs_all)
            } else {
                tag_out.unwrap_or(outputs_all)
            };
            if !tracked {
                continue;
            }
            let role = if intermediate {
                Role::Intermediate
            } else if u.input {
                Role::Input
            } else {
                Role::Output
            };
            report
                .tracked
                .insert(u.lfn.to_string(), role.as_str().to_string());
            if u.input {
                ins.push((u.lfn, role));
            } else {
                outs.push((u.lfn, role));
            }
        }
        for (side, files) in [("in", ins), ("out", outs)] {
            if files.is_empty() {
                continue;
            }
            let tid = unique_id(&mut taken, format!("store_{side}_{id}"));
            let mut args = base_args(&id);
            args.extend(files.iter().map(|(lfn, r)| format!("{}:{lfn}", r.as_str())));
            let lfns: Vec<String> = files.iter().map(|(l, _)| l.to_string()).collect();
            new_jobs.push(job_node(&tid, args, &lfns));
            if side == "in" {
                for p in &wf.parents[&id] {
                    deps.push((p.clone(), tid.clone()));
                }
            } else {
                deps.push((id.clone(), tid.clone()));
            }
            trackers.push(tid);
        }
    }
    // The transformations (code): tracked by their PFN on the site where they are installed.
    let mut code_args = Vec::new();
    if let Some(tc) = get(top, "transformationCatalog").and_then(Node::as_map) {
        for t in get(tc, "transformations")
            .and_then(Node::as_seq)
            .into_iter()
            .flatten()
            .filter_map(Node::as_map)
        {
            let Some(name) = str_of(t, "name") else {
                continue;
            };
            if !used_trans.contains(name) {
                continue;
            }
            if !flag(get(t, "metadata"), TRANS_TAGS)?.unwrap_or(code_all) {
                continue;
            }
            let pfn = first_pfn(t, "sites");
            if let Some(pfn) = pfn {
                // Several transformations may share one executable: track it once.
                let arg = format!("code:{}", resolve(&opts.base_dir, pfn));
                if !code_args.contains(&arg) {
                    code_args.push(arg);
                }
                report.transformations.push(name.to_string());
            }
        }
    }
    if !code_args.is_empty() {
        let tid = unique_id(&mut taken, "store_code".into());
        let mut args = base_args("transformations");
        args.extend(code_args);
        new_jobs.push(job_node(&tid, args, &[]));
        trackers.push(tid);
    }
    let wf_lfn = format!("{}.store-workflow.yml", wf.name);
    if wf_tracked {
        let tid = unique_id(&mut taken, "store_workflow".into());
        let mut args = base_args("workflow");
        args.push(format!("workflow:{wf_lfn}"));
        new_jobs.push(job_node(&tid, args, std::slice::from_ref(&wf_lfn)));
        trackers.push(tid);
    }
    // The seal job: after every tracking job and every leaf job.
    let seal = unique_id(&mut taken, "store_seal".into());
    let mut seal_args = Vec::new();
    if let Some(d) = &opts.store_dir {
        seal_args.push("--store".to_string());
        seal_args.push(d.clone());
    }
    seal_args.push("seal".to_string());
    new_jobs.push(job_node(&seal, seal_args, &[]));
    let has_children: HashSet<&String> = wf.parents.values().flatten().collect();
    for j in &wf.jobs {
        if !has_children.contains(j) {
            deps.push((j.clone(), seal.clone()));
        }
    }
    for t in &trackers {
        deps.push((t.clone(), seal.clone()));
    }
    report.added_jobs = new_jobs.len();
    report.transformations.sort();

    // The augmented workflow is valid by construction: new jobs only follow existing ones.
    let Workflow {
        mut doc,
        name,
        mut jobs,
        mut parents,
    } = wf;
    for j in new_jobs.iter().filter_map(Node::as_map) {
        let id = str_of(j, "id").expect("built with an id").to_string();
        parents.insert(id.clone(), BTreeSet::new());
        jobs.push(id);
    }
    for (p, c) in &deps {
        parents.entry(c.clone()).or_default().insert(p.clone());
    }
    let top = doc.as_map_mut().expect("validated: a mapping");
    if let Some(Node::Seq(jobs)) = top.get_mut("jobs") {
        jobs.extend(new_jobs);
    }
    // Dependencies: existing entries stay as they are; new edges are appended per parent.
    let mut by_parent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (p, c) in deps {
        by_parent.entry(p).or_default().push(c);
    }
    let dep_list = top.entry("jobDependencies", || Node::Seq(Vec::new()));
    if dep_list.is_null() {
        *dep_list = Node::Seq(Vec::new());
    }
    if let Node::Seq(list) = dep_list {
        // One entry per parent: Pegasus keys dependencies by parent id, so a second entry for
        // the same parent would replace the first. New children join the existing entry.
        let mut at: HashMap<String, usize> = HashMap::new();
        for (i, d) in list.iter().enumerate() {
            if let Some(id) = d.as_map().and_then(|m| str_of(m, "id")) {
                at.entry(id.to_string()).or_insert(i);
            }
        }
        for (p, cs) in by_parent {
            let existing = at.get(&p).and_then(|&i| list[i].as_map_mut());
            match existing {
                Some(m) => {
                    if let Some(Node::Seq(children)) = m.get_mut("children") {
                        children.extend(cs.into_iter().map(Node::Str));
                    }
                }
                None => list.push(Node::Map(Map::from([
                    ("id", Node::Str(p)),
                    (
                        "children",
                        Node::Seq(cs.into_iter().map(Node::Str).collect()),
                    ),
                ]))),
            }
        }
    }
    // The store transformation, and the workflow file as a replica.
    add_store_transformation(top, opts)?;
    if wf_tracked {
        add_replica(top, &wf_lfn, &opts.workflow_pfn);
    }
    let wf = Workflow {
        doc,
        name,
        jobs,
        parents,
    };
    Ok((wf, report))
}

fn add_store_transformation(top: &mut Map, opts: &AugmentOptions) -> Result<()> {
    let tc = top.entry("transformationCatalog", || Node::Map(Map::new()));
    let Node::Map(tc) = tc else {
        return Err(Error::Invalid(
            "transformationCatalog is not a mapping".into(),
        ));
    };
    let list = tc.entry("transformations", || Node::Seq(Vec::new()));
    let Node::Seq(list) = list else {
        return Err(Error::Invalid(
            "transformationCatalog.transformations is not a list".into(),
        ));
    };
    if list
        .iter()
        .filter_map(Node::as_map)
        .any(|t| str_of(t, "name") == Some("store"))
    {
        return Err(Error::Invalid(
            "the workflow already has a transformation named `store`".into(),
        ));
    }
    let site = Map::from([
        ("name", Node::str(&opts.site)),
        ("pfn", Node::str(&opts.store_bin)),
        ("type", Node::str("installed")),
    ]);
    list.push(Node::Map(Map::from([
        ("name", Node::str("store")),
        ("sites", Node::Seq(vec![Node::Map(site)])),
    ])));
    Ok(())
}

fn add_replica(top: &mut Map, lfn: &str, pfn: &str) {
    let rc = top.entry("replicaCatalog", || Node::Map(Map::new()));
    let Node::Map(rc) = rc else { return };
    let list = rc.entry("replicas", || Node::Seq(Vec::new()));
    let Node::Seq(list) = list else { return };
    let p = Map::from([("site", Node::str("local")), ("pfn", Node::str(pfn))]);
    list.push(Node::Map(Map::from([
        ("lfn", Node::str(lfn)),
        ("pfns", Node::Seq(vec![Node::Map(p)])),
    ])));
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
