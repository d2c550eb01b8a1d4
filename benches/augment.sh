#!/usr/bin/env bash
# Augmentation time of synthetic Pegasus 5 workflows of 10 to 100,000 jobs (layers of 10 jobs,
# each reading two files of the previous layer), with every file tagged by the `basic` policy;
# then, for each example under examples/, the generation time untracked (its generate.py with
# the Pegasus API) and tracked (generate.py, then `store augment` with the example's own
# `store_track` metadata), with job counts untracked and tracked beside 2n + 3.
# usage: benches/augment.sh [STORE_BIN]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
STORE_BIN=$(realpath "${1:-$REPO/target/release/store}")
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
echo "| jobs | YAML size | augment (s) | jobs added | 2n+3 |"
echo "|---|---|---|---|---|"
for n in 10 1000 10000 100000; do
  python3 - "$n" "$DIR/wf-$n.yml" <<'PY'
import sys
n, out = int(sys.argv[1]), sys.argv[2]
w = 10
with open(out, "w") as f:
    f.write("pegasus: '5.0.4'\nname: synth%d\nmetadata:\n  store_track: basic\n" % n)
    f.write("replicaCatalog:\n  replicas:\n")
    for i in range(w):
        f.write("  - lfn: in%d\n    pfns:\n    - site: local\n      pfn: /data/in%d\n" % (i, i))
    f.write("transformationCatalog:\n  transformations:\n  - name: step\n    sites:\n    - name: local\n      pfn: /bin/true\n      type: installed\n")
    f.write("jobs:\n")
    deps = []
    for j in range(n):
        layer, k = divmod(j, w)
        if layer == 0:
            ins = ["in%d" % k]
        else:
            ins = ["f%d" % ((layer - 1) * w + k), "f%d" % ((layer - 1) * w + (k + 1) % w)]
            deps += [((layer - 1) * w + k, j), ((layer - 1) * w + (k + 1) % w, j)]
        f.write("- type: job\n  name: step\n  id: J%d\n  arguments: [%s]\n  uses:\n" % (j, ", ".join(ins + ["f%d" % j])))
        for i in ins:
            f.write("  - lfn: %s\n    type: input\n" % i)
        f.write("  - lfn: f%d\n    type: output\n    stageOut: true\n    registerReplica: false\n" % j)
    by = {}
    for p, c in deps:
        by.setdefault(p, []).append(c)
    f.write("jobDependencies:\n")
    for p, cs in sorted(by.items()):
        f.write("- id: J%d\n  children: [%s]\n" % (p, ", ".join("J%d" % c for c in cs)))
PY
  size=$(du -h "$DIR/wf-$n.yml" | cut -f1)
  start=$(date +%s.%N)
  "$STORE_BIN" augment "$DIR/wf-$n.yml" -o "$DIR/out-$n.yml" --store-dir /nonexistent/.store --json > "$DIR/r.json"
  end=$(date +%s.%N)
  added=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["added_jobs"])' "$DIR/r.json")
  printf '| %d | %s | %.3f | %s | %d |\n' "$n" "$size" "$(echo "$end - $start" | bc)" "$added" $((2 * n + 3))
  # The same workflow with its catalogs as side files (replicas.yml, transformations.yml).
  if [ "$n" = 10000 ]; then
    mkdir -p "$DIR/side"
    python3 - "$DIR/wf-$n.yml" "$DIR/side" <<'PY'
import sys
text = open(sys.argv[1]).read()
head, rest = text.split("replicaCatalog:\n", 1)
catalogs, jobs = rest.split("jobs:\n", 1)
rc, tc = catalogs.split("transformationCatalog:\n", 1)
open(sys.argv[2] + "/workflow.yml", "w").write(head + "jobs:\n" + jobs)
import textwrap
open(sys.argv[2] + "/replicas.yml", "w").write("pegasus: '5.0'\n" + textwrap.dedent(rc))
open(sys.argv[2] + "/transformations.yml", "w").write("pegasus: '5.0'\n" + textwrap.dedent(tc))
PY
    start=$(date +%s.%N)
    "$STORE_BIN" augment "$DIR/side/workflow.yml" -o "$DIR/side/out.yml" --store-dir /nonexistent/.store --json > "$DIR/r.json"
    end=$(date +%s.%N)
    added=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert len(r["catalogs"]) == 2, r["catalogs"]; print(r["added_jobs"])' "$DIR/r.json")
    printf '| %d, side catalogs | %s | %.3f | %s | %d |\n' "$n" "$size" "$(echo "$end - $start" | bc)" "$added" $((2 * n + 3))
  fi
done

secs() { echo "$2 - $1" | bc; }
echo
echo "| example | generate, untracked (s) | augment (s) | generate, tracked (s) | jobs n | + tracking jobs | 2n+3 | jobs tracked |"
echo "|---|---|---|---|---|---|---|---|"
for ex in federated lung-segmentation galaxy-classification; do
  s=$(date +%s.%N)
  python3 "$REPO/examples/$ex/generate.py" -o "$DIR/$ex.yml"
  g=$(date +%s.%N)
  "$STORE_BIN" augment "$DIR/$ex.yml" -o "$DIR/$ex-tracked.yml" --store-dir /nonexistent/.store --json > "$DIR/r.json"
  e=$(date +%s.%N)
  read -r n added < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["main_jobs"], r["added_jobs"])' "$DIR/r.json")
  printf '| %s | %.3f | %.3f | %.3f | %d | %d | %d | %d |\n' "$ex" "$(secs "$s" "$g")" "$(secs "$g" "$e")" \
    "$(secs "$s" "$e")" "$n" "$added" $((2 * n + 3)) $((n + added))
done

echo
echo "| hostile input | size | result | time (s) |"
echo "|---|---|---|---|"
python3 - "$DIR" <<'PY'
import sys
d = sys.argv[1]
head = "pegasus: '5.0'\nname: x\njobs: []\n"
open(d + "/flow.yml", "w").write(head + "k: " + "[" * 400000 + "\n")
open(d + "/block.yml", "w").write(head + "".join(" " * i + "k:\n" for i in range(2000)))
bomb = head + "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
for i in range(1, 10):
    bomb += "a%d: &a%d [%s]\n" % (i, i, ", ".join(["*a%d" % (i - 1)] * 9))
open(d + "/bomb.yml", "w").write(bomb)
open(d + "/line.yml", "w").write(head + "k: " + "x" * (5 << 20) + "\n")
PY
for f in flow block bomb line; do
  size=$(du -h "$DIR/$f.yml" | cut -f1)
  start=$(date +%s.%N)
  if "$STORE_BIN" augment "$DIR/$f.yml" -o "$DIR/$f-out.yml" --store-dir /nonexistent/.store >/dev/null 2>"$DIR/err"; then r=accepted; else r="refused: $(head -c 80 "$DIR/err")"; fi
  end=$(date +%s.%N)
  printf '| %s | %s | %s | %.3f |\n' "$f" "$size" "$r" "$(echo "$end - $start" | bc)"
done
