#!/usr/bin/env bash
# The main job: builds `store`, runs the federated-learning example workflow (a Pegasus 5
# workflow, examples/federated/) with full tracking on this machine, seals the run, restores it
# by run ID into an empty directory and checks every byte, then re-runs it from the store and
# checks the outputs are identical. It leaves its workspace at ./quickstart/ (or
# $QUICKSTART_DIR), reset on each run, to continue in.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
if [ ! -x target/release/store ]; then
  echo "building store (release): a first build takes about 5 minutes on 2 cores" >&2
fi
cargo build --release
STORE="$REPO/target/release/store"
WS=${QUICKSTART_DIR:-$REPO/quickstart}
rm -rf "$WS"
mkdir -p "$WS"
cd "$WS"

# The example, copied into the workspace: its code and inputs live beside the store.
cp -r "$REPO/examples/federated" federated
"$STORE" init
# A shared folder as the remote: each seal pushes the run there and publishes it as a folder
# people can browse (remote/published/<workflow>/<run id>/{inputs,outputs,code,...}).
"$STORE" remote add shared "$WS/remote" --publish
RUN=$("$STORE" run federated/workflow.yml --jobs 2 --workdir work)
echo "run $RUN"
"$STORE" runs
VIEW="remote/published/federated/$RUN"
cmp work/report.json "$VIEW/outputs/report.json"
echo "published: $VIEW ($(find "$VIEW" -type f | wc -l) files, metadata.json with every file's URL)"

# Restore the run by ID into an empty directory and compare every file it produced.
"$STORE" checkout "$RUN" --to restored --link copy
n=0
for f in work/*.json work/*.csv; do
  cmp "$f" "restored/$f"
  n=$((n + 1))
done
echo "restored $n workflow files byte for byte (restored/, plus its code and environment records)"

# Re-run it from what the store recorded (inputs, code, workflow): same outputs.
"$STORE" rerun "$RUN" --workdir rerun --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["identical"], r
print("rerun", r["new_run"], "reproduced", len(r["outputs"]), "outputs identically")'
"$STORE" verify
echo "quickstart: workflow run $RUN tracked, sealed, restored and re-run by run ID"
cat <<NEXT

The workspace stays at $WS. Continue there:
  cd $WS
  export PATH="$REPO/target/release:\$PATH"
  store runs                        # the two runs: the original and its rerun
  store show ${RUN:0:8}                 # each file: its role, who wrote it, who read it
  store report ${RUN:0:8} -o run.html   # the run as one page: its graph, files and jobs
  store diff ${RUN:0:8} <rerun id>      # the code ran from its restored copy, the workflow named it
  store checkout ${RUN:0:8} --to again  # restore it anywhere; plan it again with store run
  ls remote/published/federated/    # each run as a folder people browse (store publish)
NEXT
