"""`mlflow=True` on augment() and run(), against a real MLflow tracking server (`bash
tests/run.sh` starts one and sets STORE_TEST_MLFLOW_URI): the runs exist once each, the jobs
are handed them, job code logs into its own, and the result equals the CLI's."""

import json
import urllib.request
import uuid

import pytest

import store_wms
from conftest import need, python_exe, two_jobs, write_exe


def api(uri: str, endpoint: str, body: dict) -> dict:
    """One REST call to the server (independent of the store's own client)."""
    req = urllib.request.Request(f"{uri}/api/2.0/mlflow/{endpoint}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=30).read())


def runs_of(uri: str, workflow: str, run_id: str) -> dict:
    """The MLflow runs tagged with store run `run_id`: {"parent": run, job_id: run, ...}."""
    exps = api(uri, "experiments/search", {"max_results": 1000})["experiments"]
    [exp] = [e["experiment_id"] for e in exps if e["name"] == workflow]
    found = api(uri, "runs/search", {"experiment_ids": [exp], "max_results": 1000,
                                     "filter": f"tags.`store.run_id` = '{run_id}'"})
    out: dict = {}
    for r in found.get("runs", []):
        tags = {t["key"]: t["value"] for t in r["data"].get("tags", [])}
        key = "parent" if tags["store.kind"] == "workflow" else tags["store.job_id"]
        assert key not in out, f"two MLflow runs for {key}"
        out[key] = r
    return out


@pytest.fixture()
def mlflow_uri(monkeypatch):
    uri = need("STORE_TEST_MLFLOW_URI", "an MLflow tracking server")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_augment_with_mlflow_links_each_job_like_the_cli(ws, mlflow_uri, tmp_path):
    wf, _, _ = two_jobs(ws.root)
    store_wms.track_workflow(wf, "full")
    rid = str(uuid.uuid4())
    report = store_wms.write_tracked(wf, ws.root / "py.yml", run_id=rid, store_dir=ws.store,
                                     store_bin=ws.bin, mlflow=True)
    assert report.run_id == rid
    assert report.mlflow is not None and report.mlflow["pending"] is None, report.mlflow
    assert report.mlflow["tracked_jobs"] == 2
    assert report.mlflow["parent_url"].startswith(mlflow_uri)
    runs = runs_of(mlflow_uri, "twojobs", rid)
    assert set(runs) == {"parent", "A", "B"}
    # The same command on the same description writes the same bytes (and finds the same
    # MLflow runs instead of creating others).
    ws.run("augment", "py.untracked.yml", "-o", "cli.yml", "--run-id", rid, "--mlflow",
           "--store-dir", str(ws.store), "--store-bin", ws.bin)
    assert (ws.root / "py.yml").read_bytes() == (ws.root / "cli.yml").read_bytes()
    assert set(runs_of(mlflow_uri, "twojobs", rid)) == {"parent", "A", "B"}
    # augment() in memory: each main job carries its own MLflow run, for its code.
    from Pegasus.api import Namespace

    tracked, r2 = store_wms.augment(wf, mlflow=True, run_id=rid, store_dir=ws.store,
                                    store_bin=ws.bin, description_dir=tmp_path)
    assert r2.mlflow is not None and r2.run_id == rid
    for job in ("A", "B"):
        env = tracked.get_job(job).profiles[Namespace.ENV.value]
        assert env["MLFLOW_RUN_ID"] == runs[job]["info"]["run_id"]
        assert env["MLFLOW_TRACKING_URI"] == mlflow_uri
    assert set(runs_of(mlflow_uri, "twojobs", rid)) == {"parent", "A", "B"}


def test_augment_with_mlflow_needs_a_tracking_uri(ws, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    wf, _, _ = two_jobs(ws.root)
    store_wms.track_workflow(wf, "full")
    with pytest.raises(store_wms.InvalidInput, match="tracking server"):
        store_wms.write_tracked(wf, ws.root / "py.yml", store_dir=ws.store, mlflow=True)


def test_run_with_mlflow_job_code_logs_into_its_child_run(ws, mlflow_uri, monkeypatch):
    from Pegasus.api import File, Job, Transformation, TransformationCatalog, Workflow

    monkeypatch.setenv("STORE_BIN", ws.bin)
    monkeypatch.chdir(ws.root)
    train = write_exe(ws.root / "bin" / "train.py", f"""#!{python_exe()}
import sys, mlflow, store_wms
with mlflow.start_run(run_id=store_wms.mlflow_run_id()):
    mlflow.log_metric("accuracy", 0.93)
open(sys.argv[1], "w").write("model\\n")
""")
    model = File("model.txt")
    tr = Transformation("train", site="local", pfn=str(train), is_stageable=False)
    wf = Workflow("mlwf").add_transformation_catalog(
        TransformationCatalog().add_transformations(tr))
    wf.add_jobs(Job(tr, _id="T").add_args(model).add_outputs(model))
    store_wms.track_output(model)
    store_wms.track_workflow(wf, "full")
    r = store_wms.run(wf, mlflow=True, workdir=ws.root / "w")
    assert r["outcome"]["failed"] is None
    linked = r["mlflow"]
    assert linked["pending"] is None and linked["pending_after_run"] is False, linked
    runs = runs_of(mlflow_uri, "mlwf", r["run_id"])
    assert set(runs) == {"parent", "T"}
    child = runs["T"]
    metrics = {m["key"]: m["value"] for m in child["data"].get("metrics", [])}
    assert metrics.get("accuracy") == pytest.approx(0.93)
    # The seal finished the runs; the store records each file's MLflow run, and MLflow the
    # store's hash.
    assert child["info"]["status"] == "FINISHED"
    run = store_wms.Store.open(ws.root).show(r["run_id"])
    [out] = [e for e in run.files("output") if e.job_id == "T"]
    assert out.mlflow_url and child["info"]["run_id"] in out.mlflow_url
    params = {p["key"]: p["value"] for p in child["data"].get("params", [])}
    assert out.hash in params.values(), params


def test_the_python_example_links_its_trials_to_mlflow(ws, mlflow_uri):
    import os
    import shutil
    import subprocess
    import sys

    from conftest import REPO

    shutil.copytree(REPO / "examples" / "python", ws.root / "ex")
    env = {k: v for k, v in os.environ.items() if k != "STORE_DIR"}
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env.get('PATH', '')}"
    env["STORE_BIN"] = ws.bin
    p = subprocess.run([sys.executable, "ex/generate.py", "--trials", "1", "--mlflow"],
                       cwd=ws.root, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    runs = runs_of(mlflow_uri, "python-example", p.stdout.strip())
    # mlflow_job() tags the trials: only they get MLflow runs, and each logged its loss.
    assert set(runs) == {"parent", "train_0"}
    metrics = {m["key"]: m["value"] for m in runs["train_0"]["data"].get("metrics", [])}
    best = json.loads((ws.root / "work" / "best.json").read_text())
    assert metrics["mse"] == pytest.approx(best["mse"], rel=1e-6)


def test_configuration_files_become_mlflow_parameters(ws, mlflow_uri, monkeypatch):
    from Pegasus.api import (File, Job, ReplicaCatalog, Transformation, TransformationCatalog,
                             Workflow)

    monkeypatch.setenv("STORE_BIN", ws.bin)
    monkeypatch.chdir(ws.root)
    train = write_exe(ws.root / "bin" / "train2.py", f"""#!{python_exe()}
import sys
open(sys.argv[2], "w").write(open(sys.argv[1]).read())
""")
    (ws.root / "cfg.json").write_text('{"lr": 0.01, "layers": {"hidden": 64}}')
    (ws.root / "hyper.yml").write_text("seed: 7\nsearch:\n  trials: 20\n")
    cfg, model = File("cfg.json"), File("model2.txt")
    tr = Transformation("train2", site="local", pfn=str(train), is_stageable=False)
    wf = Workflow("paramwf").add_transformation_catalog(
        TransformationCatalog().add_transformations(tr))
    wf.add_replica_catalog(ReplicaCatalog().add_replica("local", cfg, str(ws.root / "cfg.json")))
    job = Job(tr, _id="T").add_args(cfg, model).add_inputs(cfg).add_outputs(model)
    wf.add_jobs(store_wms.mlflow_job(job, params=cfg))
    store_wms.track_input(cfg)
    store_wms.track_output(model)
    store_wms.track_workflow(wf, "full")
    r = store_wms.run(wf, mlflow=True, workdir=ws.root / "wp", mlflow_params=ws.root / "hyper.yml")
    assert r["outcome"]["failed"] is None
    runs = runs_of(mlflow_uri, "paramwf", r["run_id"])
    params = lambda run: {p["key"]: p["value"] for p in run["data"].get("params", [])}
    parent, child = params(runs["parent"]), params(runs["T"])
    assert parent["seed"] == "7" and parent["search.trials"] == "20", parent
    assert child["lr"] == "0.01" and child["layers.hidden"] == "64", child
    # A file that is not a mapping is refused before anything runs, naming it.
    (ws.root / "bad.yml").write_text("[1, 2]\n")
    with pytest.raises(store_wms.InvalidInput, match="bad.yml"):
        store_wms.run(wf, mlflow=True, workdir=ws.root / "wp2", mlflow_params=ws.root / "bad.yml")
