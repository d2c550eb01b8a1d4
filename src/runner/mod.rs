//! The embedded single-machine executor (`store run`): runs a planned workflow tree's jobs in
//! dependency order, up to N at a time, each with the `PEGASUS_*` variables set, in one shared
//! working directory where replica-catalog inputs are staged. Sub-workflows are part of the
//! one job graph ([`crate::pegasus::WorkflowTree::plan`]): their jobs count against the same
//! N, and a sub-workflow job is done when its last job is. Each job's stdout and stderr stream
//! to `logs/<job>.out` and `logs/<job>.err`. After a failure no new job starts; the failing
//! job, its exit status and the end of its stderr are reported. A job whose transformation
//! names a container runs in it ([`container`]); without an engine for it nothing starts.
//!
//! Layer: above Pegasus and runs (it runs planned workflows; `rerun` restores a recorded run
//! through the run layer first).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::pegasus::PlannedJob;

pub mod container;
pub mod local;

use container::Engine;

/// What [`run_jobs`] did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RunOutcome {
    /// Jobs that finished successfully, in completion order.
    pub succeeded: Vec<String>,
    /// The first job that failed, with why.
    pub failed: Option<(String, String)>,
    /// Jobs never started because of the failure.
    pub not_started: Vec<String>,
}

pub use crate::run::new_run_id;

/// Puts the replica of `lfn` into the work directory: a hard link where it can (the job only
/// reads it), a copy when the job also writes it (`copy`: inout, checkpoint), so a job never
/// writes through to the user's file.
fn stage(work: &Path, lfn: &str, replicas: &HashMap<String, String>, copy: bool) -> Result<()> {
    let dest = work.join(lfn);
    let Some(pfn) = replicas.get(lfn) else {
        return Ok(());
    };
    let src = Path::new(pfn.strip_prefix("file://").unwrap_or(pfn));
    // A file left in a reused work directory is used only if it is the replica itself (same
    // inode); anything else is replaced, so a job never runs on a stale input.
    use std::os::unix::fs::MetadataExt;
    if let (Ok(d), Ok(s)) = (fs::metadata(&dest), fs::metadata(src)) {
        if d.dev() == s.dev() && d.ino() == s.ino() && !copy {
            return Ok(());
        }
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let tmp = dest.with_file_name(format!(
        ".{}.stage-{}",
        dest.file_name().and_then(|n| n.to_str()).unwrap_or("input"),
        crate::engine::util::unique_suffix()
    ));
    if copy || fs::hard_link(src, &tmp).is_err() {
        if let Err(e) = fs::copy(src, &tmp) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(src, e));
        }
    }
    fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// Runs `jobs` as run `run_id` in `work`, at most `parallel` at once. Every job sees
/// `PEGASUS_WF_UUID` = `run_id`, and its own workflow's name and job ID in `PEGASUS_WF_LABEL`
/// and `PEGASUS_DAG_JOB_ID`. Jobs that name a container run in it, with the engines
/// [`container::engines`] finds; when one has none, nothing starts (exit 2).
pub fn run_jobs(
    jobs: &[PlannedJob],
    replicas: &HashMap<String, String>,
    run_id: &str,
    work: &Path,
    parallel: usize,
) -> Result<RunOutcome> {
    let engines = container::engines(jobs)?;
    run_jobs_with(jobs, replicas, run_id, work, parallel, &engines, false)
}

/// [`run_jobs`] with the container engine of each container job already chosen (by job ID,
/// from [`container::engines`]); a container job without one is refused before anything
/// starts. With `progress`, a bar on a terminal counts the jobs done.
pub fn run_jobs_with(
    jobs: &[PlannedJob],
    replicas: &HashMap<String, String>,
    run_id: &str,
    work: &Path,
    parallel: usize,
    engines: &HashMap<String, Engine>,
    progress: bool,
) -> Result<RunOutcome> {
    if let Some(j) = jobs
        .iter()
        .find(|j| j.container.is_some() && j.executable.is_some() && !engines.contains_key(&j.id))
    {
        return Err(Error::Invalid(format!(
            "job {} runs in container {}, and no engine was chosen for it; no job was started",
            j.id,
            j.container.as_ref().map_or("", |c| c.name.as_str())
        )));
    }
    let logs = work.join("logs");
    fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, e))?;
    // Containers bind the working directory by its absolute path; docker runs the job as the
    // directory's owner (podman and apptainer map the user themselves).
    let abs_work = std::path::absolute(work).map_err(|e| Error::io(work, e))?;
    let owner = {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(work).map_err(|e| Error::io(work, e))?;
        format!("{}:{}", m.uid(), m.gid())
    };
    let engines: HashMap<&str, Engine> = engines
        .iter()
        .map(|(id, e)| {
            let mut e = e.clone();
            if e.kind == container::EngineKind::Docker {
                e.user = Some(owner.clone());
            }
            (id.as_str(), e)
        })
        .collect();
    let mut done: HashSet<String> = HashSet::new();
    let mut started: HashSet<String> = HashSet::new();
    let mut staged: HashSet<String> = HashSet::new();
    // Files some job writes in place (inout, checkpoint) are staged as copies, whoever
    // stages them first.
    let rewritten: HashSet<&str> = jobs
        .iter()
        .flat_map(|j| j.rewrites.iter().map(String::as_str))
        .collect();
    // Each child is waited for by a thread of its own, which reports here: a job's children
    // start the moment it ends, with no polling interval.
    let (tx, rx) =
        std::sync::mpsc::channel::<(String, std::io::Result<std::process::ExitStatus>, PathBuf)>();
    let (mut compute, mut light) = (0usize, 0usize);
    let mut outcome = RunOutcome::default();
    let pb = crate::engine::progress::items(progress, jobs.len() as u64, "jobs");
    loop {
        // A sub-workflow job runs nothing: it is done as soon as its parents (the last jobs of
        // its sub-workflow) are, which may make further ones done.
        let mut joined = true;
        while joined && outcome.failed.is_none() {
            joined = false;
            for j in jobs.iter().filter(|j| j.executable.is_none()) {
                if !started.contains(&j.id) && j.parents.iter().all(|p| done.contains(p)) {
                    started.insert(j.id.clone());
                    done.insert(j.id.clone());
                    outcome.succeeded.push(j.id.clone());
                    pb.inc(1);
                    joined = true;
                }
            }
        }
        if outcome.failed.is_none() {
            // Main jobs first, each taking one of the `parallel` compute slots; tracking jobs
            // (short, I/O-bound) have as many slots of their own.
            let order = jobs
                .iter()
                .filter(|j| !j.tracking)
                .chain(jobs.iter().filter(|j| j.tracking));
            for j in order {
                let Some(executable) = &j.executable else {
                    continue;
                };
                let slots = if j.tracking { &mut light } else { &mut compute };
                if *slots >= parallel.max(1) {
                    continue;
                }
                if started.contains(&j.id) || !j.parents.iter().all(|p| done.contains(p)) {
                    continue;
                }
                for lfn in &j.inputs {
                    // Each replica is staged in once per run, by the first job that needs it:
                    // later jobs find what earlier ones left (a checkpoint, an inout file),
                    // and a tracking job never replaces what its job wrote.
                    if !staged.insert(lfn.clone()) {
                        continue;
                    }
                    stage(work, lfn, replicas, rewritten.contains(lfn.as_str()))?;
                }
                // What it writes is its own from now on: a replica of that name (a recorded
                // copy, in a rerun) is never staged over it.
                for lfn in &j.outputs {
                    staged.insert(lfn.clone());
                }
                let out = logs.join(format!("{}.out", j.id));
                let err = logs.join(format!("{}.err", j.id));
                let stdout = File::create(&out).map_err(|e| Error::io(&out, e))?;
                let stderr = File::create(&err).map_err(|e| Error::io(&err, e))?;
                let vars = container::job_vars(j, run_id);
                let engine = engines.get(j.id.as_str()).filter(|_| j.container.is_some());
                let (program, mut cmd) = match engine {
                    Some(engine) => {
                        let argv = container::container_command(j, engine, &abs_work);
                        let mut c = Command::new(&argv[0]);
                        c.args(&argv[1..])
                            .envs(container::container_env(engine, &vars));
                        (argv[0].clone(), c)
                    }
                    None => {
                        let mut c = Command::new(executable);
                        c.args(&j.args).envs(vars);
                        (executable.clone(), c)
                    }
                };
                let child = cmd
                    .current_dir(work)
                    .stdin(Stdio::null())
                    .stdout(stdout)
                    .stderr(stderr)
                    .spawn();
                started.insert(j.id.clone());
                match child {
                    Ok(mut c) => {
                        *slots += 1;
                        let (tx, id) = (tx.clone(), j.id.clone());
                        std::thread::spawn(move || {
                            let status = c.wait();
                            let _ = tx.send((id, status, err));
                        });
                    }
                    Err(e) => {
                        outcome.failed =
                            Some((j.id.clone(), format!("cannot start {program}: {e}")));
                        break;
                    }
                }
            }
        }
        if compute + light == 0 {
            // Nothing runs and nothing more can start (done, failed, or, for a plan that is
            // not a DAG, stuck: the rest is reported as not started).
            let ready = outcome.failed.is_none()
                && jobs.iter().any(|j| {
                    !started.contains(&j.id) && j.parents.iter().all(|p| done.contains(p))
                });
            if !ready {
                break;
            }
            continue;
        }
        let Ok((id, status, err)) = rx.recv() else {
            break;
        };
        if jobs.iter().any(|j| j.id == id && j.tracking) {
            light -= 1;
        } else {
            compute -= 1;
        }
        match status {
            Ok(status) if status.success() => {
                done.insert(id.clone());
                outcome.succeeded.push(id);
                pb.inc(1);
            }
            Ok(status) => {
                if outcome.failed.is_none() {
                    let why = format!("{status}; stderr ({}):\n{}", err.display(), tail(&err));
                    outcome.failed = Some((id, why));
                }
            }
            Err(e) => return Err(Error::io(&err, e)),
        }
    }
    outcome.not_started = jobs
        .iter()
        .filter(|j| !started.contains(&j.id))
        .map(|j| j.id.clone())
        .collect();
    Ok(outcome)
}
