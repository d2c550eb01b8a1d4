"""Track, seal, restore and re-run Pegasus workflow runs from Python.

``store_wms`` is the Python face of `store`, a content-addressed versioning store for
scientific workflows. It calls the same Rust library as the ``store`` command (no subprocess,
no second implementation). Long operations run without the GIL (other threads keep running)
and Ctrl-C interrupts them: ``KeyboardInterrupt`` is raised at once while the abandoned
operation finishes in the background; every write of the store is atomic, so the store stays
consistent whether or not it completes.

For workflow generators (tags are plain Pegasus metadata; a tagged workflow is still a plain
Pegasus workflow)::

    from Pegasus.api import Workflow, File, Job, Transformation
    import store_wms

    store_wms.track_input(raw)                 # input_track on a File
    store_wms.track_output(model)              # output_track on a File
    store_wms.track_transformation(train)      # track_trans on a Transformation
    store_wms.track_workflow(wf, "full")       # store_track: full on the Workflow
    report = store_wms.write_tracked(wf, "workflow.yml")   # augmented, ready for pegasus-plan
    tracked, report = store_wms.augment(wf, mlflow=True)   # or in memory, linked to MLflow

For job code (inside a Pegasus or ``store run`` job)::

    store_wms.record("model.pt", role="output")
    mlflow.start_run(run_id=store_wms.mlflow_run_id())

For notebooks::

    s = store_wms.Store.open()
    df = pandas.DataFrame(s.metadata())
    s.checkout(s.runs()[0].run_id, "restored")
    with s.open_file(run_id, "model.pt") as f:   # streamed, every chunk verified
        header = f.read(16)

Errors are :class:`StoreError` subclasses, one per kind of failure (the ``store`` command's
exit codes): :class:`InvalidInput`, :class:`NotAStore`, :class:`PathError`, :class:`Corrupt`,
:class:`NotFound`, :class:`NewerFormat`, :class:`DiskFull`, :class:`Busy`, :class:`RunSealed`,
:class:`RemoteError`.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from . import _store_wms as _b
from ._store_wms import (
    Busy,
    Corrupt,
    DiskFull,
    InvalidInput,
    NewerFormat,
    NotAStore,
    NotFound,
    PathError,
    RemoteError,
    RunSealed,
    StoreError,
)

__all__ = [
    "Store", "RunSummary", "Run", "Entry", "Counts", "Restored", "AugmentReport",
    "track_input", "track_output", "track_transformation", "track_workflow", "mlflow_job",
    "augment", "write_tracked", "run", "record", "current_run", "mlflow_run_id", "ROLES",
    "StoredFile",
    "StoreError", "InvalidInput", "NotAStore", "PathError", "Corrupt", "NotFound",
    "NewerFormat", "DiskFull", "Busy", "RunSealed", "RemoteError",
]

#: The roles a tracked file can have in a run.
ROLES = ("input", "output", "intermediate", "code", "workflow", "environment")

PathLike = Union[str, "os.PathLike[str]"]


def _time(ns: Optional[int]) -> Optional[_dt.datetime]:
    """A timestamp in nanoseconds since the epoch as an aware UTC datetime (None for 0)."""
    if not ns:
        return None
    return _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.timezone.utc)


@dataclass(frozen=True)
class Counts:
    """A run's numbers, as ``store runs`` and ``store show`` count them.

    ``jobs``: the workflow's jobs that recorded data files; ``files``: distinct (path, version)
    pairs; ``records``: distinct (job, role, path, version) entries, the environment once per
    job; ``bytes``: the files' sizes, each counted once.
    """

    jobs: int
    files: int
    records: int
    bytes: int


@dataclass(frozen=True)
class RunSummary:
    """One run, as listed by :meth:`Store.runs`."""

    run_id: str
    workflow: str
    status: str
    created: Optional[_dt.datetime]
    sealed: Optional[_dt.datetime]
    counts: Counts
    pending: Optional[Dict[str, Any]] = None


@dataclass(frozen=True)
class Entry:
    """One tracked file of a run, with the metadata the tracking paper's Table I lists."""

    role: str
    lfn: str
    path: str
    kind: str
    hash: str
    size: int
    mtime: Optional[_dt.datetime]
    recorded: Optional[_dt.datetime]
    job_id: str
    environment: Optional[str] = None
    remote_urls: List[str] = field(default_factory=list)
    mlflow_url: Optional[str] = None
    origin: Optional[str] = None
    direction: Optional[str] = None

    @property
    def bucket_url(self) -> Optional[str]:
        """Table I's Bucket Storage URL: where the file was published on an S3, GCS or Azure
        remote (``s3://…``), if it was (:meth:`Store.publish`)."""
        schemes = ("s3://", "s3a://", "gs://", "az://", "azure://", "abfs://", "abfss://")
        return next((u for u in self.remote_urls if u.startswith(schemes)), None)

    @property
    def drive_url(self) -> Optional[str]:
        """Table I's Google Drive URL (``https://drive.google.com/file/d/<id>``), if the file
        was published on a Drive remote."""
        return next((u for u in self.remote_urls
                     if u.startswith("https://drive.google.com/")), None)


@dataclass(frozen=True)
class Run:
    """A run's snapshot (sealed) or what it recorded so far (open), from :meth:`Store.show`."""

    workflow: str
    run_id: str
    created: Optional[_dt.datetime]
    sealed: Optional[_dt.datetime]
    entries: List[Entry]
    counts: Counts
    code: Optional[Dict[str, Any]] = None
    pending: Optional[Dict[str, Any]] = None

    def files(self, role: Optional[str] = None) -> List[Entry]:
        """The entries of one role (all when None)."""
        return [e for e in self.entries if role is None or e.role == role]


@dataclass(frozen=True)
class Restored:
    """What :meth:`Store.checkout` restored: where, how much, and which workflow to plan."""

    run_id: str
    workflow: str
    path: str
    files: int
    bytes: int
    root_workflow: Optional[str]
    rewritten: List[Tuple[str, int]]
    unrecorded: List[Tuple[str, str, str]]


@dataclass(frozen=True)
class AugmentReport:
    """What augmentation decided (``store augment --json``)."""

    main_jobs: int
    added_jobs: int
    run_id: Optional[str]
    tracked: Dict[str, str]
    transformations: List[str]
    workflow_tracked: bool
    by_tag: Dict[str, int]
    warnings: List[str]
    nothing_tracked: Optional[str]
    #: With ``mlflow=True``: ``{"requests", "tracked_jobs", "pending", "parent_url"}``
    #: (``pending`` says why MLflow was not reached; the seal fills it in later).
    mlflow: Optional[Dict[str, Any]] = None
    raw: Dict[str, Any] = field(repr=False, default_factory=dict)


def _entry(e: Dict[str, Any]) -> Entry:
    return Entry(
        role=e["role"], lfn=e["lfn"], path=e["path"], kind=e["kind"], hash=e["hash"],
        size=e["size"], mtime=_time(e.get("mtime_ns")), recorded=_time(e.get("recorded_ns")),
        job_id=e["job_id"], environment=e.get("environment"),
        remote_urls=list(e.get("remote_urls") or []), mlflow_url=e.get("mlflow_url"),
        origin=e.get("origin"), direction=e.get("direction"),
    )


def _counts(c: Dict[str, Any]) -> Counts:
    return Counts(jobs=c["jobs"], files=c["files"], records=c["records"], bytes=c["bytes"])


def _report(r: Dict[str, Any]) -> AugmentReport:
    return AugmentReport(
        main_jobs=r["main_jobs"], added_jobs=r["added_jobs"], run_id=r.get("run_id"),
        tracked=dict(r.get("tracked") or {}), transformations=list(r.get("transformations") or []),
        workflow_tracked=bool(r.get("workflow_tracked")), by_tag=dict(r.get("by_tag") or {}),
        warnings=list(r.get("warnings") or []), nothing_tracked=r.get("nothing_tracked"),
        mlflow=r.get("mlflow"), raw=r,
    )


class StoredFile(io.RawIOBase):
    """The raw, unbuffered stream of one stored file (what :meth:`Store.open_file` wraps in
    an ``io.BufferedReader``): read-only and seekable; each read fetches and verifies the
    chunks it reaches, without the GIL."""

    def __init__(self, stream: "_b.FileStream", name: str = "") -> None:
        """Wraps a native ``FileStream`` (from :meth:`Store.open_file`; not made by hand)."""
        super().__init__()
        self._s: Optional[_b.FileStream] = stream
        self._pos = 0
        self.name = name
        #: The file's size in bytes.
        self.size: int = stream.size
        #: The file's content hash (hex).
        self.hash: str = stream.hash
        #: How many chunks the store keeps it in.
        self.chunks: int = stream.chunks

    def __repr__(self) -> str:
        return f"<StoredFile {self.name!r} size={self.size} hash={self.hash[:12]}>"

    def _stream(self) -> "_b.FileStream":
        if self._s is None or self.closed:
            raise ValueError("I/O operation on closed file")
        return self._s

    def readable(self) -> bool:
        """True (ValueError once closed)."""
        self._stream()
        return True

    def seekable(self) -> bool:
        """True: any position can be read from (ValueError once closed)."""
        self._stream()
        return True

    def writable(self) -> bool:
        """False: a stored file is read-only."""
        return False

    def tell(self) -> int:
        """The position the next read starts at."""
        self._stream()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Moves to ``offset`` from the start, the current position or the end (``whence``
        0, 1, 2); past the end is allowed (reads there return ``b""``). Nothing is read
        until the next read. Returns the new position."""
        self._stream()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence ({whence})")
        pos = base + offset
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, b: Any) -> int:
        """Reads up to ``len(b)`` bytes into ``b``; returns how many (0 at the end). Raises
        :class:`Corrupt` for a damaged chunk, :class:`RemoteError` when a clone cannot fetch
        one."""
        view = memoryview(b).cast("B")
        data = self._stream().read_at(self._pos, len(view))
        n = len(data)
        view[:n] = data
        self._pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all the rest when negative); ``b""`` at the end."""
        if size is None or size < 0:
            return self.readall()
        data = self._stream().read_at(self._pos, size)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        """The rest of the file, in one call."""
        return self.read(max(self.size - self._pos, 0))

    def close(self) -> None:
        """Releases the store (idempotent)."""
        if self._s is not None:
            self._s.close()
            self._s = None
        super().close()


class Store:
    """A store (the ``.store`` directory of a workspace).

    Every method opens the store afresh, so a ``Store`` is cheap, safe to share between
    threads, and sees what other processes committed meanwhile.
    """

    def __init__(self, store_dir: PathLike) -> None:
        self.dir = os.fspath(store_dir)

    def __repr__(self) -> str:
        return f"Store({self.dir!r})"

    @classmethod
    def open(cls, path: Optional[PathLike] = None) -> "Store":
        """The store of the workspace at (or above) ``path``; without one, ``$STORE_DIR``,
        else the nearest ``.store`` above the current directory. Raises :class:`NotAStore`."""
        return cls(_b.discover(None if path is None else os.fspath(path)))

    @classmethod
    def init(cls, path: PathLike = ".store") -> "Store":
        """Creates a store at ``path`` (a ``.store`` directory). Raises :class:`NotAStore`
        if one exists there."""
        return cls(_b.init(os.fspath(path)))

    def runs(self, workflow: Optional[str] = None) -> List[RunSummary]:
        """Runs, newest first (of one workflow when given)."""
        out = []
        for r in json.loads(_b.runs(self.dir, workflow)):
            out.append(RunSummary(
                run_id=r["run_id"], workflow=r["workflow"], status=r["status"],
                created=_time(r.get("created_ns")), sealed=_time(r.get("sealed_ns")),
                counts=_counts(r), pending=r.get("pending"),
            ))
        return out

    def show(self, run: str) -> Run:
        """What run ``run`` (an ID or unique prefix) tracked. Raises :class:`NotFound`."""
        s = json.loads(_b.show(self.dir, run))
        return Run(
            workflow=s["workflow"], run_id=s["run_id"], created=_time(s.get("created_ns")),
            sealed=_time(s.get("sealed_ns")), entries=[_entry(e) for e in s["entries"]],
            counts=_counts(s["counts"]), code=s.get("code"), pending=s.get("pending"),
        )

    def diff(self, a: str, b: str) -> Dict[str, Any]:
        """What changed from run ``a`` to run ``b`` (``store diff --json``): per role, added,
        removed, changed and renamed files, and environment changes."""
        return json.loads(_b.diff(self.dir, a, b))

    def lineage(self, path_or_hash: PathLike) -> List[Dict[str, Any]]:
        """Which runs and jobs consumed or produced a file (an existing path, or a hash or
        unique prefix): dicts with workflow, run_id, job_id, role, direction, path."""
        return json.loads(_b.lineage(self.dir, os.fspath(path_or_hash)))["records"]

    def checkout(self, run: str, to: PathLike, roles: Optional[Sequence[str]] = None,
                 force: bool = False, as_recorded: bool = False) -> Restored:
        """Restores run ``run`` under ``to``, every chunk verified. With all roles and not
        ``as_recorded``, its workflow descriptions are rewritten to name the restored files,
        so ``to`` can be planned again. Existing files with other content raise
        :class:`PathError` unless ``force``."""
        r = json.loads(_b.checkout(self.dir, run, os.fspath(to), list(roles or []), force,
                                   as_recorded))
        return Restored(
            run_id=r["run_id"], workflow=r["workflow"], path=r["path"],
            files=r["files"], bytes=r["bytes"],
            root_workflow=r.get("root_workflow"),
            rewritten=[tuple(x) for x in r.get("rewritten", [])],
            unrecorded=[tuple(x) for x in r.get("unrecorded", [])],
        )

    def metadata(self) -> List[Dict[str, Any]]:
        """One dict per file of every run (the paper's Table I: workflow, run_id, job_id,
        file_name, lfn, path, size, times, role, kind, version, remote and MLflow URLs, ...),
        ready for ``pandas.DataFrame(...)``."""
        doc = json.loads(_b.metadata(self.dir))
        rows: List[Dict[str, Any]] = []
        for runs in doc.values():
            for run in runs.values():
                rows.extend(run["files"].values())
        return rows

    def open_file(self, run: str, lfn: str, buffer_size: int = 1 << 20) -> io.BufferedReader:
        """A read-only, seekable binary file with the content run ``run`` recorded for
        logical name (or path) ``lfn``. It streams: chunks are read only when a read reaches
        them, each verified against its hash (a damaged one raises :class:`Corrupt`), and on
        a clone fetched from its remote when first needed (the chunk alone after a seek, a
        few MiB ahead when reading on), so memory stays at one chunk and ``buffer_size``.
        Use it as a context manager, or close it. Raises :class:`NotFound`.

        The raw stream underneath is ``f.raw`` (a :class:`StoredFile`: ``size``, ``hash``)."""
        raw = StoredFile(_b.open_file(self.dir, run, lfn), name=lfn)
        return io.BufferedReader(raw, buffer_size=buffer_size)

    def gc(self, apply: bool = False, keep_last: Optional[int] = None) -> Dict[str, Any]:
        """Removes what nothing references (``store gc --json``): only reports what it would
        remove unless ``apply``; ``keep_last`` keeps only the newest N versions of each added
        path. Needs the store alone: raises :class:`Busy` while another process uses it."""
        return json.loads(_b.gc(self.dir, apply, keep_last))

    def rerun(self, run: str, workdir: Optional[PathLike] = None, jobs: int = 2,
              policy: str = "full", allow_unrecorded: bool = False) -> Dict[str, Any]:
        """Reruns sealed run ``run`` from what it recorded only (its code, inputs and
        workflow, restored under ``workdir/restored``), as a new run in ``workdir/work``, and
        compares (``store rerun --json``: ``identical``, ``outputs``, per-job ``jobs``).
        Raises :class:`InvalidInput` when the run did not record a job's code, unless
        ``allow_unrecorded``. Needs the ``store`` binary (see :func:`run`)."""
        return json.loads(_b.rerun(self.dir, run, _store_bin(),
                                   None if workdir is None else os.fspath(workdir), jobs,
                                   policy, allow_unrecorded))

    def push(self, remote: Optional[str] = None, runs: Sequence[str] = ()) -> Dict[str, Any]:
        """Pushes to ``remote`` (the default remote when None); ``store push --json``."""
        return json.loads(_b.push(self.dir, remote, list(runs)))

    def publish(self, runs: Sequence[str] = (), remote: Optional[str] = None) -> Dict[str, Any]:
        """Publishes sealed runs (all when ``runs`` is empty) as folders people can browse on
        ``remote`` (the default remote when None): ``store publish --json``. Afterwards
        :meth:`show` lists each file's published URLs in ``remote_urls``."""
        return json.loads(_b.publish(self.dir, remote, list(runs)))

    def pull(self, remote: Optional[str] = None, runs: Sequence[str] = (),
             metadata_only: bool = False) -> Dict[str, Any]:
        """Pulls from ``remote`` (the default remote when None); ``store pull --json``."""
        return json.loads(_b.pull(self.dir, remote, list(runs), metadata_only))


# --- For workflow generators: tags are plain Pegasus metadata -------------------------------


def track_input(file: Any, on: bool = True) -> Any:
    """Tags a Pegasus ``File`` (or anything with ``add_metadata``) ``input_track``: it is
    recorded before the jobs that read it. Returns it, for chaining."""
    file.add_metadata(input_track="true" if on else "false")
    return file


def track_output(file: Any, on: bool = True) -> Any:
    """Tags a Pegasus ``File`` ``output_track``: it is recorded after the job that writes it."""
    file.add_metadata(output_track="true" if on else "false")
    return file


def track_transformation(tr: Any, on: bool = True) -> Any:
    """Tags a Pegasus ``Transformation`` ``track_trans``: its executable is recorded as the
    run's code (and restored by a rerun)."""
    tr.add_metadata(track_trans="true" if on else "false")
    return tr


def track_workflow(wf: Any, policy: Optional[str] = "full") -> Any:
    """Sets a Pegasus ``Workflow``'s tracking: a policy (``store_track``: full, basic, inputs,
    outputs, transformations), or with ``policy=None`` just ``wf_track`` (its description)."""
    if policy is None:
        wf.add_metadata(wf_track="true")
    else:
        wf.add_metadata(store_track=policy)
    return wf


def mlflow_job(job: Any, experiment: Optional[str] = None, run: Optional[str] = None,
               params: Any = None) -> Any:
    """Gives a Pegasus ``Job`` an MLflow child run: named after the job (``job_auto``), or
    with ``experiment``/``run`` names (``job_custom``). ``params`` (a ``File`` or logical
    name the job reads, JSON or YAML) sets ``mlflow_params``: at the seal the child run gets
    that file's keys as parameters, from the bytes the job recorded."""
    if params is not None:
        job.add_metadata(mlflow_params=getattr(params, "lfn", params))
    if experiment is None and run is None:
        job.add_metadata(job_auto="true")
    else:
        job.add_metadata(job_custom="true")
        if experiment is not None:
            job.add_metadata(mlflow_experiment=experiment)
        if run is not None:
            job.add_metadata(mlflow_run=run)
    return job


def write_tracked(wf: Any, path: PathLike, policy: Optional[str] = None,
                  run_id: Optional[str] = None, store_dir: Optional[PathLike] = None,
                  store_bin: Optional[str] = None, site: str = "local",
                  strict: bool = False, mlflow: bool = False,
                  mlflow_params: Optional[PathLike] = None) -> AugmentReport:
    """Writes Pegasus ``Workflow`` ``wf`` with tracking jobs added to ``path`` (its
    sub-workflows beside it), byte for byte what ``store augment <stem>.untracked.yml -o
    path`` writes; ``<stem>.untracked.yml`` is ``wf`` as Pegasus writes it, kept beside
    ``path`` for the run's workflow tracker.

    ``store_dir`` is the store the tracking jobs record into (default: this workspace's, if
    any); ``store_bin`` the ``store`` binary on the execution site (default: ``store`` on
    PATH); ``run_id`` fixes the run (default: Pegasus's run ID, or a new one for a tree).
    With ``mlflow=True`` (``store augment --mlflow``) the run is linked to MLflow now: its
    experiment, parent run and a child run per tracked job are created at once on the
    tracking server (the store's ``mlflow.uri``, else ``MLFLOW_TRACKING_URI``), each job gets
    ``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME`` and ``MLFLOW_RUN_ID`` (see
    :func:`mlflow_run_id`), and the run ID is fixed (``run_id``, else a new one). If MLflow
    does not answer in time the jobs run without it, ``report.mlflow["pending"]`` says why (a
    warning too), and the seal fills MLflow in. Needs a store (the run's MLflow state lives
    there): :class:`NotAStore` without one; :class:`InvalidInput` without a tracking URI.
    ``mlflow_params`` (``--mlflow-params``): a JSON or YAML file whose keys the parent run
    gets as parameters (nested keys joined with ``.``).

    Raises :class:`InvalidInput` for a workflow the command would refuse.
    """
    out = Path(os.fspath(path))
    if store_dir is None:
        try:
            store_dir = _b.discover(None)
        except NotAStore:
            store_dir = None
    # The description as the generator wrote it stays beside the output: the run's workflow
    # tracker records it from there (`store augment <stem>.untracked.yml -o path` is the
    # same command).
    src = out.with_name(out.stem + ".untracked.yml")
    wf.write(str(src))
    r = _report(json.loads(_b.augment(
        str(src), os.fspath(out), policy, run_id,
        None if store_dir is None else os.path.abspath(os.fspath(store_dir)),
        store_bin, site, strict, mlflow,
        None if mlflow_params is None else os.fspath(mlflow_params))))
    _warn_pending(r.mlflow, r.run_id)
    return r


def _warn_pending(linked: Optional[Dict[str, Any]], run_id: Optional[str]) -> None:
    """Warns when an MLflow linkage left the run pending (what the command says on stderr)."""
    if linked and linked.get("pending"):
        import warnings

        warnings.warn(
            f"MLflow not reached ({linked['pending']}); the jobs run without MLFLOW_* and run "
            f"{run_id} is pending: its seal, or `store mlflow sync {run_id}`, fills MLflow in",
            RuntimeWarning, stacklevel=3)


def augment(wf: Any, policy: Optional[str] = None, mlflow: bool = False,
            run_id: Optional[str] = None, store_dir: Optional[PathLike] = None,
            store_bin: Optional[str] = None, site: str = "local", strict: bool = False,
            description_dir: PathLike = ".",
            mlflow_params: Optional[PathLike] = None) -> Tuple[Any, AugmentReport]:
    """``wf`` with tracking jobs added, as a new ``Pegasus.api.Workflow`` loaded with
    Pegasus's own loader, and the report. ``wf`` itself is not changed. The description as
    written by ``wf`` is kept in ``description_dir`` (``<name>.untracked.yml``), where the
    run's workflow tracker reads it. ``mlflow=True`` (and ``mlflow_params``) link the run to
    MLflow as :func:`write_tracked` describes. For a workflow with sub-workflows use
    :func:`write_tracked`, which writes the augmented children too."""
    from Pegasus import workflow as _loader  # Pegasus's own loader

    with tempfile.TemporaryDirectory(prefix="store-wms-") as tmp:
        out = Path(tmp) / f"{wf.name}.yml"
        report = write_tracked(wf, out, policy=policy, run_id=run_id, store_dir=store_dir,
                               store_bin=store_bin, site=site, strict=strict, mlflow=mlflow,
                               mlflow_params=mlflow_params)
        kept = Path(os.fspath(description_dir)) / f"{wf.name}.untracked.yml"
        os.replace(out.with_name(out.stem + ".untracked.yml"), kept)
        text = out.read_text().replace(str(out.with_name(kept.name)), str(kept.resolve()))
        return _loader.loads(text), report


def _store_bin() -> str:
    """The ``store`` binary tracking jobs call: ``$STORE_BIN``, else ``store`` on PATH."""
    import shutil

    b = os.environ.get("STORE_BIN") or shutil.which("store")
    if not b:
        raise InvalidInput(
            "the tracking jobs of a local run call the store binary: put it on PATH or set "
            "STORE_BIN (cargo build --release builds target/release/store)")
    return b


def run(workflow: Union[PathLike, Any], jobs: Optional[int] = None,
        policy: Optional[str] = None, mlflow: bool = False, workdir: Optional[PathLike] = None,
        run_id: Optional[str] = None, track: bool = True, no_containers: bool = False,
        store_dir: Optional[PathLike] = None,
        mlflow_params: Optional[PathLike] = None) -> Dict[str, Any]:
    """Runs a workflow on this machine, as ``store run`` does: a path to its YAML, or a
    Pegasus ``Workflow`` (written beside ``workdir`` first). Returns ``{"run_id", "outcome",
    "report", "mlflow"}``; a failed job raises :class:`StoreError` naming it. ``jobs`` main
    jobs run at once (default 2); ``workdir`` defaults to ``runs/<run id>``.

    ``mlflow=True`` (``store run --mlflow``) links the run to MLflow: an experiment per
    workflow, a parent run, a child run per tracked job; user code gets
    ``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME`` and ``MLFLOW_RUN_ID`` (see
    :func:`mlflow_run_id`). Tags asking for MLflow (``job_auto``, ``job_custom``,
    ``full_track``) link it too when a tracking URI is configured. ``result["mlflow"]`` is
    then ``{"requests", "tracked_jobs", "pending", "parent_url", "pending_after_run"}``.
    ``mlflow_params`` (``--mlflow-params``): a JSON or YAML file whose keys the parent run
    gets as parameters; a job's own come from :func:`mlflow_job` ``params``.

    Ctrl-C stops waiting at once (``KeyboardInterrupt``); jobs already started get the
    terminal's SIGINT as well."""
    sd = _b.discover(None) if store_dir is None else os.fspath(store_dir)
    if not isinstance(workflow, (str, os.PathLike)):
        base = Path(os.fspath(workdir)) if workdir is not None else Path("runs")
        base.mkdir(parents=True, exist_ok=True)
        path = base / f"{workflow.name}.yml"
        workflow.write(str(path))
        workflow = path
    r = json.loads(_b.run(sd, os.fspath(workflow), _store_bin(),
                          None if workdir is None else os.fspath(workdir), run_id,
                          2 if jobs is None else jobs, policy, track, no_containers, None, [],
                          mlflow, None if mlflow_params is None else os.fspath(mlflow_params)))
    _warn_pending(r.get("mlflow"), r.get("run_id"))
    return r


# --- For job code ----------------------------------------------------------------------------


def current_run() -> Dict[str, str]:
    """The run and job the calling job records into: ``{"workflow", "run_id", "job_id"}``
    from ``PEGASUS_WF_LABEL``, ``PEGASUS_WF_UUID``, ``PEGASUS_DAG_JOB_ID``. Raises
    :class:`InvalidInput` outside a job."""
    return json.loads(_b.current_run())


def record(path: Union[PathLike, Sequence[PathLike]], role: str = "output",
           lfn: Optional[str] = None, store_dir: Optional[PathLike] = None,
           capture_env: bool = True) -> List[Dict[str, Any]]:
    """Records a file (or several) into the calling job's run with ``role`` (see
    :data:`ROLES`), from inside a Pegasus or ``store run`` job: ``store track ROLE:PATH``.
    Returns ``[{"path", "hash", ...}]``. Raises :class:`RunSealed` once the run is sealed."""
    paths = [os.fspath(path)] if isinstance(path, (str, os.PathLike)) else [os.fspath(p) for p in path]
    sd = _b.discover(None) if store_dir is None else os.fspath(store_dir)
    r = json.loads(_b.record(sd, paths, role, lfn, None, None, None, capture_env))
    return list(r.get("added", []))


def mlflow_run_id() -> Optional[str]:
    """The job's MLflow child run (for ``mlflow.start_run(run_id=...)``), when the run is
    linked to MLflow (``MLFLOW_RUN_ID`` handed to the job by augmentation); else None."""
    return os.environ.get("MLFLOW_RUN_ID") or None
