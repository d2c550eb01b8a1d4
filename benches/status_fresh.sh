#!/usr/bin/env bash
# The first `status` right after an `add` of just-copied files, against the same status on
# files that were old when added (issue 19: the racy-timestamp rule should cost a stat, not a
# re-hash, for files that add just hashed).
#
# Usage: benches/status_fresh.sh [DATA_DIR] [STORE_BIN...] > result.md
#   DATA_DIR   default /tmp/benchdata (../shared/bench/gen-data.py); uses 25 of small's dirs
#              (5,000 files)
#   STORE_BIN  default target/release/store; several binaries are measured side by side
# Environment: REPS=5 (min and median reported), BENCH_WORK=/tmp/bench-work-status
# With valgrind installed, also the instruction count of the first status (callgrind).
set -euo pipefail
SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
DATA=${1:-/tmp/benchdata}
shift || true
BINS=("$@")
[ ${#BINS[@]} -gt 0 ] || BINS=("$REPO/target/release/store")
REPS=${REPS:-5}
WORK=${BENCH_WORK:-/tmp/bench-work-status}
dirs=$(ls "$DATA/small" | head -n 25)

secs() { # CMD...: wall seconds of CMD
    local t0 t1
    t0=$EPOCHREALTIME
    "$@" >/dev/null
    t1=$EPOCHREALTIME
    python3 -c "print('%.4f' % ($t1 - $t0))"
}

stats() { python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print('%.3f / %.3f' % (min(v), statistics.median(v)))" "$@"; }

echo "| store | first status after add, just-copied (min / median s) | same, files old when added | instructions, first status (just-copied) |"
echo "|---|---|---|---|"
for bin in "${BINS[@]}"; do
    fresh_t=() old_t=() ir=n/a
    for rep in $(seq "$REPS"); do
        for mode in fresh old; do
            rm -rf "$WORK"; mkdir -p "$WORK/data"; cd "$WORK"
            "$bin" init >/dev/null
            for d in $dirs; do cp -r "$DATA/small/$d" data/; done
            # "old": past the 2 s racy window of the previous versions
            [ "$mode" = old ] && sleep 2.5
            "$bin" add --quiet data >/dev/null
            t=$(secs "$bin" status)
            if [ "$mode" = fresh ]; then fresh_t+=("$t"); else old_t+=("$t"); fi
            if [ "$mode" = fresh ] && [ "$rep" = 1 ] && command -v valgrind >/dev/null; then
                # the callgrind run is not the first status any more: re-add the fresh copy
                rm -rf data .store; "$bin" init >/dev/null; mkdir data
                for d in $dirs; do cp -r "$DATA/small/$d" data/; done
                "$bin" add --quiet data >/dev/null
                ir=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" status 2>&1 \
                    | sed -n 's/.*Collected : //p')
            fi
        done
    done
    echo "| $bin | $(stats "${fresh_t[@]}") | $(stats "${old_t[@]}") | $ir |"
done
rm -rf "$WORK"
