#!/usr/bin/env bash
# Push and pull against a loopback S3 server (moto), store vs DVC (dvc-s3), same data, same
# server: wall time, number of HTTP requests (counted from the server's request log) and the
# CPU seconds the server and the client spent (from /proc and getrusage).
# The `limit` tool is the server's floor for the same bytes, i.e. the pack files `store add`
# wrote, PUT as they are by curl, JOBS at a time (no signing, no hashing, no client work), and
# GET back into files (signed: moto refuses anonymous reads). A tool's distance to it is what
# the client itself costs.
#
# Usage: benches/remote.sh [DATA_DIR] [STORE_BIN] > result.md
#   DATA_DIR   default /tmp/benchdata (../shared/bench/gen-data.py); datasets: $SETS
#   STORE_BIN  default target/release/store
# Environment: SETS="small ml", TOOLS="store dvc limit", JOBS=8, SETTLE=2, BENCH_WORK=/tmp/bench-remote
# Needs: moto_server ('moto[s3]' flask flask-cors), dvc + dvc-s3, git, curl, GNU time.
set -euo pipefail
SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
DATA=${1:-/tmp/benchdata}
STORE=$(readlink -f "${2:-$REPO/target/release/store}")
SETS=${SETS:-"small ml"}
TOOLS=${TOOLS:-"store dvc limit"}
JOBS=${JOBS:-8}
WORK=${BENCH_WORK:-/tmp/bench-remote}
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

rm -rf "$WORK"; mkdir -p "$WORK"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
EP="http://127.0.0.1:$PORT"
moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do curl -fsS "$EP/" >/dev/null 2>&1 && break; sleep 0.2; done

requests() { grep -c 'HTTP/1.1"' "$WORK/moto.log" || true; }
# server_cpu: CPU seconds (user + system) moto has used so far
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$MOTO/stat"; }
bucket() { curl -fsS -X PUT "$EP/$1" >/dev/null; }
# timed CMD...: runs CMD, prints "seconds requests server-cpu client-cpu". Nothing is deleted
# until the end: on ext4 without a journal, creating files scans past inodes freed in the last
# 60 s (300 s more while their inode table is dirty: `recently_deleted`), which would bill one
# tool for the other's clean-up. Leave a minute between runs for the same reason.
timed() {
    local before after t0 t1 c0 c1
    sync; sleep "${SETTLE:-2}"
    before=$(requests); c0=$(server_cpu); t0=$(date +%s.%N)
    /usr/bin/time -f '%U %S' -o "$WORK/last.cpu" "$@" >"$WORK/last.out" 2>"$WORK/last.err" \
        || { log "FAILED: $*"; cat "$WORK/last.err" >&2; echo "n/a n/a n/a n/a"; return; }
    t1=$(date +%s.%N); sleep 0.3; after=$(requests); c1=$(server_cpu)
    echo "$(echo "$t1 - $t0" | bc) $((after - before)) $(echo "$c1 - $c0" | bc)" \
        "$(awk '{ print $1 + $2 }' "$WORK/last.cpu")"
}
# cells SECONDS REQUESTS SERVER CLIENT: one push or pull as table cells
cells() { printf '%s | %s | %s / %s' "$1" "$2" "$3" "$4"; }

echo "| data | files | tool | push s | push requests | push CPU s, server / client | pull s | pull requests | pull CPU s, server / client |"
echo "|---|---|---|---|---|---|---|---|---|"
for set in $SETS; do
    src="$DATA/$set"
    nfiles=$(find "$src" -type f | wc -l)
    for tool in $TOOLS; do
        log "$set: $tool"
        ws="$WORK/$set-$tool"; mkdir -p "$ws"; cp -al "$src" "$ws/data"
        b="$set-$tool"; bucket "$b"
        cd "$ws"
        if [ "$tool" = store ]; then
            "$STORE" init -q; "$STORE" add -q data >/dev/null
            "$STORE" remote add origin "s3://$b/store" --endpoint "$EP" --allow-http
            read -r pt pr ps pc < <(timed "$STORE" push -q --jobs "$JOBS")
            cd "$WORK"
            read -r lt lr ls lc < <(timed bash -c "'$STORE' clone -q 's3://$b/store' '$set-store-pull' --endpoint '$EP' --allow-http --jobs $JOBS && cd '$set-store-pull' && '$STORE' checkout -q \$('$STORE' ls --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0][\"hash\"])') --to data")
            diff -rq "$src" "$WORK/$set-store-pull/data" >/dev/null && ok=ok || ok=DIFF
        elif [ "$tool" = limit ]; then
            "$STORE" init -q; "$STORE" add -q data >/dev/null
            (cd .store && find packs -type f -name '*.pack' | sort) >"$WORK/$b.list"
            read -r pt pr ps pc < <(timed bash -c "cd .store && xargs -P $JOBS -I{} \
                curl -fsS -o /dev/null -T {} '$EP/$b/{}' <'$WORK/$b.list'")
            mkdir -p "$WORK/$set-limit-pull"; cd "$WORK/$set-limit-pull"
            read -r lt lr ls lc < <(timed bash -c "xargs -P $JOBS -I{} \
                curl -fsS --aws-sigv4 aws:amz:us-east-1:s3 --user bench:bench \
                --create-dirs -o {} '$EP/$b/{}' <'$WORK/$b.list'")
            (cd "$ws/.store" && sha256sum $(cat "$WORK/$b.list")) | sha256sum -c --quiet - \
                && ok=ok || ok=DIFF
        else
            git init -q; dvc init -q; dvc add -q data >/dev/null 2>&1
            dvc remote add -q -d s3 "s3://$b/dvc"; dvc remote modify s3 endpointurl "$EP"
            git add -A >/dev/null; git -c user.name=b -c user.email=b@b commit -qm data
            read -r pt pr ps pc < <(timed dvc push -q -j "$JOBS")
            cd "$WORK"; git clone -q "$ws" "$set-dvc-pull"; cd "$set-dvc-pull"
            dvc remote modify s3 endpointurl "$EP"
            read -r lt lr ls lc < <(timed dvc pull -q -j "$JOBS")
            diff -rq "$src" "$WORK/$set-dvc-pull/data" >/dev/null && ok=ok || ok=DIFF
        fi
        cd "$WORK"
        echo "| $set | $nfiles | $tool | $(cells "$pt" "$pr" "$ps" "$pc") | $(cells "$lt ($ok)" "$lr" "$ls" "$lc") |"
    done
done
echo
echo "Pull for store = clone (metadata) + checkout into a fresh workspace (the checkout downloads"
echo "the content, writing it into the files as it arrives, and keeps it in the store);"
echo "for DVC = dvc pull (fetch + checkout) in a fresh git clone; for limit = the local pack files"
echo "PUT and GET by curl. Requests counted in moto's log; server CPU from /proc, client CPU from"
echo "GNU time (user + system, the command and its children)."
