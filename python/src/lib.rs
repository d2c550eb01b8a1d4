//! Python bindings of `store`: thin functions over the library, each taking the store
//! directory, releasing the GIL for the work, and answering in JSON (the same documents as the
//! CLI's `--json`), which `store_wms/__init__.py` turns into typed objects. No behaviour lives
//! here: a binding that needs logic the CLI has gets it moved into the library first.

use std::path::{Path, PathBuf};

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use store::{exit, Error, Store};

create_exception!(_store_wms, StoreError, PyException, "Any error of store.");
create_exception!(
    _store_wms,
    InvalidInput,
    StoreError,
    "Bad input: a malformed workflow, an unknown role or policy, a bad argument (CLI exit 2)."
);
create_exception!(
    _store_wms,
    NotAStore,
    StoreError,
    "No store here, or one already exists at init (exit 3)."
);
create_exception!(
    _store_wms,
    PathError,
    StoreError,
    "A path does not exist, cannot be read, lies inside .store/, or would be overwritten (exit 4)."
);
create_exception!(
    _store_wms,
    Corrupt,
    StoreError,
    "Corrupt data: a pack, an object or a run failed a check (exit 5)."
);
create_exception!(
    _store_wms,
    NotFound,
    StoreError,
    "No such object, hash or run, or an ambiguous prefix (exit 6)."
);
create_exception!(
    _store_wms,
    NewerFormat,
    StoreError,
    "Written by a newer store (exit 7)."
);
create_exception!(
    _store_wms,
    DiskFull,
    StoreError,
    "Disk full or quota exceeded; nothing was committed (exit 8)."
);
create_exception!(
    _store_wms,
    Busy,
    StoreError,
    "The store is busy (gc or reindex holds it) (exit 9)."
);
create_exception!(
    _store_wms,
    RunSealed,
    StoreError,
    "The run is sealed: it takes no more records (exit 11)."
);
create_exception!(
    _store_wms,
    RemoteError,
    StoreError,
    "A remote failed or refused (exit 12)."
);

/// The Python exception for a library error, chosen by the CLI's exit code for it.
fn py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e.exit_code() {
        exit::USAGE => InvalidInput::new_err(msg),
        exit::NO_STORE => NotAStore::new_err(msg),
        exit::BAD_PATH => PathError::new_err(msg),
        exit::CORRUPT => Corrupt::new_err(msg),
        exit::NOT_FOUND => NotFound::new_err(msg),
        exit::NEWER_FORMAT => NewerFormat::new_err(msg),
        exit::DISK_FULL => DiskFull::new_err(msg),
        exit::BUSY => Busy::new_err(msg),
        exit::SEALED => RunSealed::new_err(msg),
        exit::REMOTE => RemoteError::new_err(msg),
        _ => StoreError::new_err(msg),
    }
}

type R<T> = Result<T, Error>;

fn json(v: &impl serde::Serialize) -> R<String> {
    serde_json::to_string(v).map_err(|e| Error::Invalid(format!("JSON: {e}")))
}

/// Opens the store at `dir` as the CLI does: a clone fetches what it lacks from its remote.
fn open(dir: &str) -> R<Store> {
    let s = Store::open(Path::new(dir))?;
    store::remote::fetch_on_demand(&s);
    Ok(s)
}

/// Runs `f` without the GIL (other Python threads keep running) and maps its error.
fn work<T: Send>(py: Python<'_>, f: impl FnOnce() -> R<T> + Send) -> PyResult<T> {
    py.allow_threads(f).map_err(py_err)
}

/// The store directory for `start` (a directory in a workspace): `$STORE_DIR`, else the nearest
/// `.store` upwards.
#[pyfunction]
#[pyo3(signature = (start=None))]
fn discover(py: Python<'_>, start: Option<PathBuf>) -> PyResult<String> {
    work(py, || {
        if let Ok(d) = std::env::var("STORE_DIR") {
            if !d.is_empty() && start.is_none() {
                return Ok(d);
            }
        }
        let start = start.unwrap_or_else(|| PathBuf::from("."));
        Ok(Store::discover(&start)?.to_string_lossy().into_owned())
    })
}

/// Creates a store at `dir` (a `.store` directory).
#[pyfunction]
fn init(py: Python<'_>, dir: PathBuf) -> PyResult<String> {
    work(py, || {
        Store::init(&dir, &store::InitOptions::default())?;
        Ok(std::path::absolute(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .to_string_lossy()
            .into_owned())
    })
}

/// `store runs --json`.
#[pyfunction]
#[pyo3(signature = (dir, workflow=None))]
fn runs(py: Python<'_>, dir: &str, workflow: Option<String>) -> PyResult<String> {
    work(py, || json(&open(dir)?.runs(workflow.as_deref())?))
}

/// `store show RUN --json`: the snapshot, its counts and what is pending.
#[pyfunction]
fn show(py: Python<'_>, dir: &str, run: &str) -> PyResult<String> {
    work(py, || {
        let s = open(dir)?;
        let row = s.resolve_run(run)?;
        let mut snap = s.run_snapshot(&row)?;
        s.mlflow_overlay(&mut snap)?;
        let mut v = serde_json::to_value(&snap).map_err(|e| Error::Invalid(e.to_string()))?;
        if let Some(m) = v.as_object_mut() {
            let counts = store::run::RunCounts::of(&snap.entries);
            m.insert("counts".into(), serde_json::json!(counts));
            if let Some(p) = s.pending_push(&row.run_id)? {
                m.insert("pending".into(), serde_json::json!(p));
            }
        }
        json(&v)
    })
}

/// `store diff A B --json`.
#[pyfunction]
fn diff(py: Python<'_>, dir: &str, a: &str, b: &str) -> PyResult<String> {
    work(py, || json(&open(dir)?.diff_runs(a, b)?))
}

/// `store lineage TARGET --json`: a path that exists wins over a hash prefix.
#[pyfunction]
fn lineage(py: Python<'_>, dir: &str, target: &str) -> PyResult<String> {
    work(py, || {
        let s = open(dir)?;
        let p = Path::new(target);
        let h = if p.exists() {
            s.hash_path(p)?
        } else {
            s.resolve(target)?
        };
        json(&serde_json::json!({"hash": h, "records": s.lineage(&h)?}))
    })
}

/// `store checkout RUN --to TO [--role R]... [--force] [--as-recorded] --json`.
#[pyfunction]
#[pyo3(signature = (dir, run, to, roles=Vec::new(), force=false, as_recorded=false))]
fn checkout(
    py: Python<'_>,
    dir: &str,
    run: &str,
    to: PathBuf,
    roles: Vec<String>,
    force: bool,
    as_recorded: bool,
) -> PyResult<String> {
    work(py, || {
        let s = open(dir)?;
        let roles = roles
            .iter()
            .map(|r| r.parse())
            .collect::<R<Vec<store::run::Role>>>()?;
        let (_, restored) = store::reproduce::checkout_replannable(
            &s,
            run,
            &to,
            &roles,
            force,
            as_recorded,
            &store::CheckoutOptions::default(),
        )?;
        json(&restored)
    })
}

/// `store metadata export --json`: the Table I record of every file of every run.
#[pyfunction]
fn metadata(py: Python<'_>, dir: &str) -> PyResult<String> {
    work(py, || json(&open(dir)?.metadata_export()?))
}

/// The bytes of the file a run recorded under logical name (or path) `name`, every chunk
/// verified (a clone fetches the chunks it lacks).
#[pyfunction]
fn read_file<'py>(
    py: Python<'py>,
    dir: &str,
    run: &str,
    name: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = work(py, || {
        let s = open(dir)?;
        let row = s.resolve_run(run)?;
        let snap = s.run_snapshot(&row)?;
        let e = snap
            .entries
            .iter()
            .filter(|e| e.kind == "file")
            .find(|e| e.lfn == name || e.path == name)
            .ok_or_else(|| Error::ObjectNotFound(format!("file {name:?} in run {}", row.run_id)))?;
        let mut out = Vec::with_capacity(e.size as usize);
        s.cat(&e.hash, &mut out)?;
        Ok(out)
    })?;
    Ok(PyBytes::new(py, &bytes))
}

/// `store push [REMOTE] --json`.
#[pyfunction]
#[pyo3(signature = (dir, remote=None, runs=Vec::new()))]
fn push(py: Python<'_>, dir: &str, remote: Option<String>, runs: Vec<String>) -> PyResult<String> {
    work(py, || {
        let opts = store::PushOptions {
            runs,
            jobs: 8,
            progress: false,
            merge_at: 16,
        };
        json(&open(dir)?.push(remote.as_deref(), &opts)?)
    })
}

/// `store pull [REMOTE] --json`.
#[pyfunction]
#[pyo3(signature = (dir, remote=None, runs=Vec::new(), metadata_only=false))]
fn pull(
    py: Python<'_>,
    dir: &str,
    remote: Option<String>,
    runs: Vec<String>,
    metadata_only: bool,
) -> PyResult<String> {
    work(py, || {
        let opts = store::PullOptions {
            runs,
            jobs: 8,
            progress: false,
            metadata_only,
        };
        json(&open(dir)?.pull(remote.as_deref(), &opts)?)
    })
}

/// `store augment INPUT -o OUTPUT --json`: writes the augmented tree and returns the report.
#[pyfunction]
#[pyo3(signature = (input, output, policy=None, run_id=None, store_dir=None, store_bin=None, site="local".to_string(), strict=false))]
#[allow(clippy::too_many_arguments)]
fn augment(
    py: Python<'_>,
    input: PathBuf,
    output: PathBuf,
    policy: Option<String>,
    run_id: Option<String>,
    store_dir: Option<String>,
    store_bin: Option<String>,
    site: String,
    strict: bool,
) -> PyResult<String> {
    work(py, || {
        let tree = store::pegasus::WorkflowTree::load(&input)?;
        let opts = store::pegasus::AugmentOptions {
            policy: policy.map(|p| p.parse()).transpose()?,
            store_bin: store_bin.unwrap_or_else(|| "store".to_string()),
            store_dir,
            site,
            run_id: run_id.map(|r| r.parse()).transpose()?,
            output: output.clone(),
            strict,
            job_path: None,
            inherited: None,
        };
        let (tracked, report) = store::pegasus::augment(tree, &opts)?;
        tracked.write(&output)?;
        json(&report)
    })
}

/// `store track ROLE:PATH...` from job code: records `paths` into the job's run (identity from
/// the arguments, else `PEGASUS_WF_LABEL`, `PEGASUS_WF_UUID`, `PEGASUS_DAG_JOB_ID`).
#[pyfunction]
#[pyo3(signature = (dir, paths, role, lfn=None, workflow=None, run=None, job=None, capture_env=true))]
#[allow(clippy::too_many_arguments)]
fn record(
    py: Python<'_>,
    dir: &str,
    paths: Vec<PathBuf>,
    role: &str,
    lfn: Option<String>,
    workflow: Option<String>,
    run: Option<String>,
    job: Option<String>,
    capture_env: bool,
) -> PyResult<String> {
    work(py, || {
        let s = open(dir)?;
        let role: store::run::Role = role.parse()?;
        let spec = store::run::RecordSpec {
            ctx: store::run::RunContext::resolve(workflow, run, job)?,
            role,
            roles: Vec::new(),
            lfn,
            capture_env,
            mlflow_url: None,
            direction: None,
        };
        let r = s.record(&paths, spec, &store::AddOptions::default())?;
        json(&r)
    })
}

/// `store run WORKFLOW` (without MLflow): returns `{"run_id", "outcome", "report"}`; a failed
/// job is an error naming it.
#[pyfunction]
#[pyo3(signature = (dir, workflow, store_bin, workdir=None, run_id=None, jobs=2, policy=None, track=true, no_containers=false, catalog_dir=None, input_dirs=Vec::new()))]
#[allow(clippy::too_many_arguments)]
fn run(
    py: Python<'_>,
    dir: &str,
    workflow: PathBuf,
    store_bin: String,
    workdir: Option<PathBuf>,
    run_id: Option<String>,
    jobs: usize,
    policy: Option<String>,
    track: bool,
    no_containers: bool,
    catalog_dir: Option<PathBuf>,
    input_dirs: Vec<PathBuf>,
) -> PyResult<String> {
    work(py, || {
        let s = open(dir)?;
        let run_id = run_id.unwrap_or_else(store::runner::new_run_id);
        let o = store::runner::local::LocalOptions {
            store_dir: std::path::absolute(s.dir()).map_err(|e| Error::io(s.dir(), e))?,
            store_bin,
            run_id: run_id.clone(),
            work: workdir.unwrap_or_else(|| PathBuf::from("runs").join(&run_id)),
            jobs,
            policy: policy.map(|p| p.parse()).transpose()?,
            strict: false,
            no_containers,
        };
        let catalogs = store::pegasus::CatalogOptions {
            catalog_dir,
            input_dirs,
        };
        let (outcome, report) =
            store::runner::local::run_workflow(&workflow, &catalogs, track, &o)?;
        if let Some((job, why)) = outcome.failed {
            return Err(Error::JobFailed {
                run: run_id,
                job,
                why,
            });
        }
        json(&serde_json::json!({"run_id": run_id, "outcome": outcome, "report": report}))
    })
}

/// `store rerun RUN --json`.
#[pyfunction]
#[pyo3(signature = (dir, run, store_bin, workdir=None, jobs=2, policy="full".to_string(), allow_unrecorded=false))]
#[allow(clippy::too_many_arguments)]
fn rerun(
    py: Python<'_>,
    dir: &str,
    run: &str,
    store_bin: String,
    workdir: Option<PathBuf>,
    jobs: usize,
    policy: String,
    allow_unrecorded: bool,
) -> PyResult<String> {
    work(py, || {
        let s = open(dir)?;
        let o = store::reproduce::RerunOptions {
            jobs,
            policy: policy.parse()?,
            workdir,
            allow_unrecorded,
            store_bin,
            progress: false,
        };
        json(&store::reproduce::rerun(&s, run, &o)?)
    })
}

/// The run and job the calling job records into (`PEGASUS_*`), or an error naming what is
/// missing.
#[pyfunction]
fn current_run(py: Python<'_>) -> PyResult<String> {
    work(py, || {
        json(&store::run::RunContext::resolve(None, None, None)?)
    })
}

/// The bindings' module (`store_wms._store_wms`).
#[pymodule]
fn _store_wms(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    for (name, ty) in [
        ("StoreError", py.get_type::<StoreError>()),
        ("InvalidInput", py.get_type::<InvalidInput>()),
        ("NotAStore", py.get_type::<NotAStore>()),
        ("PathError", py.get_type::<PathError>()),
        ("Corrupt", py.get_type::<Corrupt>()),
        ("NotFound", py.get_type::<NotFound>()),
        ("NewerFormat", py.get_type::<NewerFormat>()),
        ("DiskFull", py.get_type::<DiskFull>()),
        ("Busy", py.get_type::<Busy>()),
        ("RunSealed", py.get_type::<RunSealed>()),
        ("RemoteError", py.get_type::<RemoteError>()),
    ] {
        m.add(name, ty)?;
    }
    m.add_function(wrap_pyfunction!(discover, m)?)?;
    m.add_function(wrap_pyfunction!(init, m)?)?;
    m.add_function(wrap_pyfunction!(runs, m)?)?;
    m.add_function(wrap_pyfunction!(show, m)?)?;
    m.add_function(wrap_pyfunction!(diff, m)?)?;
    m.add_function(wrap_pyfunction!(lineage, m)?)?;
    m.add_function(wrap_pyfunction!(checkout, m)?)?;
    m.add_function(wrap_pyfunction!(metadata, m)?)?;
    m.add_function(wrap_pyfunction!(read_file, m)?)?;
    m.add_function(wrap_pyfunction!(push, m)?)?;
    m.add_function(wrap_pyfunction!(pull, m)?)?;
    m.add_function(wrap_pyfunction!(augment, m)?)?;
    m.add_function(wrap_pyfunction!(record, m)?)?;
    m.add_function(wrap_pyfunction!(current_run, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(rerun, m)?)?;
    Ok(())
}
