#!/usr/bin/env python3
"""A workflow generator that tracks with the store_wms package instead of metadata by hand:
it builds a Pegasus workflow with the Pegasus Python API, tags it with store_wms, and either
runs it here (store_wms.run, the default) or writes it augmented for pegasus-plan
(store_wms.write_tracked):

    prepare -> train_0 .. train_{T-1} (parallel) -> select

Needs pegasus-wms.api and store_wms (`maturin develop -m python/Cargo.toml`); run it in a
workspace (`store init`). Its tracking jobs call the store binary: `store` on PATH, or
$STORE_BIN. Paths in the workflow are absolute (this directory's).

usage: generate.py [--trials T] [--mlflow] [--write FILE]
"""
import argparse
import os

from Pegasus.api import File, Job, ReplicaCatalog, Transformation, TransformationCatalog, Workflow

import store_wms

p = argparse.ArgumentParser()
p.add_argument("--trials", type=int, default=3)
p.add_argument("--mlflow", action="store_true", help="link the run to MLflow (MLFLOW_TRACKING_URI)")
p.add_argument("--write", metavar="FILE", help="write the tracked workflow instead of running it")
a = p.parse_args()
here = os.path.dirname(os.path.abspath(__file__))

lab = Transformation("lab", site="local", pfn=os.path.join(here, "bin", "lab.py"),
                     is_stageable=False)
config = File("config.json")
wf = Workflow("python-example")
wf.add_replica_catalog(ReplicaCatalog().add_replica("local", config, os.path.join(here, "config.json")))
wf.add_transformation_catalog(TransformationCatalog().add_transformations(lab))
data = File("data.csv")
wf.add_jobs(Job(lab, _id="prepare").add_args("prepare", config, data)
            .add_inputs(config).add_outputs(data, stage_out=False))
models = []
for t in range(a.trials):
    m = File(f"model_{t}.json")
    job = Job(lab, _id=f"train_{t}").add_args("train", config, data, str(t), m)
    wf.add_jobs(job.add_inputs(config, data).add_outputs(m, stage_out=False))
    store_wms.mlflow_job(job)          # an MLflow run of its own, when the run is linked
    models.append(m)
best = File("best.json")
wf.add_jobs(Job(lab, _id="select").add_args("select", best, *models)
            .add_inputs(*models).add_outputs(best))

# Tracking: what a generator author says, with no YAML and no metadata keys by hand.
store_wms.track_input(config)          # recorded before the jobs that read it
store_wms.track_output(best)           # recorded after the job that writes it
store_wms.track_transformation(lab)    # the job code, restored by a rerun
store_wms.track_workflow(wf, "full")   # and every other file of every job

if a.write:
    report = store_wms.write_tracked(wf, a.write, mlflow=a.mlflow)
    print(f"{a.write}: {report.main_jobs} jobs, {report.added_jobs} tracking jobs added")
else:
    r = store_wms.run(wf, jobs=2, mlflow=a.mlflow, workdir="work")
    print(r["run_id"])
