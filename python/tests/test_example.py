"""examples/python: the generator that tracks with store_wms runs its workflow here, and the
notebook script reads the run back (runs -> DataFrame, open_file, checkout, lineage)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def py(ws, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("STORE_DIR", "MLFLOW_TRACKING_URI")}
    # The jobs are `#!/usr/bin/env python3` scripts: this interpreter (with store_wms) first.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["STORE_BIN"] = ws.bin
    p = subprocess.run([sys.executable, *args], cwd=ws.root, env=env, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_the_python_example_generates_runs_and_reads_back(ws):
    shutil.copytree(REPO / "examples" / "python", ws.root / "ex")
    run_id = py(ws, "ex/generate.py", "--trials", "2").strip()
    shown = json.loads(ws.run("show", run_id, "--json").stdout)
    lfns = {e["lfn"] for e in shown["entries"]}
    # Tagged by store_wms: the input, the output, the code, and (policy full) the rest; the
    # loss curves were recorded by the job code itself.
    assert {"config.json", "data.csv", "model_0.json", "model_1.json", "best.json",
            "curve_0.txt", "curve_1.txt"} <= lfns, lfns
    assert any(e["role"] == "code" for e in shown["entries"])
    out = py(ws, "ex/notebook.py")
    best = json.loads((ws.root / "work" / "best.json").read_text())
    assert f"best trial {best['trial']}: slope {best['w']}" in out, out
    assert "curve_0.txt, curve_1.txt" in out
    assert "produced by job select" in out
    restored = ws.root / "restored" / run_id[:8]
    assert (restored / "work" / "best.json").read_bytes() == (ws.root / "work" / "best.json").read_bytes()
    # --write: the augmented workflow for pegasus-plan, loaded by Pegasus's own loader.
    py(ws, "ex/generate.py", "--write", "tracked.yml")
    from Pegasus import workflow as loader

    wf = loader.loads((ws.root / "tracked.yml").read_text())
    assert {"prepare", "train_0", "train_2", "select", "store_seal"} <= set(wf.jobs)
