#!/usr/bin/env bash
# Makespan of the examples under `store run`, without tracking, with tags only and with full
# tracking, in one run (median of REPS), plus job counts beside 2n + 3.
# usage: benches/makespan.sh [STORE_BIN]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
STORE_BIN=$(cd "$REPO" && realpath "${1:-target/release/store}")
REPS=${REPS:-5}
WS=$(mktemp -d)
trap 'rm -rf "$WS"' EXIT
cd "$WS"
"$STORE_BIN" init -q
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| example | jobs n | + tracking jobs | 2n+3 | no tracking (s) | tags (s) | full (s) | overhead full |"
echo "|---|---|---|---|---|---|---|---|"
for ex in federated; do
  wf="$REPO/examples/$ex/workflow.yml"
  added=$("$STORE_BIN" augment "$wf" -o "$WS/aug.yml" --policy full --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["main_jobs"], r["added_jobs"])')
  read -r n a <<<"$added"
  declare -A t=()
  for mode in none tags full; do
    for i in $(seq "$REPS"); do
      case $mode in
        none) args=(--no-track) ;;
        tags) args=(--policy tags) ;;
        full) args=(--policy full) ;;
      esac
      s=$(date +%s.%N)
      "$STORE_BIN" run "$wf" --jobs 2 --workdir "$WS/w-$mode-$i" -q "${args[@]}" >/dev/null
      e=$(date +%s.%N)
      echo "$e - $s" | bc
    done | median > "$WS/$mode.txt"
    t[$mode]=$(cat "$WS/$mode.txt")
  done
  over=$(echo "scale=1; 100 * (${t[full]} - ${t[none]}) / ${t[none]}" | bc)
  printf '| %s | %d | %d | %d | %.2f | %.2f | %.2f | +%s%% |\n' "$ex" "$n" "$a" $((2 * n + 3)) "${t[none]}" "${t[tags]}" "${t[full]}" "$over"
done
