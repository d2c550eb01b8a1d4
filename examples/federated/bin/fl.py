#!/usr/bin/env python3
"""A tiny, deterministic federated-learning workload (plain Python, seeded): each client fits
y = w*x + b on its own data with SGD; the server averages the clients' models each round.

usage: fl.py prepare CONFIG CLIENT OUT_CSV
       fl.py init CONFIG OUT_MODEL
       fl.py train CONFIG CLIENT DATA_CSV MODEL OUT_MODEL
       fl.py aggregate OUT_MODEL CLIENT_MODEL...
       fl.py evaluate DATA_CSV MODEL OUT_JSON
       fl.py report OUT_JSON MODEL EVAL_JSON...
"""
import json
import os
import random
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def save(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


def rows(path):
    with open(path) as f:
        next(f)
        return [tuple(map(float, line.split(","))) for line in f]


def mse(model, data):
    return sum((model["w"] * x + model["b"] - y) ** 2 for x, y in data) / len(data)


cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "prepare":
    cfg, client, out = load(args[0]), int(args[1]), args[2]
    rng = random.Random(cfg["seed"] * 1000 + client)
    with open(out, "w") as f:
        f.write("x,y\n")
        for _ in range(cfg["samples"]):
            x = rng.uniform(-1, 1) + 0.3 * client
            f.write(f"{x:.6f},{cfg['w'] * x + cfg['b'] + rng.gauss(0, 0.1):.6f}\n")
elif cmd == "init":
    save(args[1], {"w": 0.0, "b": 0.0, "round": 0})
elif cmd == "train":
    cfg, client, data, model, out = load(args[0]), int(args[1]), rows(args[2]), load(args[3]), args[4]
    rng = random.Random(cfg["seed"] * 7919 + client * 31 + model["round"])
    w, b = model["w"], model["b"]
    for _ in range(cfg["local_epochs"]):
        for x, y in rng.sample(data, len(data)):
            err = w * x + b - y
            w -= cfg["lr"] * err * x
            b -= cfg["lr"] * err
    save(out, {"w": round(w, 12), "b": round(b, 12), "round": model["round"], "samples": len(data)})
elif cmd == "aggregate":
    out, models = args[0], [load(p) for p in args[1:]]
    n = sum(m["samples"] for m in models)
    save(out, {
        "w": round(sum(m["w"] * m["samples"] for m in models) / n, 12),
        "b": round(sum(m["b"] * m["samples"] for m in models) / n, 12),
        "round": models[0]["round"] + 1,
    })
elif cmd == "evaluate":
    data, model = rows(args[0]), load(args[1])
    result = {"round": model["round"], "mse": round(mse(model, data), 12)}
    save(args[2], result)
    # Under `store run --mlflow` (or an augmented workflow with --mlflow) each job is handed its
    # own MLflow run; the standard client picks it up from MLFLOW_RUN_ID.
    if os.environ.get("MLFLOW_RUN_ID"):
        import mlflow

        mlflow.log_metric("mse", result["mse"], step=result["round"])
elif cmd == "report":
    out, model, evals = args[0], load(args[1]), [load(p) for p in args[2:]]
    save(out, {"final": model, "rounds": sorted({e["round"] for e in evals}),
               "mean_mse": round(sum(e["mse"] for e in evals) / len(evals), 12)})
else:
    sys.exit(f"unknown step {cmd}")
