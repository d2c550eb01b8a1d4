//! Python bindings of `store`: thin functions over the library, each taking the store
//! directory, doing the work on a thread of its own without the GIL (see [`work`]: Ctrl-C
//! interrupts the wait), and answering in JSON (the same documents as the CLI's `--json`),
//! which `store_wms/__init__.py` turns into typed objects. No behaviour lives here: a binding
//! that needs logic the CLI has gets it moved into the library first.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    "The store is busy: another store process holds what this call needs alone, e.g. gc while the store is in use (exit 9)."
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

/// How often a waiting call looks for a signal (Ctrl-C).
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Runs `f` on a thread of its own and waits for it without the GIL (other Python threads
/// keep running), looking for signals every [`SIGNAL_POLL`]: on Ctrl-C the wait ends with
/// `KeyboardInterrupt` (or whatever the signal handler raises) while `f` finishes on its own
/// thread, its answer dropped. That is safe because every write of the store is atomic (new
/// packs and the index commit land whole or not at all, restored files are renamed into
/// place): an abandoned operation either completes in the background or leaves nothing
/// half-written in the store (at worst a temporary file beside a restored one, when the
/// process exits mid-write), and the store verifies either way. The library has no
/// cancellation point to stop it sooner. Errors are mapped to the exception hierarchy
/// ([`py_err`]).
fn work<T: Send + 'static>(
    py: Python<'_>,
    f: impl FnOnce() -> R<T> + Send + 'static,
) -> PyResult<T> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("store_wms".into())
        .spawn(move || {
            // The receiver is gone when the caller was interrupted: nothing to tell.
            let _ = tx.send(f());
        })
        .map_err(|e| StoreError::new_err(format!("cannot start a thread: {e}")))?;
    let mut rx = rx;
    loop {
        // The receiver goes to the GIL-free closure and back (it is Send, not Sync).
        let (back, got) = py.allow_threads(move || {
            let got = rx.recv_timeout(SIGNAL_POLL);
            (rx, got)
        });
        rx = back;
        match got {
            Ok(r) => return r.map_err(py_err),
            Err(RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(StoreError::new_err(
                    "internal error: the store's worker thread stopped without an answer",
                ))
            }
        }
    }
}

/// The store directory for `start` (a directory in a workspace): `$STORE_DIR`, else the nearest
/// `.store` upwards.
#[pyfunction]
#[pyo3(signature = (start=None))]
fn discover(py: Python<'_>, start: Option<PathBuf>) -> PyResult<String> {
    work(py, move || {
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
    work(py, move || {
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
fn runs(py: Python<'_>, dir: String, workflow: Option<String>) -> PyResult<String> {
    work(py, move || json(&open(&dir)?.runs(workflow.as_deref())?))
}

/// `store show RUN --json`: the snapshot, its counts and what is pending.
#[pyfunction]
fn show(py: Python<'_>, dir: String, run: String) -> PyResult<String> {
    work(py, move || {
        let s = open(&dir)?;
        let row = s.resolve_run(&run)?;
        let mut snap = s.run_snapshot(&row)?;
        s.mlflow_overlay(&mut snap)?;
        s.published_overlay(&mut snap)?;
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
fn diff(py: Python<'_>, dir: String, a: String, b: String) -> PyResult<String> {
    work(py, move || json(&open(&dir)?.diff_runs(&a, &b)?))
}

/// `store lineage TARGET --json`: a path that exists wins over a hash prefix.
#[pyfunction]
fn lineage(py: Python<'_>, dir: String, target: String) -> PyResult<String> {
    work(py, move || {
        let s = open(&dir)?;
        let p = Path::new(&target);
        let h = if p.exists() {
            s.hash_path(p)?
        } else {
            s.resolve(&target)?
        };
        json(&serde_json::json!({"hash": h, "records": s.lineage(&h)?}))
    })
}

/// `store checkout RUN --to TO [--role R]... [--force] [--as-recorded] --json`.
#[pyfunction]
#[pyo3(signature = (dir, run, to, roles=Vec::new(), force=false, as_recorded=false))]
fn checkout(
    py: Python<'_>,
    dir: String,
    run: String,
    to: PathBuf,
    roles: Vec<String>,
    force: bool,
    as_recorded: bool,
) -> PyResult<String> {
    work(py, move || {
        let s = open(&dir)?;
        let roles = roles
            .iter()
            .map(|r| r.parse())
            .collect::<R<Vec<store::run::Role>>>()?;
        let (_, restored) = store::reproduce::checkout_replannable(
            &s,
            &run,
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
fn metadata(py: Python<'_>, dir: String) -> PyResult<String> {
    work(py, move || json(&open(&dir)?.metadata_export()?))
}

/// A stored file open for reading: the Rust half of `store_wms.Store.open_file` (whose
/// Python half is an `io.RawIOBase` keeping the position). Chunks are read, verified and (in a
/// clone) fetched one at a time as reads reach them, on the worker thread of [`work`].
#[pyclass(module = "store_wms._store_wms", frozen)]
struct FileStream {
    /// `None` once closed. Shared with the worker thread of a read in progress.
    reader: Arc<Mutex<Option<store::FileReader>>>,
    /// The file's size in bytes.
    #[pyo3(get)]
    size: u64,
    /// The file's hash (hex).
    #[pyo3(get)]
    hash: String,
    /// How many chunks the file has.
    #[pyo3(get)]
    chunks: usize,
}

#[pymethods]
impl FileStream {
    /// Up to `n` bytes from byte `pos` (fewer only at the end of the file), every chunk
    /// verified. Raises `Corrupt` for a damaged chunk, `ValueError` once closed.
    fn read_at<'py>(&self, py: Python<'py>, pos: u64, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        let n = n.min(self.size.saturating_sub(pos) as usize);
        let reader = Arc::clone(&self.reader);
        let bytes = work(py, move || {
            // A poisoned lock means a read panicked; the reader holds no invariant across
            // reads beyond its position, which every read sets.
            let mut g = reader.lock().unwrap_or_else(|p| p.into_inner());
            let r = g
                .as_mut()
                .ok_or_else(|| Error::Invalid("I/O operation on closed file".into()))?;
            r.seek_to(pos);
            let mut buf = vec![0u8; n];
            let got = r.read_into(&mut buf)?;
            buf.truncate(got);
            Ok(buf)
        })?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Releases the store (a read still in progress finishes first, in the background).
    fn close(&self) {
        if let Ok(mut g) = self.reader.try_lock() {
            *g = None;
        }
    }
}

/// The file a run recorded under logical name (or path) `name`, open for streaming reads.
#[pyfunction]
fn open_file(py: Python<'_>, dir: String, run: String, name: String) -> PyResult<FileStream> {
    let reader = work(py, move || {
        let s = open(&dir)?;
        let row = s.resolve_run(&run)?;
        let snap = s.run_snapshot(&row)?;
        let e = snap
            .entries
            .iter()
            .filter(|e| e.kind == "file")
            .find(|e| e.lfn == name || e.path == name)
            .ok_or_else(|| Error::ObjectNotFound(format!("file {name:?} in run {}", row.run_id)))?;
        let hash = e.hash;
        s.into_file_reader(&hash)
    })?;
    Ok(FileStream {
        size: reader.size(),
        hash: reader.hash().to_hex(),
        chunks: reader.chunk_count(),
        reader: Arc::new(Mutex::new(Some(reader))),
    })
}

/// `store gc [--yes] [--keep-last N] --json`: needs the store alone (`Busy` otherwise).
#[pyfunction]
#[pyo3(signature = (dir, apply=false, keep_last=None))]
fn gc(py: Python<'_>, dir: String, apply: bool, keep_last: Option<usize>) -> PyResult<String> {
    work(py, move || json(&open(&dir)?.gc(apply, keep_last)?))
}

/// `store push [REMOTE] --json`.
#[pyfunction]
#[pyo3(signature = (dir, remote=None, runs=Vec::new()))]
fn push(
    py: Python<'_>,
    dir: String,
    remote: Option<String>,
    runs: Vec<String>,
) -> PyResult<String> {
    work(py, move || {
        let opts = store::PushOptions {
            runs,
            jobs: 8,
            progress: false,
            merge_at: 16,
        };
        json(&open(&dir)?.push(remote.as_deref(), &opts)?)
    })
}

/// `store publish [RUN...] [--remote R] --json`.
#[pyfunction]
#[pyo3(signature = (dir, remote=None, runs=Vec::new()))]
fn publish(
    py: Python<'_>,
    dir: String,
    remote: Option<String>,
    runs: Vec<String>,
) -> PyResult<String> {
    work(py, move || {
        let s = open(&dir)?;
        let r = s.publish(&store::PublishOptions {
            runs,
            remote,
            jobs: 8,
            progress: false,
        })?;
        for p in &r.runs {
            s.clear_pending_publish(&p.run_id, &r.remote)?;
        }
        json(&r)
    })
}

/// `store pull [REMOTE] --json`.
#[pyfunction]
#[pyo3(signature = (dir, remote=None, runs=Vec::new(), metadata_only=false))]
fn pull(
    py: Python<'_>,
    dir: String,
    remote: Option<String>,
    runs: Vec<String>,
    metadata_only: bool,
) -> PyResult<String> {
    work(py, move || {
        let opts = store::PullOptions {
            runs,
            jobs: 8,
            progress: false,
            metadata_only,
        };
        json(&open(&dir)?.pull(remote.as_deref(), &opts)?)
    })
}

/// `store augment INPUT -o OUTPUT [--mlflow] --json`: writes the augmented tree and returns
/// the report (with `mlflow` when linked).
#[pyfunction]
#[pyo3(signature = (input, output, policy=None, run_id=None, store_dir=None, store_bin=None, site="local".to_string(), strict=false, mlflow=false, mlflow_params=None))]
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
    mlflow: bool,
    mlflow_params: Option<PathBuf>,
) -> PyResult<String> {
    work(py, move || {
        let params = match &mlflow_params {
            Some(f) => store::mlflow::config_params_file(f)?,
            None => Vec::new(),
        };
        let tree = store::pegasus::WorkflowTree::load(&input)?;
        let opts = store::pegasus::AugmentOptions {
            policy: policy.map(|p| p.parse()).transpose()?,
            store_bin: store_bin.unwrap_or_else(|| "store".to_string()),
            store_dir,
            site,
            // MLflow runs are keyed by the store run ID, so `mlflow` fixes it now.
            run_id: match (run_id, mlflow) {
                (Some(r), _) => Some(r.parse()?),
                (None, true) => Some(store::runner::new_run_id().parse()?),
                (None, false) => None,
            },
            output: output.clone(),
            strict,
            job_path: None,
            inherited: None,
        };
        let (mut tracked, report) = store::pegasus::augment(tree, &opts)?;
        let mut v = serde_json::to_value(&report).map_err(|e| Error::Invalid(e.to_string()))?;
        if mlflow {
            // The run's MLflow state lives in the store its tracking jobs record into.
            let dir = opts.store_dir.as_deref().ok_or_else(|| Error::NotAStore {
                start: PathBuf::from("."),
            })?;
            let s = Store::open(Path::new(dir))?;
            let run_id = report.run_id.clone().unwrap_or_default();
            let start = store::mlflow::link_workflow(&s, &mut tracked, &report, &run_id, params)?;
            if let Some(m) = v.as_object_mut() {
                m.insert(
                    "mlflow".into(),
                    store::mlflow::link_summary(&start, &report),
                );
            }
        }
        tracked.write(&output)?;
        json(&v)
    })
}

/// `store track ROLE:PATH...` from job code: records `paths` into the job's run (identity from
/// the arguments, else `PEGASUS_WF_LABEL`, `PEGASUS_WF_UUID`, `PEGASUS_DAG_JOB_ID`).
#[pyfunction]
#[pyo3(signature = (dir, paths, role, lfn=None, workflow=None, run=None, job=None, capture_env=true))]
#[allow(clippy::too_many_arguments)]
fn record(
    py: Python<'_>,
    dir: String,
    paths: Vec<PathBuf>,
    role: String,
    lfn: Option<String>,
    workflow: Option<String>,
    run: Option<String>,
    job: Option<String>,
    capture_env: bool,
) -> PyResult<String> {
    work(py, move || {
        let s = open(&dir)?;
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

/// `store run WORKFLOW [--mlflow]`: returns `{"run_id", "outcome", "report", "mlflow"}`
/// (`mlflow` when linked, with `pending` when MLflow was not reached); a failed job is an
/// error naming it.
#[pyfunction]
#[pyo3(signature = (dir, workflow, store_bin, workdir=None, run_id=None, jobs=2, policy=None, track=true, no_containers=false, catalog_dir=None, input_dirs=Vec::new(), mlflow=false, mlflow_params=None))]
#[allow(clippy::too_many_arguments)]
fn run(
    py: Python<'_>,
    dir: String,
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
    mlflow: bool,
    mlflow_params: Option<PathBuf>,
) -> PyResult<String> {
    work(py, move || {
        let params = match &mlflow_params {
            Some(f) => store::mlflow::config_params_file(f)?,
            None => Vec::new(),
        };
        let s = open(&dir)?;
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
        let done = store::mlflow::run_local(&s, &workflow, &catalogs, track, mlflow, params, &o)?;
        let (outcome, report) = (done.outcome, done.report);
        if let Some((job, why)) = outcome.failed {
            return Err(Error::JobFailed {
                run: run_id,
                job,
                why,
            });
        }
        let linked = done.mlflow.as_ref().map(|start| {
            let mut m = store::mlflow::link_summary(start, &report);
            if let Some(o) = m.as_object_mut() {
                // Also pending when the seal could not reach MLflow.
                let pending = s.mlflow_is_pending(&run_id);
                o.insert("pending_after_run".into(), serde_json::json!(pending));
            }
            m
        });
        json(
            &serde_json::json!({"run_id": run_id, "outcome": outcome, "report": report,
                                 "mlflow": linked}),
        )
    })
}

/// `store rerun RUN --json`.
#[pyfunction]
#[pyo3(signature = (dir, run, store_bin, workdir=None, jobs=2, policy="full".to_string(), allow_unrecorded=false))]
#[allow(clippy::too_many_arguments)]
fn rerun(
    py: Python<'_>,
    dir: String,
    run: String,
    store_bin: String,
    workdir: Option<PathBuf>,
    jobs: usize,
    policy: String,
    allow_unrecorded: bool,
) -> PyResult<String> {
    work(py, move || {
        let s = open(&dir)?;
        let o = store::reproduce::RerunOptions {
            jobs,
            policy: policy.parse()?,
            workdir,
            allow_unrecorded,
            store_bin,
            progress: false,
        };
        json(&store::reproduce::rerun(&s, &run, &o)?)
    })
}

/// The run and job the calling job records into (`PEGASUS_*`), or an error naming what is
/// missing.
#[pyfunction]
fn current_run(py: Python<'_>) -> PyResult<String> {
    work(py, move || {
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
    m.add_function(wrap_pyfunction!(open_file, m)?)?;
    m.add_function(wrap_pyfunction!(gc, m)?)?;
    m.add_class::<FileStream>()?;
    m.add_function(wrap_pyfunction!(push, m)?)?;
    m.add_function(wrap_pyfunction!(pull, m)?)?;
    m.add_function(wrap_pyfunction!(publish, m)?)?;
    m.add_function(wrap_pyfunction!(augment, m)?)?;
    m.add_function(wrap_pyfunction!(record, m)?)?;
    m.add_function(wrap_pyfunction!(current_run, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(rerun, m)?)?;
    Ok(())
}
