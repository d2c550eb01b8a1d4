#!/usr/bin/env bash
# The main job: builds `store`, runs a small three-job workflow whose jobs track their inputs,
# outputs, code and environment into one run (as Pegasus jobs would, through the PEGASUS_*
# variables), seals the run, then restores it by run ID into an empty directory and checks
# every byte.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
STORE="$PWD/target/release/store"
WS=$(mktemp -d)
trap 'rm -rf "$WS"' EXIT
cd "$WS"

mkdir -p data bin
cat > bin/preprocess.py <<'PY'
import random, sys
random.seed(int(sys.argv[2]))
with open(sys.argv[1], "w") as f:
    f.write("id,temperature,pressure\n")
    for i in range(50000):
        f.write(f"{i},{random.gauss(20, 5):.3f},{random.gauss(1013, 9):.2f}\n")
PY
cat > bin/analyze.py <<'PY'
import sys
rows = [l.split(",") for l in open(sys.argv[1]).read().splitlines()[1:]]
t = [float(r[1]) for r in rows]
open(sys.argv[2], "w").write(f"n={len(t)} mean_temperature={sum(t)/len(t):.4f}\n")
PY
printf 'pegasus: "5.0"\nname: climate\njobs: [preprocess, analyze]\n' > climate.yml

"$STORE" init
export PEGASUS_WF_LABEL=climate
export PEGASUS_WF_UUID="$(python3 -c 'import uuid; print(uuid.uuid4())')"

job() {  # job ID, then the command; PEGASUS_DAG_JOB_ID names the job, as Pegasus sets it
  local id=$1; shift
  PEGASUS_DAG_JOB_ID=$id "$@"
}
"$STORE" add -q --role workflow --job workflow climate.yml >/dev/null
job preprocess "$STORE" add -q --role code bin/preprocess.py >/dev/null
job preprocess python3 bin/preprocess.py data/measurements.csv 7
job preprocess "$STORE" add -q --role intermediate data/measurements.csv >/dev/null
job analyze "$STORE" add -q --role input data/measurements.csv >/dev/null
job analyze "$STORE" add -q --role code bin/analyze.py >/dev/null
job analyze python3 bin/analyze.py data/measurements.csv data/summary.txt
job analyze "$STORE" add -q --role output data/summary.txt >/dev/null

"$STORE" seal
"$STORE" runs
"$STORE" show "${PEGASUS_WF_UUID:0:8}"

# Restore the run by (a prefix of) its ID somewhere else and compare every byte.
"$STORE" checkout "${PEGASUS_WF_UUID:0:8}" --to "$WS/restored" --link copy
for f in climate.yml bin/preprocess.py bin/analyze.py data/measurements.csv data/summary.txt; do
  cmp "$f" "restored/$f"
done
ls restored/environment/
"$STORE" verify
echo "quickstart: run $PEGASUS_WF_UUID of workflow climate tracked, sealed and restored byte for byte"
