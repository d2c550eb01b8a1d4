#!/usr/bin/env python3
"""Generates workflow.yml with the real Pegasus Python API (pip install pegasus-wms.api):
galaxy classification with T hyper-parameter trials:

    fetch -> split -> preprocess_{train,val,test} (parallel) -> augment (training split)
          -> hpo_t (parallel) -> train -> inference (test split) -> evaluate

Tracking is plain Pegasus metadata: `store_track: full` on the workflow, `input_track` on the
configuration, `track_trans` on the transformations, `output_track` on the report. Paths are
relative to this directory (the `store run` local runner resolves them there; pass --absolute
for pegasus-plan).

usage: generate.py [--trials T] [--absolute] [-o workflow.yml]
"""
import argparse
import os

from Pegasus.api import File, Job, ReplicaCatalog, Transformation, TransformationCatalog, Workflow

p = argparse.ArgumentParser()
p.add_argument("--trials", type=int, default=3)
p.add_argument("--absolute", action="store_true")
p.add_argument("-o", default="workflow.yml")
a = p.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
path = (lambda rel: os.path.join(here, rel)) if a.absolute else (lambda rel: rel)

steps = ["fetch", "split", "preprocess", "augment", "hpo", "train", "inference", "evaluate"]
tc = TransformationCatalog()
tr = {}
for s in steps:
    tr[s] = Transformation(s, site="local", pfn=path("bin/galaxy.py"), is_stageable=False)
    tc.add_transformations(tr[s].add_metadata(track_trans="true"))
config = File("config.json").add_metadata(input_track="true")
rc = ReplicaCatalog().add_replica("local", config, path("config.json"))

wf = Workflow("galaxy-classification").add_metadata(store_track="full")
images, labels = File("galaxies.pgm"), File("labels.csv")
wf.add_jobs(Job(tr["fetch"], _id="fetch").add_args("fetch", config, images, labels)
            .add_inputs(config).add_outputs(images, labels, stage_out=False))
splits = {s: (File(f"{s}.pgm"), File(f"{s}.csv")) for s in ["train", "val", "test"]}
split_files = [f for pair in splits.values() for f in pair]
wf.add_jobs(Job(tr["split"], _id="split").add_args("split", config, images, labels, *split_files)
            .add_inputs(config, images, labels).add_outputs(*split_files, stage_out=False))
pre = {}
for s, (pgm, _) in splits.items():
    pre[s] = File(f"{s}_pre.pgm")
    wf.add_jobs(Job(tr["preprocess"], _id=f"preprocess_{s}").add_args("preprocess", pgm, pre[s])
                .add_inputs(pgm).add_outputs(pre[s], stage_out=False))
aug, aug_labels = File("train_aug.pgm"), File("train_aug.csv")
wf.add_jobs(Job(tr["augment"], _id="augment")
            .add_args("augment", config, pre["train"], splits["train"][1], aug, aug_labels)
            .add_inputs(config, pre["train"], splits["train"][1]).add_outputs(aug, aug_labels, stage_out=False))
trials = []
for t in range(a.trials):
    out = File(f"hpo_{t}.json")
    wf.add_jobs(Job(tr["hpo"], _id=f"hpo_{t}")
                .add_args("hpo", config, str(t), aug, aug_labels, pre["val"], splits["val"][1], out)
                .add_inputs(config, aug, aug_labels, pre["val"], splits["val"][1]).add_outputs(out, stage_out=False))
    trials.append(out)
model = File("model.json")
wf.add_jobs(Job(tr["train"], _id="train").add_args("train", config, aug, aug_labels, model, *trials)
            .add_inputs(config, aug, aug_labels, *trials).add_outputs(model, stage_out=False))
pred = File("predictions.csv")
wf.add_jobs(Job(tr["inference"], _id="inference").add_args("inference", model, pre["test"], pred)
            .add_inputs(model, pre["test"]).add_outputs(pred, stage_out=False))
report = File("report.json").add_metadata(output_track="true")
wf.add_jobs(Job(tr["evaluate"], _id="evaluate")
            .add_args("evaluate", config, pred, splits["test"][1], model, report)
            .add_inputs(config, pred, splits["test"][1], model).add_outputs(report))
wf.add_replica_catalog(rc).add_transformation_catalog(tc)
wf.write(os.path.join(here, a.o) if not os.path.isabs(a.o) else a.o)
