#!/usr/bin/env python3
"""Generates workflow.yml with the real Pegasus Python API (pip install pegasus-wms.api):
federated learning with K clients and R rounds. Paths are relative to this directory (the
`store run` local runner resolves them there; pass --absolute for pegasus-plan).

With --subworkflows, each round is a sub-workflow of its own (a Pegasus `pegasusWorkflow` job
in the root, catalogued in the root's replica catalog): the root (workflow-sub.yml by default)
prepares the data, initializes the model, runs the rounds one after the other and writes the
report; <root stem>.round_<r>.yml beside it trains, aggregates and evaluates round r. The jobs
and their outputs are the same as in the flat workflow.

usage: generate.py [--clients K] [--rounds R] [--absolute] [--subworkflows] [-o FILE]
"""
import argparse
import os

from Pegasus.api import (File, Job, ReplicaCatalog, SubWorkflow, Transformation,
                         TransformationCatalog, Workflow)

p = argparse.ArgumentParser()
p.add_argument("--clients", type=int, default=3)
p.add_argument("--rounds", type=int, default=2)
p.add_argument("--absolute", action="store_true")
p.add_argument("--subworkflows", action="store_true")
p.add_argument("-o")
a = p.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
path = (lambda rel: os.path.join(here, rel)) if a.absolute else (lambda rel: rel)
out = a.o or ("workflow-sub.yml" if a.subworkflows else "workflow.yml")
out = out if os.path.isabs(out) else os.path.join(here, out)

steps = ["prepare", "init", "train", "aggregate", "evaluate", "report"]


def catalogs(names):
    """A transformation catalog of the steps `names`, and a replica catalog with the config.
    Pegasus does not pass catalogs down to sub-workflows: each workflow embeds its own."""
    tc = TransformationCatalog()
    tr = {}
    for s in names:
        tr[s] = Transformation(s, site="local", pfn=path("bin/fl.py"), is_stageable=False)
        tc.add_transformations(tr[s])
    config = File("config.json").add_metadata(input_track="true")
    rc = ReplicaCatalog().add_replica("local", config, path("config.json"))
    return tc, tr, rc, config


def round_jobs(wf, tr, config, data, model, r):
    """Round r: every client trains from `model`, the server aggregates, every client
    evaluates the new model. Returns the new model and the evaluations."""
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
    evals = []
    for c in range(a.clients):
        e = File(f"eval_{c}_round_{r}.json")
        wf.add_jobs(Job(tr["evaluate"], _id=f"evaluate_{c}_{r}").add_args("evaluate", data[c], nxt, e)
                    .add_inputs(data[c], nxt).add_outputs(e, stage_out=False))
        evals.append(e)
    return nxt, evals


tc, tr, rc, config = catalogs(steps)
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
    if not a.subworkflows:
        model, round_evals = round_jobs(wf, tr, config, data, model, r)
        evals += round_evals
        continue
    # The round as a workflow of its own, written beside the root and catalogued in it.
    child_tc, child_tr, child_rc, _ = catalogs(["train", "aggregate", "evaluate"])
    child = Workflow(f"federated-round-{r}")
    nxt, round_evals = round_jobs(child, child_tr, config, data, model, r)
    child.add_replica_catalog(child_rc).add_transformation_catalog(child_tc)
    name = f"{os.path.splitext(os.path.basename(out))[0]}.round_{r}.yml"
    child.write(os.path.join(os.path.dirname(out), name))
    rc.add_replica("local", name, path(name))
    wf.add_jobs(SubWorkflow(name, is_planned=False, _id=f"round_{r}")
                .add_inputs(config, *data, model)
                .add_outputs(nxt, *round_evals, stage_out=False))
    model = nxt
    evals += round_evals
report = File("report.json").add_metadata(output_track="true")
wf.add_jobs(Job(tr["report"], _id="report").add_args("report", report, model, *evals)
            .add_inputs(model, *evals).add_outputs(report))
wf.add_replica_catalog(rc).add_transformation_catalog(tc)
wf.write(out)
