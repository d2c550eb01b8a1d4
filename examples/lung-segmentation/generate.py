#!/usr/bin/env python3
"""Generates workflow.yml with the real Pegasus Python API (pip install pegasus-wms.api):
lung segmentation in S shards of chest scans (the last shard held out for testing, the one
before it for validation, the rest for training) and T hyper-parameter trials:

    acquire_k -> preprocess_k (training shards augmented) -> hpo_t (parallel) -> train
              -> inference (test shard) -> evaluate (Dice report)

Tracking is plain Pegasus metadata: `store_track: full` on the workflow, `input_track` on the
configuration, `track_trans` on the transformations, `output_track` on the report. Paths are
relative to this directory (the `store run` local runner resolves them there; pass --absolute
for pegasus-plan).

usage: generate.py [--shards S] [--trials T] [--absolute] [-o workflow.yml]
"""
import argparse
import os

from Pegasus.api import File, Job, ReplicaCatalog, Transformation, TransformationCatalog, Workflow

p = argparse.ArgumentParser()
p.add_argument("--shards", type=int, default=4)
p.add_argument("--trials", type=int, default=3)
p.add_argument("--absolute", action="store_true")
p.add_argument("-o", default="workflow.yml")
a = p.parse_args()
if a.shards < 3:
    p.error("--shards must be at least 3 (training, validation, test)")
here = os.path.dirname(os.path.abspath(__file__))
path = (lambda rel: os.path.join(here, rel)) if a.absolute else (lambda rel: rel)

steps = ["acquire", "preprocess", "hpo", "train", "inference", "evaluate"]
tc = TransformationCatalog()
tr = {}
for s in steps:
    tr[s] = Transformation(s, site="local", pfn=path("bin/lung.py"), is_stageable=False)
    tc.add_transformations(tr[s].add_metadata(track_trans="true"))
config = File("config.json").add_metadata(input_track="true")
rc = ReplicaCatalog().add_replica("local", config, path("config.json"))

wf = Workflow("lung-segmentation").add_metadata(store_track="full")
val, test = a.shards - 2, a.shards - 1
shards = []
for k in range(a.shards):
    scan, mask = File(f"scan_{k}.pgm"), File(f"mask_{k}.pgm")
    wf.add_jobs(Job(tr["acquire"], _id=f"acquire_{k}").add_args("acquire", config, str(k), scan, mask)
                .add_inputs(config).add_outputs(scan, mask, stage_out=False))
    pre_scan, pre_mask = File(f"pre_scan_{k}.pgm"), File(f"pre_mask_{k}.pgm")
    mode = "plain" if k >= val else "augment"
    wf.add_jobs(Job(tr["preprocess"], _id=f"preprocess_{k}")
                .add_args("preprocess", config, str(k), mode, scan, mask, pre_scan, pre_mask)
                .add_inputs(config, scan, mask).add_outputs(pre_scan, pre_mask, stage_out=False))
    shards.append((pre_scan, pre_mask))
train_files = [f for pair in shards[:val] for f in pair]
trials = []
for t in range(a.trials):
    out = File(f"hpo_{t}.json")
    wf.add_jobs(Job(tr["hpo"], _id=f"hpo_{t}")
                .add_args("hpo", config, str(t), out, *shards[val], *train_files)
                .add_inputs(config, *shards[val], *train_files).add_outputs(out, stage_out=False))
    trials.append(out)
# The final model learns from the validation shard too.
fit_files = [f for pair in shards[:test] for f in pair]
model = File("model.json")
wf.add_jobs(Job(tr["train"], _id="train").add_args("train", config, model, *trials, "--", *fit_files)
            .add_inputs(config, *trials, *fit_files).add_outputs(model, stage_out=False))
pred = File(f"pred_{test}.pgm")
wf.add_jobs(Job(tr["inference"], _id="inference").add_args("inference", model, shards[test][0], pred)
            .add_inputs(model, shards[test][0]).add_outputs(pred, stage_out=False))
report = File("report.json").add_metadata(output_track="true")
wf.add_jobs(Job(tr["evaluate"], _id="evaluate").add_args("evaluate", model, pred, shards[test][1], report)
            .add_inputs(model, pred, shards[test][1]).add_outputs(report))
wf.add_replica_catalog(rc).add_transformation_catalog(tc)
wf.write(os.path.join(here, a.o) if not os.path.isabs(a.o) else a.o)
