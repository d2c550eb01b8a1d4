#!/usr/bin/env bash
# Clone cost of a remote written by many pushes, with and without merged segments (spec
# 19.3.1): N pushes (one small tracked file version each, like one run per push) to a loopback
# S3 server (moto), then `store clone` of the remote: wall time and HTTP requests (counted from
# the server's request log, and as the store counts them).
#
# Usage: benches/segments.sh [STORE_BIN] > result.md     Environment: N=64, BENCH_WORK
# Needs: moto_server ('moto[s3]' flask flask-cors).
set -euo pipefail
SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
STORE=$(readlink -f "${1:-$REPO/target/release/store}")
N=${N:-64}
WORK=${BENCH_WORK:-/tmp/bench-segments}
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1
rm -rf "$WORK"; mkdir -p "$WORK"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
EP="http://127.0.0.1:$PORT"
moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS "$EP/" >/dev/null 2>&1 && break; sleep 0.2; done
requests() { grep -c 'HTTP/1.1"' "$WORK/moto.log" || true; }

echo "| segments | merging | merged segments | clone s | clone requests (server) | clone requests (store) |"
echo "|---|---|---|---|---|---|"
for merge in 0 16; do
    b="seg-$merge"; curl -fsS -X PUT "$EP/$b" >/dev/null
    ws="$WORK/ws-$merge"; mkdir -p "$ws"; cd "$ws"
    "$STORE" init -q
    "$STORE" remote add origin "s3://$b" --endpoint "$EP" --allow-http
    for i in $(seq 1 "$N"); do
        head -c 20000 /dev/urandom > "f$i.bin"
        "$STORE" add -q "f$i.bin" >/dev/null
        STORE_MERGE_SEGMENTS=$merge "$STORE" push -q
    done
    nm=$(curl -fsS "$EP/$b?list-type=2&prefix=merged/" | { grep -o '<Key>' || true; } | wc -l)
    cd "$WORK"
    before=$(requests); t0=$(date +%s.%N)
    "$STORE" clone "s3://$b" "clone-$merge" --endpoint "$EP" --allow-http --json > "clone-$merge.json"
    t1=$(date +%s.%N); sleep 0.3; after=$(requests)
    own=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "clone-$merge.json")
    [ "$("$STORE" --store "clone-$merge/.store" ls --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = "$N" ] || { echo "clone-$merge lacks paths" >&2; exit 1; }
    echo "| $N | $([ "$merge" = 0 ] && echo off || echo "every $merge") | $nm | $(echo "$t1 - $t0" | bc) | $((after - before)) | $own |"
done
