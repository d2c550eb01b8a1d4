"""The Python package against real parts: the Pegasus API and loader, the `store` binary for
setup and comparison, a real S3 server (moto) for the clone, real files."""

import hashlib
import json
import os
import threading
import time
import uuid
from pathlib import Path

import pytest

import store_wms
from conftest import python_exe, two_jobs, write_exe

RUN_ID = "3f2b8c1e-0d4a-4b6f-9e1a-7c5d2e8f9a01"


def test_generator_tags_and_write_tracked_equal_the_cli_byte_for_byte(ws, tmp_path):
    wf, (fin, _fmid, fout), (tup, _trv) = two_jobs(ws.root)
    store_wms.track_input(fin)
    store_wms.track_output(fout)
    store_wms.track_transformation(tup)
    store_wms.track_workflow(wf, None)
    report = store_wms.write_tracked(wf, ws.root / "py.yml", run_id=RUN_ID,
                                     store_dir=ws.store, store_bin=ws.bin)
    assert report.run_id == RUN_ID
    assert report.transformations == ["upper"]
    assert report.workflow_tracked
    assert report.by_tag.get("input_track") == 1 and report.by_tag.get("output_track") == 1
    # The same command on the same description writes the same bytes.
    ws.run("augment", "py.untracked.yml", "-o", "cli.yml", "--run-id", RUN_ID,
           "--store-dir", str(ws.store), "--store-bin", ws.bin)
    assert (ws.root / "py.yml").read_bytes() == (ws.root / "cli.yml").read_bytes()
    # Tags are plain Pegasus metadata, and Pegasus's own loader reads the result.
    from Pegasus import workflow as loader

    tracked = loader.loads((ws.root / "py.yml").read_text())
    assert {"A", "B", "store_in_A", "store_out_B", "store_code", "store_workflow",
            "store_seal"} <= set(tracked.jobs)
    # augment() gives the same workflow as an object, and leaves wf alone.
    obj, r2 = store_wms.augment(wf, run_id=RUN_ID, store_dir=ws.store, store_bin=ws.bin,
                                description_dir=tmp_path)
    assert set(obj.jobs) == set(tracked.jobs)
    assert r2.added_jobs == report.added_jobs
    assert (tmp_path / "twojobs.untracked.yml").exists()
    assert set(wf.jobs) == {"A", "B"}


def test_job_code_records_into_its_run_under_store_run(ws):
    from Pegasus.api import File, Job, Transformation, TransformationCatalog, Workflow

    train = write_exe(ws.root / "bin" / "train.py", f"""#!{python_exe()}
import sys, store_wms
open(sys.argv[1], "w").write("model v1\\n")
added = store_wms.record(sys.argv[1], role="output")
print(store_wms.current_run()["job_id"], added[0]["hash"])
""")
    model = File("model.txt")
    tr = Transformation("train", site="local", pfn=str(train), is_stageable=False)
    wf = Workflow("jobcode").add_transformation_catalog(TransformationCatalog().add_transformations(tr))
    wf.add_jobs(Job(tr, _id="T").add_args(model).add_outputs(model))
    wf.write(str(ws.root / "wf.yml"))
    run_id = ws.run("run", "wf.yml", "--workdir", "w", "-q").stdout.strip()
    out = (ws.root / "w" / "logs" / "T.out").read_text().split()
    assert out[0] == "T"
    run = store_wms.Store.open(ws.root).show(run_id)
    [e] = run.files("output")
    assert (e.lfn, e.job_id, e.hash) == ("w/model.txt", "T", out[1]) or (e.job_id, e.hash) == ("T", out[1])
    assert e.size == len(b"model v1\n")
    assert run.counts.jobs == 1 and run.counts.files >= 1


@pytest.fixture()
def sealed(ws):
    """A sealed run of the two-job workflow (policy full), and its ID."""
    wf, _, _ = two_jobs(ws.root)
    wf.write(str(ws.root / "wf.yml"))
    run_id = ws.run("run", "wf.yml", "--policy", "full", "--workdir", "w", "-q").stdout.strip()
    return ws, run_id


def test_notebook_runs_show_metadata_checkout_open_file_lineage_diff(sealed, tmp_path):
    ws, run_id = sealed
    s = store_wms.Store.open(ws.root)
    [r] = s.runs()
    assert (r.run_id, r.workflow, r.status) == (run_id, "twojobs", "sealed")
    assert r.counts.jobs == 2 and r.created is not None and r.sealed is not None
    cli = json.loads(ws.run("runs", "--json").stdout)[0]
    assert (r.counts.files, r.counts.records, r.counts.bytes) == (cli["files"], cli["records"], cli["bytes"])
    run = s.show(run_id[:8])
    assert run.run_id == run_id
    assert {e.role for e in run.entries} >= {"input", "intermediate", "output", "code", "workflow", "environment"}
    # Table I rows, ready for pandas.DataFrame.
    rows = s.metadata()
    assert len(rows) == len(run.entries)
    assert {"workflow", "run_id", "job_id", "file_name", "lfn", "path", "size", "role",
            "version"} <= set(rows[0])
    # Checkout restores the bytes, verified; open_file streams one file.
    restored = s.checkout(run_id, tmp_path / "restored")
    assert restored.files >= 3 and restored.root_workflow
    out = [e for e in run.entries if e.lfn == "out.txt" and e.role == "output"][0]
    assert (tmp_path / "restored" / out.path).read_bytes() == b"OLLEH\nDLROW\n"
    with s.open_file(run_id, "out.txt") as f:
        assert f.read() == b"OLLEH\nDLROW\n"
        assert not f.writable()
    # Lineage by path and by hash.
    by_path = s.lineage(ws.root / "w" / "out.txt")
    assert any(x["run_id"] == run_id and x["direction"] == "produced" for x in by_path)
    assert s.lineage(out.hash) == by_path
    d = s.diff(run_id, run_id)
    assert json.dumps(d).count("out.txt") == 0


def test_a_clone_from_s3_reads_files_on_demand(sealed, tmp_path, monkeypatch):
    endpoint = os.environ.get("STORE_TEST_S3_ENDPOINT")
    if not endpoint:
        assert not os.environ.get("CI"), "CI must start an S3 server (moto)"
        pytest.skip("no S3 server (STORE_TEST_S3_ENDPOINT); bash tests/run.sh starts moto")
    ws, run_id = sealed
    bucket = f"pywms-{uuid.uuid4().hex[:12]}"
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")).read()
    env = {"AWS_ACCESS_KEY_ID": "AKIATESTKEY", "AWS_SECRET_ACCESS_KEY": "test-secret",
           "AWS_DEFAULT_REGION": "us-east-1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    url = f"s3://{bucket}/store"
    ws.run("remote", "add", "origin", url, "--endpoint", endpoint, "--allow-http", "--default",
           env=env)
    report = store_wms.Store.open(ws.root).push()
    assert report["packs_uploaded"] >= 1
    # Published as a browsable folder: each file's Bucket Storage URL in show and metadata.
    s = store_wms.Store.open(ws.root)
    pub = s.publish([run_id])
    [p] = pub["runs"]
    assert p["files"] >= 3 and p["uploaded"] + p["copied"] == p["files"]
    out = [e for e in s.show(run_id).entries if e.lfn == "out.txt" and e.role == "output"][0]
    assert out.bucket_url == f"s3://{bucket}/store/published/twojobs/{run_id}/outputs/out.txt"
    assert f"{endpoint}/{bucket}/store/published/twojobs/{run_id}/outputs/out.txt" in out.remote_urls
    assert out.drive_url is None
    rows = [r for r in s.metadata() if r["lfn"] == "out.txt" and r["role"] == "output"]
    assert rows and all(r["bucket_url"] == out.bucket_url for r in rows)
    assert s.publish([run_id])["runs"][0]["present"] == p["files"]
    clone = tmp_path / "clone"
    ws.run("clone", url, str(clone), "--endpoint", endpoint, "--allow-http", env=env)
    c = store_wms.Store.open(clone)
    assert [r.run_id for r in c.runs()] == [run_id]
    with c.open_file(run_id, "out.txt") as f:
        assert f.read() == b"OLLEH\nDLROW\n"


def test_every_exception_type_from_a_real_bad_input(sealed, tmp_path, monkeypatch):
    ws, run_id = sealed
    s = store_wms.Store.open(ws.root)
    import tempfile

    with tempfile.TemporaryDirectory() as nowhere, pytest.raises(store_wms.NotAStore):
        store_wms.Store.open(nowhere)
    with pytest.raises(store_wms.NotAStore):
        store_wms.Store.init(ws.store)
    with pytest.raises(store_wms.NotFound):
        s.show("no-such-run")
    with pytest.raises(store_wms.NotFound):
        s.open_file(run_id, "no-such-file")
    with pytest.raises(store_wms.InvalidInput):
        s.checkout(run_id, tmp_path / "x", roles=["bogus"])
    # A restored file changed locally is not overwritten without force.
    s.checkout(run_id, tmp_path / "r")
    changed = next((tmp_path / "r").rglob("out.txt"))
    changed.write_text("mine\n")
    with pytest.raises(store_wms.PathError):
        s.checkout(run_id, tmp_path / "r")
    assert changed.read_text() == "mine\n"
    # Records into a sealed run are refused.
    os.environ.update(PEGASUS_WF_LABEL="twojobs", PEGASUS_WF_UUID=run_id, PEGASUS_DAG_JOB_ID="Z")
    try:
        (ws.root / "late.txt").write_text("late\n")
        with pytest.raises(store_wms.RunSealed):
            store_wms.record(ws.root / "late.txt", store_dir=ws.store)
    finally:
        for k in ("PEGASUS_WF_LABEL", "PEGASUS_WF_UUID", "PEGASUS_DAG_JOB_ID"):
            os.environ.pop(k, None)
    with pytest.raises(store_wms.InvalidInput):
        store_wms.current_run()
    # A remote that cannot be used: S3 without credentials fails at once, sending nothing.
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    ws.run("remote", "add", "nocreds", "s3://bucket/prefix", "--endpoint", "http://127.0.0.1:9",
           "--allow-http")
    with pytest.raises(store_wms.RemoteError):
        s.push("nocreds")
    # Damaged packs: every object read is verified.
    for p in ws.store.rglob("*.pack"):
        b = bytearray(p.read_bytes())
        for i in range(64, len(b) - 64, 97):
            b[i] ^= 0xFF
        p.write_bytes(bytes(b))
    with pytest.raises(store_wms.Corrupt):
        s.open_file(run_id, "out.txt")
    # A store written by a newer version.
    cfg = ws.store / "config.json"
    c = json.loads(cfg.read_text())
    c["format_version"] = 999
    cfg.write_text(json.dumps(c))
    with pytest.raises(store_wms.NewerFormat):
        s.runs()
    # All are StoreError.
    assert issubclass(store_wms.RemoteError, store_wms.StoreError)


def test_the_gil_is_released_during_a_long_checkout(ws, tmp_path):
    data = os.urandom(1 << 20) * 96  # 96 MiB to restore (its chunks dedup in the store)
    (ws.root / "big.bin").write_bytes(data)
    ws.run("add", "-q", "--role", "input", "--wf", "w", "--run", "gil", "--job", "J",
           "--no-env", "big.bin")
    ws.run("seal", "gil")
    s = store_wms.Store.open(ws.root)
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    time.sleep(0.05)
    start = time.perf_counter()
    s.checkout("gil", tmp_path / "out")
    end = time.perf_counter()
    stop.set()
    t.join()
    restored = (tmp_path / "out" / "big.bin").read_bytes()
    assert hashlib.sha256(restored).digest() == hashlib.sha256(data).digest()
    # The counting thread kept running during the call (it could not with the GIL held).
    during = [x for x in ticks if start < x < end]
    assert end - start > 0.02, "too fast to tell"
    assert len(during) >= 5, (len(during), end - start)


def test_run_a_pegasus_workflow_object_and_rerun_it(ws, monkeypatch):
    monkeypatch.setenv("STORE_BIN", ws.bin)
    monkeypatch.chdir(ws.root)
    wf, _, _ = two_jobs(ws.root)
    store_wms.track_workflow(wf, "full")
    r = store_wms.run(wf, workdir=ws.root / "w")
    assert (ws.root / "w" / "out.txt").read_text() == "OLLEH\nDLROW\n"
    assert r["outcome"]["failed"] is None and r["report"]["main_jobs"] == 2
    s = store_wms.Store.open(ws.root)
    run = s.show(r["run_id"])
    assert run.sealed is not None and run.counts.jobs == 2
    rr = s.rerun(r["run_id"], workdir=ws.root / "again")
    assert rr["identical"] is True and rr["old_run"] == r["run_id"], rr
    assert all(j["code_recorded"] for j in rr["jobs"])
    # A job that fails is an error naming it.
    (ws.root / "bin" / "rev").write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    with pytest.raises(store_wms.StoreError, match="job B"):
        store_wms.run(ws.root / "w" / "twojobs.yml", workdir=ws.root / "w2")


def test_every_public_name_is_documented():
    import inspect
    import pydoc

    text = pydoc.render_doc(store_wms, renderer=pydoc.plaintext)
    assert "Ctrl-C" in text and "open_file" in text
    for name in store_wms.__all__:
        obj = getattr(store_wms, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert (obj.__doc__ or "").strip(), name
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            for m, f in vars(obj).items():
                if not m.startswith("_") and (inspect.isfunction(f) or isinstance(f, classmethod)):
                    assert (getattr(obj, m).__doc__ or "").strip(), f"{name}.{m}"
    native = store_wms._store_wms.FileStream
    assert native.__doc__ and native.read_at.__doc__
