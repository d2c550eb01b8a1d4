//! Tracking added to a workflow tree: per tracked job an input tracker beside it and an output
//! tracker after it, in whichever workflow of the tree the job is; in the root, one job for
//! the workflow descriptions, one for the transformations (code) of the whole tree, and the
//! one seal job of the run.
//!
//! A sub-workflow cannot learn its parent's run from the environment: Pegasus plans it as a
//! workflow of its own, with its own `PEGASUS_WF_UUID`. So when the tree has sub-workflows the
//! run is fixed here (a new UUID unless given) and every tracking job of the tree names it in
//! its arguments (`track --wf ROOT --run ID --job PATH`), and each augmented workflow carries
//! it as metadata (`store_root_run`, `store_root_workflow`, `store_job_path`). A flat workflow
//! keeps taking its run from `PEGASUS_WF_UUID` at run time unless a run ID is given.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::apply::{apply, Additions};
use super::doc::{Map, Node};
use super::tags::{BASIC_TAGS, FULL_TAGS, JOB_AUTO_TAGS, JOB_CUSTOM_TAGS};
use super::{
    first_pfn, flag, get, resolve, str_of, uses_of, Policy, WorkflowTree, INPUT_TAGS, OUTPUT_TAGS,
    TRANS_TAGS, WF_TAGS,
};
use crate::error::{Error, Result};
use crate::run::{Role, RunId};

/// Options for [`augment`].
#[derive(Clone, Debug)]
pub struct AugmentOptions {
    /// Policy from the command line (overrides every workflow's `store_track` metadata).
    pub policy: Option<Policy>,
    /// Where execution nodes find the `store` binary.
    pub store_bin: String,
    /// The store directory the tracking jobs use (`--store`), if not their own default.
    pub store_dir: Option<String>,
    /// The site the `store` transformation is registered for.
    pub site: String,
    /// The run every tracking job records into. Without one, a flat workflow's tracking jobs
    /// take Pegasus's run ID (`PEGASUS_WF_UUID`) when they run, and a tree gets a new UUID.
    pub run_id: Option<RunId>,
    /// Where the augmented root workflow will be written: augmented sub-workflows are named
    /// for files beside it (`<stem>.tracked.yml`), and the parents refer to them there.
    pub output: PathBuf,
    /// Metadata keys that look like tracking tags but are none are errors, not warnings.
    pub strict: bool,
    /// Augmenting a sub-workflow written at run time, inside a running tree: its job path
    /// there (`S`, `S:T`). Its jobs record into the tree's run (`run_id`) under that path,
    /// and it gets no seal (the root's seal follows it).
    pub job_path: Option<String>,
    /// The policy its parent tracked with, for a workflow without its own (`job_path`).
    pub inherited: Option<Policy>,
}

/// What [`augment`] decided, for the whole tree.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct AugmentReport {
    /// Main jobs of every workflow of the tree (sub-workflow jobs included).
    pub main_jobs: usize,
    /// Tracking jobs added to the tree (the seal job included).
    pub added_jobs: usize,
    /// Files tracked, with their roles.
    pub tracked: BTreeMap<String, String>,
    /// Transformations tracked.
    pub transformations: Vec<String>,
    /// Whether the root's workflow description is tracked.
    pub workflow_tracked: bool,
    /// The run the tracking jobs record into, when fixed at augmentation (a tree, or given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Each workflow of the tree, the root first, then sub-workflows depth first.
    pub workflows: Vec<WorkflowReport>,
    /// Each tracked main job of the tree with its tracking jobs and MLflow naming (for
    /// `--mlflow`).
    #[serde(skip)]
    pub jobs: Vec<TrackedJob>,
    /// The root's tracking jobs of the run as a whole (transformations, workflow descriptions).
    #[serde(skip)]
    pub run_level_trackers: Vec<String>,
    /// The root's seal job.
    #[serde(skip)]
    pub seal_job: String,
    /// What each tag (or the policy, as `policy <name>`) made tracked: files, transformations
    /// and workflow descriptions.
    pub by_tag: BTreeMap<String, usize>,
    /// Metadata keys that look like tracking tags but are none, each naming the closest
    /// known key.
    pub warnings: Vec<String>,
    /// When tags were present but nothing was tracked: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nothing_tracked: Option<String>,
    /// The workflow asks for MLflow linkage (`full_track`, or a job tagged `job_auto` or
    /// `job_custom`).
    pub mlflow_requested: bool,
    /// Side catalog files and input directories read (catalogs.rs).
    pub catalogs: Vec<String>,
}

/// A main job of the tree that got tracking jobs.
#[derive(Clone, Debug, Default)]
pub struct TrackedJob {
    /// Its job path, what its tracking jobs record as (`ID`, `S:ID` in sub-workflow S, …).
    pub id: String,
    /// The job path of the workflow it is in (`""` for the root).
    pub workflow: String,
    /// Its ID in that workflow.
    pub job: String,
    /// Its tracking jobs there (input and/or output tracker).
    pub trackers: Vec<String>,
    /// `mlflow_experiment` from the job's metadata, else from its files' (uses, then the
    /// replica catalogs from its workflow's up to the root's).
    pub mlflow_experiment: Option<String>,
    /// `mlflow_run` from the same places.
    pub mlflow_run: Option<String>,
    /// `mlflow_params` from the same places: the logical name of a JSON or YAML file the job
    /// reads, whose keys its MLflow run gets as parameters.
    pub mlflow_params: Option<String>,
    /// `job_auto` or `job_custom` when the job carries that tag (true).
    pub mlflow_tag: Option<&'static str>,
}

/// A string metadata value `name` of a job, else of the first of its files that has one.
fn job_meta_str(job: &Map, rmeta: &[HashMap<&str, &Node>], name: &str) -> Option<String> {
    let of = |m: Option<&Node>| {
        m.and_then(Node::as_map)
            .and_then(|m| str_of(m, name))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    of(get(job, "metadata")).or_else(|| {
        uses_of(job).into_iter().find_map(|u| {
            of(u.meta).or_else(|| rmeta.iter().rev().find_map(|m| of(m.get(u.lfn).copied())))
        })
    })
}

/// Adds environment profiles (`profiles.env`) and trailing arguments to jobs of an augmented
/// tree, keyed by (job path of the workflow, job ID): what `--mlflow` hands each job (its
/// MLflow run). Existing profiles and arguments stay; nothing else changes.
#[allow(clippy::type_complexity)]
pub fn add_to_jobs(
    tree: &mut WorkflowTree,
    env: &BTreeMap<(String, String), Vec<(String, String)>>,
    args: &BTreeMap<(String, String), Vec<String>>,
) {
    fn visit(
        node: &mut WorkflowTree,
        path: &str,
        env: &BTreeMap<(String, String), Vec<(String, String)>>,
        args: &BTreeMap<(String, String), Vec<String>>,
    ) {
        if let Some(Node::Seq(jobs)) = node.wf.doc.as_map_mut().and_then(|t| t.get_mut("jobs")) {
            for job in jobs.iter_mut().filter_map(Node::as_map_mut) {
                let Some(id) = str_of(job, "id").map(str::to_string) else {
                    continue;
                };
                let key = (path.to_string(), id);
                if let Some(vars) = env.get(&key) {
                    let profiles = job.entry("profiles", || Node::Map(Map::new()));
                    if profiles.as_map().is_none() {
                        *profiles = Node::Map(Map::new());
                    }
                    if let Some(p) = profiles.as_map_mut() {
                        let e = p.entry("env", || Node::Map(Map::new()));
                        if e.as_map().is_none() {
                            *e = Node::Map(Map::new());
                        }
                        if let Some(e) = e.as_map_mut() {
                            for (k, v) in vars {
                                e.insert(k, Node::str(v));
                            }
                        }
                    }
                }
                if let Some(extra) = args.get(&key) {
                    if let Node::Seq(a) = job.entry("arguments", || Node::Seq(Vec::new())) {
                        a.extend(extra.iter().map(|x| Node::str(x)));
                    }
                }
            }
        }
        for s in &mut node.subs {
            let sub = if path.is_empty() {
                s.job.clone()
            } else {
                format!("{path}:{}", s.job)
            };
            visit(&mut s.tree, &sub, env, args);
        }
    }
    visit(tree, "", env, args);
}

/// One workflow of an augmented tree.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WorkflowReport {
    /// Its job path: `""` for the root, `S` for the sub-workflow of job S, `S:T` below it.
    pub job: String,
    /// Workflow name.
    pub name: String,
    /// The file it was read from.
    pub file: String,
    /// The file name its parent now refers to (the root's output for the root).
    pub output: String,
    /// Its main jobs.
    pub main_jobs: usize,
    /// Tracking jobs added to it.
    pub added_jobs: usize,
}

/// Everything the analysis of the tree collects.
struct Ctx<'a> {
    opts: &'a AugmentOptions,
    /// The root workflow's name and the run, when fixed.
    run: Option<(String, RunId)>,
    /// Logical names some job of the tree produces, and consumes.
    produced: HashSet<&'a str>,
    consumed: HashSet<&'a str>,
    out_dir: PathBuf,
    /// Output file names taken.
    names: HashSet<String>,
    code_args: Vec<String>,
    transformations: BTreeSet<String>,
    /// Tracked workflow descriptions: (LFN, path).
    descriptions: Vec<(String, String)>,
    tracked: BTreeMap<String, String>,
    reports: Vec<WorkflowReport>,
    /// One per workflow, depth first from the root.
    adds: Vec<Additions>,
    /// Tracked main jobs of the tree.
    jobs: Vec<TrackedJob>,
    by_tag: BTreeMap<String, usize>,
    mlflow_requested: bool,
}

impl Ctx<'_> {
    /// `[--store DIR]` for every `store` call.
    fn store_args(&self) -> Vec<String> {
        match &self.opts.store_dir {
            Some(d) => vec!["--store".to_string(), d.clone()],
            None => Vec::new(),
        }
    }

    fn track_args(&self, job: &str) -> Vec<String> {
        let mut a = self.store_args();
        a.push("track".into());
        if let Some((wf, run)) = &self.run {
            a.extend(["--wf".into(), wf.clone(), "--run".into(), run.to_string()]);
        }
        a.extend(["--job".into(), job.to_string()]);
        a
    }
}

/// The job ID of a run-level tracker (`transformations`, `workflow`), under the job path of a
/// sub-workflow augmented at run time.
fn pseudo_job(job_path: &str, name: &str) -> String {
    if job_path.is_empty() {
        name.to_string()
    } else {
        format!("{job_path}:{name}")
    }
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
    job_node_io(id, args, inputs, &[])
}

/// A `store` job reading `inputs` and writing `outputs` (kept in the workflow's scratch: no
/// stage-out, no registration).
fn job_node_io(id: &str, args: Vec<String>, inputs: &[String], outputs: &[String]) -> Node {
    let uses = inputs
        .iter()
        .map(|lfn| {
            Node::Map(Map::from([
                ("lfn", Node::str(lfn)),
                ("type", Node::str("input")),
            ]))
        })
        .chain(outputs.iter().map(|lfn| {
            Node::Map(Map::from([
                ("lfn", Node::str(lfn)),
                ("type", Node::str("output")),
                ("stageOut", Node::Bool(false)),
                ("registerReplica", Node::Bool(false)),
            ]))
        }))
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

/// Adds tracking to a workflow tree without changing any main job, its arguments or the
/// dependencies between main jobs (only sub-workflow jobs' `file` changes, to the augmented
/// child): per tracked job an input tracker (J's parents as parents, so it runs beside J) and
/// an output tracker (J as parent); in the root one job for the workflow descriptions and one
/// for the transformations of the whole tree, and one seal job after every tracking job and
/// every leaf job of the root. A sub-workflow job is done only when its whole sub-workflow is,
/// so the seal comes after every job of the tree, and sub-workflows get no seal of their own.
/// At most 2n + 3 jobs for the root's n jobs, and 2m for each sub-workflow's m. No credential
/// is written: tracking jobs read theirs from the execution node's environment.
pub fn augment(tree: WorkflowTree, opts: &AugmentOptions) -> Result<(WorkflowTree, AugmentReport)> {
    let lint = super::tags::Lint::of_tree(&tree)?;
    if opts.strict && !lint.warnings.is_empty() {
        return Err(Error::Invalid(format!(
            "--strict: {}",
            lint.warnings.join("; ")
        )));
    }
    // A tree records into one run, fixed now: a sub-workflow written at run time is
    // augmented then, into the same run.
    let flat = tree.subs.is_empty() && tree.runtime.is_empty();
    let run = match (&opts.run_id, flat) {
        (Some(r), _) => Some(r.clone()),
        (None, false) => Some(RunId::random()),
        (None, true) => None,
    };
    let out_dir = std::path::absolute(&opts.output)
        .map_err(|e| Error::io(&opts.output, e))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut names = HashSet::new();
    if let Some(n) = opts.output.file_name() {
        names.insert(n.to_string_lossy().into_owned());
    }
    let mut ctx = Ctx {
        opts,
        run: run.map(|r| (tree.wf.name.clone(), r)),
        produced: HashSet::new(),
        consumed: HashSet::new(),
        out_dir,
        names,
        code_args: Vec::new(),
        transformations: BTreeSet::new(),
        descriptions: Vec::new(),
        tracked: BTreeMap::new(),
        reports: Vec::new(),
        adds: Vec::new(),
        jobs: Vec::new(),
        by_tag: BTreeMap::new(),
        mlflow_requested: false,
    };
    // Who produces and who consumes each LFN, anywhere in the tree: a file made by one
    // workflow and read by another is intermediate, as in a flat workflow.
    for (_, _, node) in tree.walk() {
        let subs: HashMap<&str, &str> = node
            .subs
            .iter()
            .map(|s| (s.job.as_str(), s.file.as_str()))
            .collect();
        for j in node.wf.job_maps() {
            let file = str_of(j, "id").and_then(|id| subs.get(id));
            for u in uses_of(j) {
                if u.for_planning || file == Some(&u.lfn) {
                    continue;
                }
                if u.input {
                    ctx.consumed.insert(u.lfn);
                }
                if u.output {
                    ctx.produced.insert(u.lfn);
                }
            }
        }
    }
    let job_path = opts.job_path.clone().unwrap_or_default();
    let own_name = tree
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let (mut taken, mut trackers) = analyse(
        &mut ctx,
        &tree,
        &job_path,
        opts.job_path.as_ref().and(own_name.as_deref()),
        opts.inherited.unwrap_or(Policy::Tags),
        &mut Vec::new(),
    )?;
    let mut run_level = Vec::new();

    // The root's jobs for the whole tree: code, workflow descriptions, seal.
    let mut root = Additions::default();
    if !ctx.code_args.is_empty() {
        let tid = unique_id(&mut taken, "store_code".into());
        let mut args = ctx.track_args(&pseudo_job(&job_path, "transformations"));
        args.extend(ctx.code_args.iter().cloned());
        root.jobs.push(job_node(&tid, args, &[]));
        run_level.push(tid.clone());
        trackers.push(tid);
    }
    if !ctx.descriptions.is_empty() {
        let tid = unique_id(&mut taken, "store_workflow".into());
        let mut args = ctx.track_args(&pseudo_job(&job_path, "workflow"));
        args.extend(
            ctx.descriptions
                .iter()
                .map(|(lfn, _)| format!("workflow:{lfn}")),
        );
        let lfns: Vec<String> = ctx.descriptions.iter().map(|(l, _)| l.clone()).collect();
        root.jobs.push(job_node(&tid, args, &lfns));
        run_level.push(tid.clone());
        trackers.push(tid);
        let catalogued = tree.wf.replicas(&tree.dir());
        for (lfn, pfn) in &ctx.descriptions {
            if !catalogued.contains_key(lfn) {
                root.replicas.push((lfn.clone(), pfn.clone()));
            }
        }
    }
    // A run with nothing to record gets no seal: there would be no run to seal. Nor does a
    // sub-workflow written at run time: the root's seal comes after it.
    let seal = if trackers.is_empty() || opts.job_path.is_some() {
        String::new()
    } else {
        let seal = unique_id(&mut taken, "store_seal".into());
        let mut seal_args = ctx.store_args();
        seal_args.push("seal".into());
        if let Some((_, run)) = &ctx.run {
            seal_args.push(run.to_string());
        }
        root.jobs.push(job_node(&seal, seal_args, &[]));
        let has_children: HashSet<&String> = tree.wf.parents.values().flatten().collect();
        for j in &tree.wf.jobs {
            if !has_children.contains(j) {
                root.deps.push((j.clone(), seal.clone()));
            }
        }
        for t in &trackers {
            root.deps.push((t.clone(), seal.clone()));
        }
        seal
    };
    ctx.reports[0].added_jobs += root.jobs.len();
    let first = &mut ctx.adds[0];
    first.jobs.append(&mut root.jobs);
    first.deps.append(&mut root.deps);
    first.replicas.append(&mut root.replicas);

    let report = AugmentReport {
        main_jobs: ctx.reports.iter().map(|r| r.main_jobs).sum(),
        added_jobs: ctx.reports.iter().map(|r| r.added_jobs).sum(),
        tracked: ctx.tracked,
        transformations: ctx.transformations.into_iter().collect(),
        workflow_tracked: ctx
            .descriptions
            .first()
            .is_some_and(|(l, _)| *l == format!("{}.store-workflow.yml", tree.wf.name)),
        run_id: ctx.run.as_ref().map(|(_, r)| r.to_string()),
        workflows: ctx.reports,
        jobs: ctx.jobs,
        run_level_trackers: run_level,
        seal_job: seal,
        by_tag: ctx.by_tag,
        warnings: lint.warnings,
        nothing_tracked: None,
        mlflow_requested: ctx.mlflow_requested,
        catalogs: tree
            .catalog_sources()
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
    };
    let mut report = report;
    if report.tracked.is_empty()
        && report.transformations.is_empty()
        && !report.workflow_tracked
        && !lint.seen.is_empty()
    {
        report.nothing_tracked = Some(format!(
            "tags were present but nothing was tracked: {}. A tag tracks only when true and \
             on a file some job uses (in its `uses` or in the replica catalog), a \
             transformation some job runs, or the workflow",
            lint.seen.join(", ")
        ));
    }
    let mut adds = ctx.adds.into_iter();
    let mut tree = tree;
    apply(&mut tree, &mut adds, opts)?;
    Ok((tree, report))
}

/// Decides the tracking of one workflow (then of its sub-workflows, depth first); returns the
/// job IDs taken in it and its tracking jobs.
fn analyse<'a>(
    ctx: &mut Ctx<'a>,
    node: &'a WorkflowTree,
    job_path: &str,
    file: Option<&str>,
    inherited: Policy,
    rmeta: &mut Vec<HashMap<&'a str, &'a Node>>,
) -> Result<(HashSet<String>, Vec<String>)> {
    let wf = &node.wf;
    let top = wf.top();
    let meta = get(top, "metadata");
    // The command line's policy, else the workflow's own, else its parent's.
    // `full_track` / `basic_track` on the workflow (the paper's) mean `store_track: full|basic`.
    let paper_policy = if flag(meta, FULL_TAGS)? == Some(true) {
        Some(Policy::Full)
    } else if flag(meta, BASIC_TAGS)? == Some(true) {
        Some(Policy::Basic)
    } else {
        None
    };
    if flag(meta, FULL_TAGS)? == Some(true) {
        ctx.mlflow_requested = true;
    }
    let policy = match (
        ctx.opts.policy,
        meta.and_then(Node::as_map)
            .and_then(|m| super::tags::str_meta(m, "store_track")),
        paper_policy,
    ) {
        (Some(p), _, _) => p,
        (None, Some(s), _) => s.parse()?,
        (None, None, Some(p)) => p,
        (None, None, None) => inherited,
    };
    let policy_name = format!("policy {}", policy.name());
    let files_all = matches!(policy, Policy::Basic | Policy::Full);
    let inputs_all = files_all || policy == Policy::Inputs;
    let outputs_all = files_all || policy == Policy::Outputs;
    let code_all = matches!(policy, Policy::Full | Policy::Transformations);
    let wf_tracked = flag(meta, WF_TAGS)?.unwrap_or(policy == Policy::Full);
    let prefix = if job_path.is_empty() {
        String::new()
    } else {
        format!("{job_path}:")
    };
    // Replica metadata: this workflow's catalog first, then its ancestors'.
    rmeta.push(wf.replica_meta());
    let tag = |lfn: &str, names: &[&str]| -> Result<Option<bool>> {
        for m in rmeta.iter().rev() {
            if let Some(b) = flag(m.get(lfn).copied(), names)? {
                return Ok(Some(b));
            }
        }
        Ok(None)
    };

    let mut add = Additions::default();
    let mut taken: HashSet<String> = wf.jobs.iter().cloned().collect();
    let mut trackers = Vec::new();
    let mut used_trans = BTreeSet::new();
    for j in wf.job_maps() {
        // Sub-workflow jobs get no trackers: their files are tracked by the jobs inside.
        if str_of(j, "type") != Some("job") {
            continue;
        }
        let id = str_of(j, "id").expect("validated");
        used_trans.insert(str_of(j, "name").expect("validated"));
        let mut ins = Vec::new();
        let mut outs = Vec::new();
        for u in uses_of(j) {
            let tag_in = flag(u.meta, INPUT_TAGS)?.or(tag(u.lfn, INPUT_TAGS)?);
            let tag_out = flag(u.meta, OUTPUT_TAGS)?.or(tag(u.lfn, OUTPUT_TAGS)?);
            let intermediate = ctx.produced.contains(u.lfn) && ctx.consumed.contains(u.lfn);
            let tracked = if intermediate {
                files_all
                    || tag_in.or(tag_out).unwrap_or(false)
                    || inputs_all && u.input
                    || outputs_all && u.output
            } else if u.input && u.output {
                // inout or checkpoint, read and written by this job alone
                tag_in.or(tag_out).unwrap_or(inputs_all || outputs_all)
            } else if u.input {
                tag_in.unwrap_or(inputs_all)
            } else {
                tag_out.unwrap_or(outputs_all)
            };
            if !tracked {
                continue;
            }
            let reason = match (tag_in, tag_out) {
                (Some(true), _) if u.input => "input_track".to_string(),
                (_, Some(true)) if u.output => "output_track".to_string(),
                (Some(true), _) | (_, Some(true)) => "input_track/output_track".to_string(),
                _ => policy_name.clone(),
            };
            *ctx.by_tag.entry(reason).or_default() += 1;
            let role = if intermediate {
                Role::Intermediate
            } else if u.input && !u.output {
                Role::Input
            } else {
                Role::Output
            };
            ctx.tracked
                .insert(u.lfn.to_string(), role.as_str().to_string());
            // A file the job reads and writes (inout, checkpoint) is recorded on both sides:
            // the version it found, and the one it left.
            if u.input {
                let role = if u.output && !intermediate {
                    Role::Input
                } else {
                    role
                };
                ins.push((u.lfn, role, u.optional_input));
            }
            if u.output {
                outs.push((u.lfn, role, false));
            }
        }
        let job_meta = get(j, "metadata");
        let mlflow_tag = if flag(job_meta, JOB_CUSTOM_TAGS)? == Some(true) {
            Some("job_custom")
        } else if flag(job_meta, JOB_AUTO_TAGS)? == Some(true) {
            Some("job_auto")
        } else {
            None
        };
        ctx.mlflow_requested |= mlflow_tag.is_some();
        let mut mine = Vec::new();
        for (side, files) in [("in", ins), ("out", outs)] {
            if files.is_empty() {
                continue;
            }
            let tid = unique_id(&mut taken, format!("store_{side}_{id}"));
            let mut args = ctx.track_args(&format!("{prefix}{id}"));
            let direction = if side == "in" { "consumed" } else { "produced" };
            args.extend(["--direction".to_string(), direction.to_string()]);
            // `ROLE?:PATH`: recorded if present (a checkpoint before its first writer).
            args.extend(files.iter().map(|(lfn, r, optional)| {
                format!("{}{}:{lfn}", r.as_str(), if *optional { "?" } else { "" })
            }));
            // A file it may not find is not declared as the tracker's input: Pegasus would
            // insist on it.
            let lfns: Vec<String> = files
                .iter()
                .filter(|(_, _, optional)| !optional)
                .map(|(l, _, _)| l.to_string())
                .collect();
            add.jobs.push(job_node(&tid, args, &lfns));
            if side == "in" {
                for p in &wf.parents[id] {
                    add.deps.push((p.clone(), tid.clone()));
                }
                // A file the job rewrites (inout, checkpoint) must be recorded before the job
                // runs: then the input tracker is its parent instead of running beside it.
                if uses_of(j).any(|u| u.input && u.output) {
                    add.deps.push((tid.clone(), id.to_string()));
                }
            } else {
                add.deps.push((id.to_string(), tid.clone()));
            }
            mine.push(tid.clone());
            trackers.push(tid);
        }
        if !mine.is_empty() {
            ctx.jobs.push(TrackedJob {
                id: format!("{prefix}{id}"),
                workflow: job_path.to_string(),
                job: id.to_string(),
                trackers: mine,
                mlflow_experiment: job_meta_str(j, rmeta, "mlflow_experiment"),
                mlflow_run: job_meta_str(j, rmeta, "mlflow_run"),
                mlflow_params: job_meta_str(j, rmeta, "mlflow_params"),
                mlflow_tag,
            });
        }
    }
    // The transformations (code), tracked by the root for the whole tree: by their PFN on the
    // site where they are installed.
    let dir = node.dir();
    for t in wf.catalog_entries("transformationCatalog", "transformations") {
        let Some(name) = str_of(t, "name") else {
            continue;
        };
        let tag = flag(get(t, "metadata"), TRANS_TAGS)?;
        if !used_trans.contains(name) || !tag.unwrap_or(code_all) {
            continue;
        }
        // An executable inside a container image is not a file of this host: the image
        // names the code (not recorded as code here).
        // (a `stageable` executable is a host file copied in: that one is recorded)
        let in_container = get(t, "sites")
            .and_then(Node::as_seq)
            .into_iter()
            .flatten()
            .filter_map(Node::as_map)
            .any(|site| {
                (get(site, "container").is_some() || get(t, "container").is_some())
                    && str_of(site, "type") != Some("stageable")
            });
        if in_container {
            continue;
        }
        let reason = if tag == Some(true) {
            "track_trans".to_string()
        } else {
            policy_name.clone()
        };
        if let Some(pfn) = first_pfn(t, "sites") {
            // Several transformations may share one executable: track it once.
            let arg = format!("code:{}", resolve(&dir, pfn));
            if !ctx.code_args.contains(&arg) {
                ctx.code_args.push(arg);
                *ctx.by_tag.entry(reason).or_default() += 1;
            }
            ctx.transformations.insert(name.to_string());
        }
    }
    // The workflow description, tracked by the root: a sub-workflow under the logical name
    // its parent gives it (so a re-run finds it there), unless another file has that name.
    if wf_tracked {
        let reason = if flag(meta, WF_TAGS)? == Some(true) {
            "wf_track".to_string()
        } else {
            policy_name.clone()
        };
        *ctx.by_tag.entry(reason).or_default() += 1;
        let pfn = node.path.to_string_lossy().into_owned();
        let mut lfn = match file {
            None => format!("{}.store-workflow.yml", wf.name),
            Some(f) => f.to_string(),
        };
        if ctx.descriptions.iter().any(|(l, p)| *l == lfn && *p != pfn) {
            lfn = format!("{}.{lfn}", job_path.replace(':', "."));
        }
        if !ctx.descriptions.iter().any(|(l, _)| *l == lfn) {
            ctx.descriptions.push((lfn, pfn));
        }
        // The side catalogs (shared by the tree) go with the root's description: a rerun
        // needs the transformations they name.
        if file.is_none() {
            for (kind, path) in &wf.side.files {
                let lfn = super::catalogs::side_lfn(kind, path);
                if !ctx.descriptions.iter().any(|(l, _)| *l == lfn) {
                    let abs = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                    ctx.descriptions
                        .push((lfn, abs.to_string_lossy().into_owned()));
                }
            }
        }
    }
    // Each sub-workflow job now names the augmented child, written beside the output.
    for s in &node.subs {
        let stem = Path::new(&s.file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("subworkflow");
        let mut name = format!("{stem}.tracked.yml");
        let mut n = 2;
        while !ctx.names.insert(name.clone()) {
            name = format!("{stem}_{n}.tracked.yml");
            n += 1;
        }
        let pfn = ctx.out_dir.join(&name).to_string_lossy().into_owned();
        add.replicas.push((name.clone(), pfn));
        add.renamed.push((s.job.clone(), s.file.clone(), name));
    }
    // Each sub-workflow written at run time is augmented then, by a job between the one that
    // writes it and the sub-workflow job, which then names the augmented file.
    for r in &node.runtime {
        let stem = Path::new(&r.file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("subworkflow");
        let mut name = format!("{stem}.tracked.yml");
        let mut n = 2;
        while !ctx.names.insert(name.clone()) {
            name = format!("{stem}_{n}.tracked.yml");
            n += 1;
        }
        let tid = unique_id(&mut taken, format!("store_augment_{}", r.job));
        let mut args = ctx.store_args();
        args.extend([
            "augment".to_string(),
            r.file.clone(),
            "-o".into(),
            name.clone(),
        ]);
        if let Some((_, run)) = &ctx.run {
            args.extend(["--run-id".into(), run.to_string()]);
        }
        args.extend([
            "--job-path".into(),
            format!("{prefix}{}", r.job),
            "--inherit-policy".into(),
            policy.name().into(),
            "--store-bin".into(),
            ctx.opts.store_bin.clone(),
            "--site".into(),
            ctx.opts.site.clone(),
            "-q".into(),
        ]);
        if let Some(d) = &ctx.opts.store_dir {
            args.extend(["--store-dir".into(), d.clone()]);
        }
        if let Some(p) = ctx.opts.policy {
            args.extend(["--policy".into(), p.name().into()]);
        }
        add.jobs.push(job_node_io(
            &tid,
            args,
            std::slice::from_ref(&r.file),
            std::slice::from_ref(&name),
        ));
        for p in &wf.parents[r.job.as_str()] {
            add.deps.push((p.clone(), tid.clone()));
        }
        add.deps.push((tid, r.job.clone()));
        add.renamed.push((r.job.clone(), r.file.clone(), name));
    }
    if let Some((root, run)) = &ctx.run {
        add.metadata.push(("store_root_run", run.to_string()));
        add.metadata.push(("store_root_workflow", root.clone()));
        if !job_path.is_empty() {
            add.metadata.push(("store_job_path", job_path.to_string()));
        }
    }
    let output = match file {
        None => ctx.opts.output.to_string_lossy().into_owned(),
        Some(_) => String::new(), // filled in by the parent's rename below
    };
    ctx.reports.push(WorkflowReport {
        job: job_path.to_string(),
        name: wf.name.clone(),
        file: node.path.to_string_lossy().into_owned(),
        output,
        main_jobs: wf.jobs.len(),
        added_jobs: add.jobs.len(),
    });
    let renamed: Vec<String> = add.renamed.iter().map(|(_, _, n)| n.clone()).collect();
    ctx.adds.push(add);
    for (s, name) in node.subs.iter().zip(renamed) {
        let at = ctx.reports.len();
        analyse(
            ctx,
            &s.tree,
            &format!("{prefix}{}", s.job),
            Some(&s.file),
            policy,
            rmeta,
        )?;
        ctx.reports[at].output = ctx.out_dir.join(name).to_string_lossy().into_owned();
    }
    rmeta.pop();
    Ok((taken, trackers))
}
