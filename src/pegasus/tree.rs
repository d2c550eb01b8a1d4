//! Workflows that include workflows: Pegasus `pegasusWorkflow` jobs name another abstract
//! workflow by a logical file name (`file:`), which Pegasus looks up in the replica catalog.
//! A [`WorkflowTree`] is a workflow with its sub-workflows loaded recursively; it is what
//! `augment` tracks as one run and what the local runner flattens into one job graph.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::{first_pfn, resolve, str_of, uses_of, CatalogOptions, Node, SideCatalogs, Workflow};
use crate::error::{Error, Result};

/// A workflow with its sub-workflows, loaded recursively.
pub struct WorkflowTree {
    /// The workflow.
    pub wf: Workflow,
    /// Its file (absolute); relative catalog entries resolve against its directory.
    pub path: PathBuf,
    /// Its sub-workflows, in job order.
    pub subs: Vec<SubWorkflow>,
    /// Its sub-workflows that a job of it writes when it runs: read only then (augmented by
    /// a job before the sub-workflow job; the local runner runs them with a nested `store
    /// run`), never from whatever copy exists before.
    pub runtime: Vec<RuntimeSub>,
}

/// A sub-workflow whose file a job of the parent writes at run time.
#[derive(Clone, Debug)]
pub struct RuntimeSub {
    /// The `pegasusWorkflow` job in the parent.
    pub job: String,
    /// Its `file` (logical name).
    pub file: String,
    /// The job that writes the file.
    pub producer: String,
}

/// A sub-workflow of a [`WorkflowTree`].
pub struct SubWorkflow {
    /// The `pegasusWorkflow` job in the parent.
    pub job: String,
    /// The job's `file`: the logical name under which the parent finds the workflow.
    pub file: String,
    /// The child workflow.
    pub tree: WorkflowTree,
}

impl WorkflowTree {
    /// Reads a workflow file and, recursively, the sub-workflows its `pegasusWorkflow` jobs
    /// name: each `file` is looked up in the parent's replica catalog (as Pegasus does; a
    /// relative PFN against the parent's directory), else taken relative to the parent's
    /// directory. A missing or malformed child is an [`Error::SubWorkflow`] naming the parent
    /// and the job; workflows that include each other are an [`Error::SubWorkflowCycle`].
    pub fn load(path: &Path) -> Result<WorkflowTree> {
        WorkflowTree::load_with(path, &HashMap::new())
    }

    /// [`WorkflowTree::load`], with sub-workflow files found first in `files` (logical name
    /// to path; a re-run takes the recorded copies from here).
    pub fn load_with(path: &Path, files: &HashMap<String, PathBuf>) -> Result<WorkflowTree> {
        WorkflowTree::load_with_catalogs(path, files, &CatalogOptions::default())
    }

    /// [`WorkflowTree::load_with`], with the catalogs beside the workflow (or in
    /// `opts.catalog_dir`) and input directories read as `pegasus-plan` reads them (see
    /// `catalogs.rs`): they apply to every workflow of the tree, after its embedded entries.
    pub fn load_with_catalogs(
        path: &Path,
        files: &HashMap<String, PathBuf>,
        opts: &CatalogOptions,
    ) -> Result<WorkflowTree> {
        let path = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let mut wf = Workflow::parse(&text, &path)?;
        let side = std::sync::Arc::new(SideCatalogs::find(
            path.parent().unwrap_or(Path::new(".")),
            opts,
        )?);
        wf.side = side.clone();
        let mut stack = vec![Frame {
            id: identity(&path),
            shown: path.display().to_string(),
            via: String::new(),
        }];
        WorkflowTree::build(wf, path, files, &mut stack, &side)
    }

    /// Writes the (augmented) tree: the root to `output`, each sub-workflow beside it under
    /// the name its parent gives it; children first, each atomically, so a written root never
    /// names a missing child.
    pub fn write(&self, output: &Path) -> Result<()> {
        let abs = std::path::absolute(output).map_err(|e| Error::io(output, e))?;
        let dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
        for (_, file, node) in self.walk().into_iter().rev() {
            let dest = match file {
                Some(f) => dir.join(f),
                None => abs.clone(),
            };
            crate::engine::util::atomic_write(&dest, node.wf.to_yaml()?.as_bytes())?;
        }
        Ok(())
    }

    /// The side-catalog files and input directories read for this tree.
    pub fn catalog_sources(&self) -> &[PathBuf] {
        &self.wf.side.sources
    }

    fn build(
        wf: Workflow,
        path: PathBuf,
        files: &HashMap<String, PathBuf>,
        stack: &mut Vec<Frame>,
        side: &std::sync::Arc<SideCatalogs>,
    ) -> Result<WorkflowTree> {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut subs = Vec::new();
        let mut runtime = Vec::new();
        let jobs: Vec<(String, String)> = wf
            .sub_jobs()
            .map(|(j, f)| (j.to_string(), f.to_string()))
            .collect();
        let replicas = if jobs.is_empty() {
            HashMap::new()
        } else {
            wf.replicas(&dir)
        };
        for (job, file) in jobs {
            let wrap = |cause: Error| Error::SubWorkflow {
                parent: path.clone(),
                job: job.clone(),
                file: file.clone(),
                cause: Box::new(cause),
            };
            // A sub-workflow written by a job of this workflow does not exist, or is stale,
            // before that job runs: never plan a copy found now.
            let producer = wf.job_maps().find_map(|j| {
                uses_of(j)
                    .any(|u| u.output && u.lfn == file)
                    .then(|| str_of(j, "id"))
                    .flatten()
            });
            if let (Some(producer), None) = (producer, files.get(&file)) {
                runtime.push(RuntimeSub {
                    job,
                    file,
                    producer: producer.to_string(),
                });
                continue;
            }
            let child = match (files.get(&file), replicas.get(&file)) {
                (Some(p), _) => p.clone(),
                (None, Some(pfn)) if pfn.contains("://") => {
                    return Err(wrap(Error::Invalid(format!(
                        "the replica catalog places it at {pfn}, not in a local file"
                    ))))
                }
                (None, Some(pfn)) => PathBuf::from(pfn),
                (None, None) => dir.join(&file),
            };
            let text = std::fs::read_to_string(&child).map_err(|e| wrap(Error::io(&child, e)))?;
            let id = identity(&child);
            if let Some(last) = stack.last_mut() {
                last.via = job.clone();
            }
            if let Some(at) = stack.iter().position(|f| f.id == id) {
                let mut chain: Vec<String> = stack[at..]
                    .iter()
                    .map(|f| format!("{} (job {})", f.shown, f.via))
                    .collect();
                chain.push(child.display().to_string());
                return Err(Error::SubWorkflowCycle(chain));
            }
            let mut parsed = Workflow::parse(&text, &child).map_err(wrap)?;
            parsed.side = side.clone();
            stack.push(Frame {
                id,
                shown: child.display().to_string(),
                via: String::new(),
            });
            let tree = WorkflowTree::build(parsed, child, files, stack, side)?;
            stack.pop();
            subs.push(SubWorkflow { job, file, tree });
        }
        Ok(WorkflowTree {
            wf,
            path,
            subs,
            runtime,
        })
    }

    /// The directory relative catalog entries resolve against.
    pub fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// Main jobs in the whole tree (sub-workflow jobs included).
    pub fn main_jobs(&self) -> usize {
        self.wf.jobs.len() + self.subs.iter().map(|s| s.tree.main_jobs()).sum::<usize>()
    }

    /// Physical file names of every replica catalog in the tree by logical name (relative PFNs
    /// against each file's directory; the nearest to the root wins).
    pub fn replicas(&self) -> HashMap<String, String> {
        let mut out = self.wf.replicas(&self.dir());
        for s in &self.subs {
            for (lfn, pfn) in s.tree.replicas() {
                out.entry(lfn).or_insert(pfn);
            }
        }
        out
    }

    /// Every job of the tree, flattened into one graph for the local runner: a job of the
    /// sub-workflow of job `S` gets the ID `S:job` (nested: `S:T:job`); its jobs without
    /// parents follow S's parents, and S itself becomes a job that runs nothing and is done
    /// when every job of its sub-workflow is. Executables come from each workflow's own
    /// transformation catalog (relative PFNs against its directory).
    pub fn plan(&self) -> Result<Vec<PlannedJob>> {
        let mut out = Vec::new();
        self.flatten("", &[], &mut out)?;
        Ok(out)
    }

    /// Adds this workflow's jobs under `prefix`; returns the IDs of its leaves.
    fn flatten(
        &self,
        prefix: &str,
        entry_parents: &[String],
        out: &mut Vec<PlannedJob>,
    ) -> Result<Vec<String>> {
        let dir = self.dir();
        let mut exes = HashMap::new();
        for t in self
            .wf
            .catalog_entries("transformationCatalog", "transformations")
        {
            if let (Some(name), Some(pfn)) = (str_of(t, "name"), first_pfn(t, "sites")) {
                exes.insert(name, resolve(&dir, pfn));
            }
        }
        let containers = super::container::by_transformation(self.wf.top(), &dir, &self.path)?;
        let subs: HashMap<&str, &WorkflowTree> = self
            .subs
            .iter()
            .map(|s| (s.job.as_str(), &s.tree))
            .collect();
        let has_children: HashSet<&String> = self.wf.parents.values().flatten().collect();
        let mut leaves = Vec::new();
        for j in self.wf.job_maps() {
            let id = str_of(j, "id").expect("validated");
            let full = format!("{prefix}{id}");
            let own = &self.wf.parents[id];
            let parents: Vec<String> = if own.is_empty() {
                entry_parents.to_vec()
            } else {
                own.iter().map(|p| format!("{prefix}{p}")).collect()
            };
            let mut job = PlannedJob {
                nested: None,
                outputs: Vec::new(),
                id: full.clone(),
                workflow: self.wf.name.clone(),
                dag_id: id.to_string(),
                executable: None,
                args: Vec::new(),
                inputs: Vec::new(),
                rewrites: Vec::new(),
                env: Vec::new(),
                parents,
                tracking: false,
                container: None,
            };
            match str_of(j, "type").expect("validated") {
                "job" => {
                    let name = str_of(j, "name").expect("validated");
                    job.tracking = name == "store";
                    job.container = containers.get(name).cloned();
                    job.executable = Some(exes.get(name).cloned().ok_or_else(|| {
                        Error::Invalid(format!(
                            "{}: job {id}: transformation {name} is not in the transformation catalog",
                            self.path.display()
                        ))
                    })?);
                    job.args = j
                        .get("arguments")
                        .and_then(Node::as_seq)
                        .into_iter()
                        .flatten()
                        .map(|a| a.scalar_text().unwrap_or_default())
                        .collect();
                    job.inputs = uses_of(j)
                        .filter(|u| u.input)
                        .map(|u| u.lfn.to_string())
                        .collect();
                    job.rewrites = uses_of(j)
                        .filter(|u| u.input && u.output)
                        .map(|u| u.lfn.to_string())
                        .collect();
                    job.outputs = uses_of(j)
                        .filter(|u| u.output)
                        .map(|u| u.lfn.to_string())
                        .collect();
                    job.env = j
                        .get("profiles")
                        .and_then(Node::as_map)
                        .and_then(|p| p.get("env"))
                        .and_then(Node::as_map)
                        .into_iter()
                        .flat_map(super::Map::iter)
                        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.scalar_text()?)))
                        .collect();
                }
                "pegasusWorkflow" if self.runtime.iter().any(|r| r.job == id) => {
                    // Written at run time: run it then, as a workflow of its own in this
                    // working directory (already augmented when tracked).
                    let file = str_of(j, "file").expect("validated").to_string();
                    job.nested = Some(file.clone());
                    job.inputs = vec![file];
                }
                "pegasusWorkflow" => {
                    let child = subs.get(id).ok_or_else(|| {
                        Error::Invalid(format!(
                            "{}: sub-workflow job {id} was not loaded",
                            self.path.display()
                        ))
                    })?;
                    let child_leaves = child.flatten(&format!("{full}:"), &job.parents, out)?;
                    if !child_leaves.is_empty() {
                        job.parents = child_leaves;
                    }
                }
                _ => {
                    return Err(Error::Invalid(format!(
                        "{}: job {id} is an already planned sub-workflow (a DAG): run it with pegasus-run",
                        self.path.display()
                    )))
                }
            }
            if !has_children.contains(&id.to_string()) {
                leaves.push(full);
            }
            out.push(job);
        }
        Ok(leaves)
    }

    /// Every workflow of the tree, depth first from the root, with its job path (`""` for the
    /// root, `S` for the sub-workflow of job S, `S:T` below that) and the logical name its
    /// parent gives it (`None` for the root).
    pub fn walk(&self) -> Vec<(String, Option<&str>, &WorkflowTree)> {
        let mut out = vec![(String::new(), None, self)];
        self.walk_into("", &mut out);
        out
    }

    fn walk_into<'a>(
        &'a self,
        prefix: &str,
        out: &mut Vec<(String, Option<&'a str>, &'a WorkflowTree)>,
    ) {
        for s in &self.subs {
            let path = format!("{prefix}{}", s.job);
            out.push((path.clone(), Some(s.file.as_str()), &s.tree));
            s.tree.walk_into(&format!("{path}:"), out);
        }
    }
}

/// A workflow file on the path from the root, for cycle detection and its message.
struct Frame {
    id: PathBuf,
    shown: String,
    /// The job through which the next file down was reached.
    via: String,
}

/// What identifies a workflow file for cycle detection: its canonical path when it has one.
fn identity(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// One job ready to execute locally (see `runner`).
#[derive(Clone, Debug)]
pub struct PlannedJob {
    /// Job ID, unique in the flattened tree (`S:job` inside the sub-workflow of job S).
    pub id: String,
    /// Name of the workflow it belongs to (`PEGASUS_WF_LABEL`).
    pub workflow: String,
    /// Its ID in that workflow (`PEGASUS_DAG_JOB_ID`).
    pub dag_id: String,
    /// Executable path (the transformation's PFN); `None` for a sub-workflow job, which runs
    /// nothing and is done when its sub-workflow is.
    pub executable: Option<String>,
    /// Arguments (file arguments are their logical names).
    pub args: Vec<String>,
    /// Logical names of its input files.
    pub inputs: Vec<String>,
    /// Logical names of the files it writes: never staged over once it has started.
    pub outputs: Vec<String>,
    /// Those of its inputs it also writes (`inout`, `checkpoint`): staged as copies, never
    /// as links to the replica.
    pub rewrites: Vec<String>,
    /// Environment profiles (`profiles.env`).
    pub env: Vec<(String, String)>,
    /// Parent job IDs.
    pub parents: Vec<String>,
    /// A tracking job added by augmentation (transformation `store`): short and I/O-bound, so
    /// the local runner does not count it against the compute slots of `--jobs`.
    pub tracking: bool,
    /// The container its transformation runs in, if it names one (`runner` runs the job in
    /// it, or refuses).
    pub container: Option<super::ContainerSpec>,
    /// For a sub-workflow written at run time: its file (logical name, in the working
    /// directory when the job starts). The caller makes it a job that runs the file (the
    /// `store` binary's `run --no-track`, [`PlannedJob::run_nested`]).
    pub nested: Option<String>,
}

impl PlannedJob {
    /// Makes a sub-workflow job written at run time run `store_bin [--store DIR] run FILE
    /// --no-track --workdir . -q` in the working directory: the file is already augmented
    /// when the run is tracked.
    pub fn run_nested(&mut self, store_bin: &str, store_dir: Option<&str>) {
        let Some(file) = &self.nested else {
            return;
        };
        let mut args = Vec::new();
        if let Some(d) = store_dir {
            args.extend(["--store".to_string(), d.to_string()]);
        }
        args.extend(
            ["run", file.as_str(), "--no-track", "--workdir", ".", "-q"].map(str::to_string),
        );
        self.executable = Some(store_bin.to_string());
        self.args = args;
    }
}
