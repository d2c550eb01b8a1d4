#!/usr/bin/env python3
"""Generates workflow.yml with the real Pegasus Python API (pip install pegasus-wms.api):
federated learning with K clients and R rounds. Paths are relative to this directory (the
`store run` local runner resolves them there; pass --absolute for pegasus-plan).

usage: generate.py [--clients K] [--rounds R] [--absolute] [-o workflow.yml]
"""
import argparse
import os

from Pegasus.api import File, Job, ReplicaCatalog, Transformation, TransformationCatalog, Workflow

p = argparse.ArgumentParser()
p.add_argument("--clients", type=int, default=3)
p.add_argument("--rounds", type=int, default=2)
p.add_argument("--absolute", action="store_true")
p.add_argument("-o", default="workflow.yml")
a = p.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
path = (lambda rel: os.path.join(here, rel)) if a.absolute else (lambda rel: rel)

steps = ["prepare", "init", "train", "aggregate", "evaluate", "report"]
tc = TransformationCatalog()
tr = {}
for s in steps:
    tr[s] = Transformation(s, site="local", pfn=path("bin/fl.py"), is_stageable=False)
    tc.add_transformations(tr[s])
config = File("config.json").add_metadata(input_track="true")
rc = ReplicaCatalog().add_replica("local", config, path("config.json"))

wf = Workflow("federated").add_metadata(store_track="full")
data = []
for c in range(a.clients):
    d = File(f"data_{c}.csv")
    wf.add_jobs(Job(tr["prepare"], _id=f"prepare_{c}").add_args("prepare", config, str(c), d)
                .add_inputs(config).add_outputs(d, stage_out=False))
    data.append(d)
model = File("model_0.json")
wf.add_jobs(Job(tr["init"], _id="init").add_args("init", config, model).add_inputs(config)
            .add_outputs(model, stage_out=False))
evals = []
for r in range(a.rounds):
    client_models = []
    for c in range(a.clients):
        m = File(f"client_{c}_round_{r}.json")
        wf.add_jobs(Job(tr["train"], _id=f"train_{c}_{r}")
                    .add_args("train", config, str(c), data[c], model, m)
                    .add_inputs(config, data[c], model).add_outputs(m, stage_out=False))
        client_models.append(m)
    nxt = File(f"model_{r + 1}.json")
    wf.add_jobs(Job(tr["aggregate"], _id=f"aggregate_{r}").add_args("aggregate", nxt, *client_models)
                .add_inputs(*client_models).add_outputs(nxt, stage_out=False))
    for c in range(a.clients):
        e = File(f"eval_{c}_round_{r}.json")
        wf.add_jobs(Job(tr["evaluate"], _id=f"evaluate_{c}_{r}").add_args("evaluate", data[c], nxt, e)
                    .add_inputs(data[c], nxt).add_outputs(e, stage_out=False))
        evals.append(e)
    model = nxt
report = File("report.json").add_metadata(output_track="true")
wf.add_jobs(Job(tr["report"], _id="report").add_args("report", report, model, *evals)
            .add_inputs(model, *evals).add_outputs(report))
wf.add_replica_catalog(rc).add_transformation_catalog(tc)
wf.write(os.path.join(here, a.o) if not os.path.isabs(a.o) else a.o)
