#!/usr/bin/env bash
# store_wms.write_tracked() on a 10,000-job Pegasus Workflow object (Pegasus's own
# serialisation included) beside `store augment` on the same file, and Pegasus's write alone.
# Needs the test venv with store_wms built (bash tests/run.sh, or maturin develop).
# usage: benches/python_augment.sh [JOBS] [PYTHON]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-10000}
PY=${2:-$REPO/.venv/tests/bin/python3}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
cd "$DIR"
"$PY" - "$N" "$REPO/target/release/store" <<'PYEOF'
import subprocess, sys, time
from Pegasus.api import File, Job, ReplicaCatalog, Transformation, TransformationCatalog, Workflow
import store_wms

n, store = int(sys.argv[1]), sys.argv[2]
t0 = time.perf_counter()
wf = Workflow(f"synth{n}")
step = Transformation("step", site="local", pfn="/bin/true", is_stageable=False)
wf.add_transformation_catalog(TransformationCatalog().add_transformations(step))
rc = ReplicaCatalog()
files = [File(f"in{i}") for i in range(10)]
for i, f in enumerate(files):
    rc.add_replica("local", f, f"/data/in{i}")
wf.add_replica_catalog(rc)
outs = []
for j in range(n):
    layer, k = divmod(j, 10)
    ins = [files[k]] if layer == 0 else [outs[(layer - 1) * 10 + k], outs[(layer - 1) * 10 + (k + 1) % 10]]
    out = File(f"f{j}")
    outs.append(out)
    wf.add_jobs(Job(step, _id=f"J{j}").add_args(*ins, out).add_inputs(*ins).add_outputs(out))
store_wms.track_workflow(wf, "basic")
t1 = time.perf_counter()
wf.write("plain.yml")
t2 = time.perf_counter()
store_wms.write_tracked(wf, "py.yml", run_id="3f2b8c1e-0d4a-4b6f-9e1a-7c5d2e8f9a01", store_dir="/nonexistent/.store", store_bin="store")
t3 = time.perf_counter()
subprocess.run([store, "augment", "py.untracked.yml", "-o", "cli.yml", "--run-id", "3f2b8c1e-0d4a-4b6f-9e1a-7c5d2e8f9a01", "--store-dir", "/nonexistent/.store", "--store-bin", "store", "-q"], check=True)
t4 = time.perf_counter()
same = open("py.yml", "rb").read() == open("cli.yml", "rb").read()
print(f"| jobs | build Workflow (API) | Pegasus write | store_wms.write_tracked (write + augment) | store augment (CLI, same file) | same bytes |")
print(f"|---|---|---|---|---|---|")
print(f"| {n} | {t1-t0:.2f} s | {t2-t1:.2f} s | {t3-t2:.2f} s | {t4-t3:.2f} s | {same} |")
PYEOF
