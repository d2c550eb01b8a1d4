"""Fixtures: the `store` binary the Rust tests built, a fresh workspace, a workflow written
with the real Pegasus API."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def store_bin() -> str:
    """The `store` binary (`$STORE_BIN`, else target/release/store): used to set up and to
    compare, never by the package itself."""
    b = os.environ.get("STORE_BIN") or str(REPO / "target" / "release" / "store")
    assert os.access(b, os.X_OK), f"no store binary at {b}: build it (cargo build --release)"
    return b


class Ws:
    """A temporary workspace with a store."""

    def __init__(self, root: Path, store_bin: str) -> None:
        self.root = root
        self.bin = store_bin
        self.run("init")

    def run(self, *args: str, ok: bool = True, env=None) -> subprocess.CompletedProcess:
        e = {k: v for k, v in os.environ.items() if k != "STORE_DIR"}
        p = subprocess.run([self.bin, *args], cwd=self.root, capture_output=True, text=True,
                           env={**e, **(env or {})})
        if ok:
            assert p.returncode == 0, f"store {args}: {p.stderr}"
        return p

    @property
    def store(self) -> Path:
        return self.root / ".store"


@pytest.fixture()
def ws(tmp_path: Path, store_bin: str) -> Ws:
    return Ws(tmp_path, store_bin)


def write_exe(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def two_jobs(d: Path):
    """A two-job Pegasus workflow (A upper-cases in.txt into mid.txt, B reverses it into
    out.txt), written with the real Pegasus API, untagged."""
    from Pegasus.api import File, Job, ReplicaCatalog, Transformation, TransformationCatalog, Workflow

    up = write_exe(d / "bin" / "upper", '#!/bin/sh\ntr a-z A-Z < "$1" > "$2"\n')
    rv = write_exe(d / "bin" / "rev", '#!/bin/sh\nrev < "$1" > "$2"\n')
    (d / "in.txt").write_text("hello\nworld\n")
    fin, fmid, fout = File("in.txt"), File("mid.txt"), File("out.txt")
    tup = Transformation("upper", site="local", pfn=str(up), is_stageable=False)
    trv = Transformation("reverse", site="local", pfn=str(rv), is_stageable=False)
    wf = Workflow("twojobs")
    wf.add_replica_catalog(ReplicaCatalog().add_replica("local", fin, str(d / "in.txt")))
    wf.add_transformation_catalog(TransformationCatalog().add_transformations(tup, trv))
    wf.add_jobs(
        Job(tup, _id="A").add_args(fin, fmid).add_inputs(fin).add_outputs(fmid),
        Job(trv, _id="B").add_args(fmid, fout).add_inputs(fmid).add_outputs(fout),
    )
    return wf, (fin, fmid, fout), (tup, trv)


def python_exe() -> str:
    return sys.executable


def need(var: str, what: str) -> str:
    """The test server's address from `var`; outside CI a missing one skips the test, under
    CI (`CI=true`, as `bash tests/run.sh` runs) it fails it."""
    v = os.environ.get(var, "").rstrip("/")
    if not v:
        assert not os.environ.get("CI"), f"CI must start {what} ({var}): bash tests/run.sh does"
        pytest.skip(f"no {what} ({var}); bash tests/run.sh starts one")
    return v


class LockHolder:
    """Another process holding the store's lock (`.store/lock`, flock) as a running store
    process does: shared like any reader or writer, exclusive like `gc` or `reindex`."""

    def __init__(self, store: Path, exclusive: bool) -> None:
        mode = "LOCK_EX" if exclusive else "LOCK_SH"
        code = ("import fcntl, sys\n"
                f"f = open(sys.argv[1], 'a')\nfcntl.flock(f, fcntl.{mode})\n"
                "print('locked', flush=True)\nsys.stdin.read()\n")
        self.p = subprocess.Popen([sys.executable, "-c", code, str(store / "lock")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout is not None and self.p.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.p.poll() is None:
            assert self.p.stdin is not None
            self.p.stdin.close()
            self.p.wait(timeout=10)


@pytest.fixture()
def hold_lock():
    """`hold_lock(store, exclusive)`: a LockHolder, released at the end of the test."""
    held = []

    def hold(store: Path, exclusive: bool = False) -> LockHolder:
        h = LockHolder(store, exclusive)
        held.append(h)
        return h

    yield hold
    for h in held:
        h.release()


@pytest.fixture()
def tmpfs(tmp_path: Path):
    """A 1 MiB tmpfs mounted for the test (needs root; under CI a failure to mount fails)."""
    d = tmp_path / "tmpfs"
    d.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        assert not os.environ.get("CI"), f"cannot mount a tmpfs (needs root): {p.stderr}"
        pytest.skip(f"cannot mount a tmpfs (needs root): {p.stderr.strip()}")
    try:
        yield d
    finally:
        if subprocess.run(["umount", str(d)]).returncode != 0:
            subprocess.run(["umount", "-l", str(d)])


def add_sealed(ws: Ws, name: str, data: bytes, run: str) -> None:
    """Records `data` as file `name` (role input) into run `run` of workflow `w`, sealed."""
    (ws.root / name).write_bytes(data)
    ws.run("add", "-q", "--role", "input", "--wf", "w", "--run", run, "--job", "J", "--no-env",
           name)
    ws.run("seal", run)
