#!/usr/bin/env bash
# Makespan of the examples under `store run`, without tracking, with tags only and with full
# tracking, in one run (median of REPS; the three modes take turns, after one untimed warm-up
# run, so a change in machine load affects them alike), plus job counts beside 2n + 3.
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
echo "| example | jobs n | + tracking jobs | 2n+3 | no tracking (s) | tags (s) | full (s) | full / none | overhead full |"
echo "|---|---|---|---|---|---|---|---|---|"
for ex in federated lung-segmentation galaxy-classification; do
  wf="$REPO/examples/$ex/workflow.yml"
  added=$("$STORE_BIN" augment "$wf" -o "$WS/aug.yml" --policy full --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["main_jobs"], r["added_jobs"])')
  read -r n a <<<"$added"
  "$STORE_BIN" run "$wf" --jobs 2 --workdir "$WS/w-$ex-warm" -q --policy full >/dev/null
  rm -f "$WS"/none.txt "$WS"/tags.txt "$WS"/full.txt
  for i in $(seq "$REPS"); do
    for mode in none tags full; do
      case $mode in
        none) args=(--no-track) ;;
        tags) args=(--policy tags) ;;
        full) args=(--policy full) ;;
      esac
      s=$(date +%s.%N)
      "$STORE_BIN" run "$wf" --jobs 2 --workdir "$WS/w-$ex-$mode-$i" -q "${args[@]}" >/dev/null
      e=$(date +%s.%N)
      echo "$e - $s" | bc >> "$WS/$mode.txt"
    done
  done
  declare -A t=()
  for mode in none tags full; do
    t[$mode]=$(median < "$WS/$mode.txt")
  done
  ratio=$(echo "scale=3; ${t[full]} / ${t[none]}" | bc)
  over=$(echo "scale=3; 100 * (${t[full]} - ${t[none]}) / ${t[none]}" | bc)
  printf '| %s | %d | %d | %d | %.2f | %.2f | %.2f | %.2f | %+.1f%% |\n' "$ex" "$n" "$a" $((2 * n + 3)) \
    "${t[none]}" "${t[tags]}" "${t[full]}" "$ratio" "$over"
done
