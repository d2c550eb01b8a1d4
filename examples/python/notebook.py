#!/usr/bin/env python3
"""The notebook side of the store_wms example, as a script with `# %%` cells (open it in
Jupyter or VS Code as a notebook, or run it): after `generate.py` ran, list the runs as a
DataFrame, look at one run's files, read the best model straight from the store, restore the
run and trace a file back to the job that produced it.

Needs store_wms and pandas; run it in the workspace (or pass its path).

usage: notebook.py [WORKSPACE]
"""
# %%
import json
import sys
from pathlib import Path

import pandas as pd

import store_wms

s = store_wms.Store.open(sys.argv[1] if len(sys.argv) > 1 else None)

# %% Runs -> DataFrame: one row per run.
runs = pd.DataFrame([{"run_id": r.run_id, "workflow": r.workflow, "status": r.status,
                      "created": r.created, "files": r.counts.files, "bytes": r.counts.bytes}
                     for r in s.runs()])
print(runs.to_string(index=False))

# %% Every file of every run (the tracking paper's Table I), ready to filter and group.
files = pd.DataFrame(s.metadata())
run_id = runs.run_id.iloc[0]
mine = files[files.run_id == run_id]
print(mine.groupby("role").size().to_string())

# %% One run's files, and the best model read from the store (streamed, every chunk verified).
run = s.show(run_id)
with s.open_file(run_id, "best.json") as f:
    best = json.load(f)
print(f"run {run_id[:8]}: {run.counts.jobs} jobs; best trial {best['trial']}: "
      f"slope {best['w']}, mse {best['mse']}")
curves = sorted(e.lfn for e in run.files("output") if e.lfn.startswith("curve_"))
print("loss curves recorded by the jobs themselves:", ", ".join(curves))

# %% Restore the run (verified; its workflow description rewritten to plan again) ...
restored = s.checkout(run_id, Path("restored") / run_id[:8], force=True)
print(f"restored {restored.files} files ({restored.bytes} bytes) under {restored.path}")
best_entry = next(e for e in run.entries if e.lfn == "best.json")
copy = Path(restored.path) / best_entry.path
assert json.loads(copy.read_text()) == best

# %% ... and ask where its content came from.
for rec in s.lineage(best_entry.hash):
    print(f"{rec['direction']:>9} by job {rec['job_id']} of run {rec['run_id'][:8]} as {rec['role']}")
