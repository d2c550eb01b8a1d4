#!/usr/bin/env python3
"""The jobs of the store_wms example (standard library only, deterministic): fit a line to
noisy points, one trial per slope prior, and keep the best.

    lab.py prepare CONFIG DATA          points y = 1.7 x + noise, seeded
    lab.py train CONFIG DATA T MODEL    trial T: gradient descent from slope prior T
    lab.py select BEST MODEL...         the model with the lowest error

A trial also writes a loss curve nobody declared to Pegasus and records it into the run with
store_wms.record (when the package is importable), and logs to its MLflow run when the run is
linked (store_wms.mlflow_run_id()).
"""
import json
import random
import sys


def prepare(config: str, data: str) -> None:
    c = json.load(open(config))
    rng = random.Random(c["seed"])
    with open(data, "w") as f:
        f.write("x,y\n")
        for i in range(c["points"]):
            x = i / c["points"]
            f.write(f"{x:.6f},{1.7 * x + 0.3 + rng.gauss(0, c['noise']):.6f}\n")


def train(config: str, data: str, trial: str, model: str) -> None:
    c = json.load(open(config))
    rows = [tuple(map(float, line.split(","))) for line in open(data).read().split("\n")[1:] if line]
    w, b, curve = c["slopes"][int(trial)], 0.0, []
    for _ in range(300):
        gw = sum(2 * (w * x + b - y) * x for x, y in rows) / len(rows)
        gb = sum(2 * (w * x + b - y) for x, y in rows) / len(rows)
        w, b = w - 0.5 * gw, b - 0.5 * gb
        curve.append(sum((w * x + b - y) ** 2 for x, y in rows) / len(rows))
    json.dump({"trial": int(trial), "w": round(w, 6), "b": round(b, 6),
               "mse": round(curve[-1], 8)}, open(model, "w"), indent=1)
    log = f"curve_{trial}.txt"
    open(log, "w").write("".join(f"{i} {m:.8f}\n" for i, m in enumerate(curve)))
    try:
        import store_wms
    except ImportError:  # the job still runs where the package is not installed
        return
    store_wms.record(log, role="output")
    if store_wms.mlflow_run_id():
        import mlflow

        with mlflow.start_run(run_id=store_wms.mlflow_run_id()):
            mlflow.log_metric("mse", curve[-1])


def select(best: str, *models: str) -> None:
    ms = [json.load(open(m)) for m in models]
    json.dump(dict(min(ms, key=lambda m: m["mse"]), of_trials=len(ms)), open(best, "w"), indent=1)


if __name__ == "__main__":
    {"prepare": prepare, "train": train, "select": select}[sys.argv[1]](*sys.argv[2:])
