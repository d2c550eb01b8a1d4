#!/usr/bin/env bash
# Side-by-side benchmark: store vs DVC, restic, borg (default and 64 KiB chunks),
# with b3sum / cp / zstd / find as "limit" baselines.
#
# Usage: benches/compare.sh [DATA_DIR] [STORE_BIN] > result.md
#   DATA_DIR   default /tmp/benchdata; generated with ../shared/bench/gen-data.py
#              (--scale ${SCALE:-1}) when missing
#   STORE_BIN  default target/release/store (relative to the repository)
# Environment:
#   REPS=3          repetitions of every measurement (median and min are reported)
#   BENCH_WORK=/tmp/bench-work   scratch dir for workspaces (emptied at start)
#   TOOLS="store dvc restic borg borg64k limit"   columns to run
#   ML=1            also add the ml dataset (time + stored size)
#   TREE=DIR        also add DIR, a real directory tree (e.g. a project with its venv): time,
#                   and stored size twice: the durable part (store's packs, restic's or borg's
#                   repository, DVC's cache) and everything (with store's index, restic's and
#                   borg's local caches)
#   VERIFY=1        compare every checkout/restore with the source data (rep 1 only, untimed)
#   CHUNK_SWEEP=0   1: store chunk-size sweep (32/64/128 KiB avg) on big -> big-v2
#   TIMEOUT=1800    seconds before a timed command is killed (and reported as failed)
#   SETTLE=5        seconds to wait after each (untimed) delete
# The tool order rotates from one repetition to the next, so no tool always runs right
# after the same neighbour's deletes.
#
# The table goes to stdout, progress to stderr. Every measurement runs in a fresh
# workspace; setup (hardlinking the data in, warming the page cache) and deletes happen
# outside the timed part (the disk is mounted with `discard`, so deletes are slow).
# A missing or failing tool shows as "n/a" and the run goes on.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
export LC_ALL=C

# ---------------------------------------------------------------- helpers
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# record OP TOOL VALUE: append one measurement
record() { printf '%s\n' "$3" >>"$RES/$1@$2"; }

# note TEXT: free-form line printed under the table
note() { printf '%s\n' "$*" >>"$RES/notes"; }

have_time=0
[ -x /usr/bin/time ] && have_time=1

# run_timed OP TOOL CMD...: run CMD in the current dir, record wall seconds as OP and
# peak RSS (KiB) as OP_rss. stdout/stderr go to $RES/last.{out,err}. Sets TIMED_OK.
run_timed() {
    local op=$1 tool=$2 t0 t1 rc=0
    shift 2
    sync
    t0=$EPOCHREALTIME
    if [ "$have_time" = 1 ]; then
        timeout -k 10 "$TIMEOUT" /usr/bin/time -f '%M' -o "$RES/last.rss" "$@" \
            >"$RES/last.out" 2>"$RES/last.err" || rc=$?
    else
        timeout -k 10 "$TIMEOUT" "$@" >"$RES/last.out" 2>"$RES/last.err" || rc=$?
    fi
    t1=$EPOCHREALTIME
    if [ "$rc" != 0 ]; then
        TIMED_OK=0
        log "FAILED ($rc): $tool $op: $*"
        tail -n 5 "$RES/last.err" | sed 's/^/    /' >&2
        [ "$rc" = 124 ] && echo "timed out after $TIMEOUT s" >>"$RES/last.err"
        note "$tool: \`$op\` failed (exit $rc): $(tail -n 1 "$RES/last.err" | cut -c1-160)"
        return 0
    fi
    TIMED_OK=1
    record "$op" "$tool" "$(python3 -c "print('%.4f' % ($t1 - $t0))")"
    if [ "$have_time" = 1 ]; then
        record "${op}_rss" "$tool" "$(tail -n 1 "$RES/last.rss")"
    fi
    log "  $tool $op: $(tail -n 1 "$RES/$op@$tool") s"
}

bytes_of() { du -sb "$1" | cut -f1; }

# fresh DIR: make an empty dir (the previous one is removed, untimed)
fresh() { rm -rf "$1"; mkdir -p "$1"; }

# drop DIR: delete outside timing and let the discards settle (deleting tens of
# thousands of files on this disk slows the writes that follow for a while)
drop() { cd "$WORK"; rm -rf "$1"; sync; sleep "${SETTLE:-5}"; }

# warm PATH: read everything once so every tool starts with a warm page cache
warm() { find "$1" -type f -exec cat {} + >/dev/null; }

# link_data SRC DST: hardlink the data (never written to: updates unlink first)
link_data() { cp -al "$1" "$2" 2>/dev/null || cp -a --reflink=auto "$1" "$2"; }

# sync_tree SRC DST: make DST equal to SRC in place. Files whose content differs are
# replaced by a new inode (never written through a hardlink); unchanged files are left
# alone (same inode, mtime, ctime); extra files/dirs are deleted.
sync_tree() {
    python3 - "$1" "$2" <<'PY'
import filecmp, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
for root, dirs, files in os.walk(src):
    rel = os.path.relpath(root, src)
    droot = os.path.normpath(os.path.join(dst, rel))
    os.makedirs(droot, exist_ok=True)
    for f in files:
        s, d = os.path.join(root, f), os.path.join(droot, f)
        if os.path.exists(d) and filecmp.cmp(s, d, shallow=False):
            continue
        if os.path.lexists(d):
            os.unlink(d)
        shutil.copy2(s, d)
for root, dirs, files in os.walk(dst, topdown=False):
    rel = os.path.relpath(root, dst)
    sroot = os.path.normpath(os.path.join(src, rel))
    for f in files:
        if not os.path.exists(os.path.join(sroot, f)):
            os.unlink(os.path.join(root, f))
    if not os.path.isdir(sroot):
        os.rmdir(root)
PY
}

# same_tree SRC DST: DST has the same files as SRC; while it does not and DST holds a
# single directory, descend (tools differ in how they nest a restored path)
same_tree() {
    local src=$1 dst=$2 n
    for _ in 1 2 3 4 5 6 7 8; do
        diff -rq "$src" "$dst" >/dev/null 2>&1 && return 0
        n=$(find "$dst" -mindepth 1 -maxdepth 1 | wc -l)
        [ "$n" = 1 ] && [ -d "$(find "$dst" -mindepth 1 -maxdepth 1)" ] || return 1
        dst=$(find "$dst" -mindepth 1 -maxdepth 1)
    done
    return 1
}

# verify TOOL WHAT SRC DST
verify() {
    [ "${VERIFY:-1}" = 1 ] && [ "$REP" = 1 ] || return 0
    if same_tree "$3" "$4"; then
        note "$1: $2 output verified identical to $(basename "$3")"
    else
        note "$1: **$2 output DIFFERS from $(basename "$3")**"
        log "VERIFY FAILED: $1 $2"
    fi
}

# store_hash PATH: hash of a top-level path after `store add` ($RES/last.out, or a
# second untimed `store add --json PATH`, which must be a no-op on unchanged data)
parse_hash() {
    python3 - "$1" "$2" <<'PY'
import json, os, re, sys
text = open(sys.argv[1]).read()
want = os.path.normpath(sys.argv[2])
found = []
def walk(o):
    if isinstance(o, dict):
        h = o.get("hash") or o.get("id")
        if isinstance(h, str):
            found.append((o.get("path"), h))
        for v in o.values():
            if isinstance(v, (dict, list)):
                walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
try:
    walk(json.loads(text))
except ValueError:
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            walk(json.loads(line))
            continue
        except ValueError:
            pass
        parts = line.split()
        if re.fullmatch(r"(\w+:)?[0-9a-fA-F]{16,}", parts[0]):
            found.append((parts[-1] if len(parts) > 1 else None, parts[0]))
for p, h in found:
    if p is not None and os.path.normpath(str(p).rstrip("/")) in (want, os.path.abspath(want)):
        print(h); sys.exit(0)
if found:
    print(found[-1][1])
PY
}
store_hash() {
    local h
    h=$(parse_hash "$RES/last.out" "$1")
    if [ -z "$h" ]; then
        "$STORE_BIN" add --json "$1" >"$RES/last.json" 2>/dev/null || true
        h=$(parse_hash "$RES/last.json" "$1")
    fi
    [ -n "$h" ] || { log "could not get the store hash of $1"; return 1; }
    printf '%s\n' "$h"
}

# ------------------------------------------------------------ per-tool steps
# tool_init TOOL: create an empty repository in the current dir (workspace)
tool_init() {
    case $1 in
    store) "$STORE_BIN" init ${CHUNK_AVG:+--chunk-avg "$CHUNK_AVG"} >/dev/null ;;
    dvc)
        git init -q
        dvc init -q
        dvc config core.analytics false
        dvc config core.check_update false
        dvc config core.autostage false
        dvc config cache.type copy
        ;;
    restic) restic -q -r "$PWD/.restic" init >/dev/null ;;
    borg | borg64k) borg init -e none "$PWD/.borg" ;;
    esac
}

# tool_add_cmd TOOL PATH ARCHIVE: sets CMD to the command that adds PATH
tool_add_cmd() {
    case $1 in
    store) CMD=("$STORE_BIN" add --quiet "$2") ;;
    dvc) CMD=(dvc add -q "$2") ;;
    restic) CMD=(restic -q -r "$PWD/.restic" backup "$2") ;;
    borg) CMD=(borg create "$PWD/.borg::$3" "$2") ;;
    borg64k) CMD=(borg create --chunker-params "buzhash,14,18,16,4095" "$PWD/.borg::$3" "$2") ;;
    esac
}

# tool_repo TOOL: what holds the stored data
tool_repo() {
    case $1 in
    store) echo "$PWD/.store" ;;
    dvc) echo "$PWD/.dvc/cache" ;;
    restic) echo "$PWD/.restic" ;;
    borg | borg64k) echo "$PWD/.borg" ;;
    esac
}

# tool_checkout OP TOOL PATH ARCHIVE HASH: timed restore of the latest version of PATH;
# sets CO_OUT to where the restored tree is (for verification)
tool_checkout() {
    local op=$1 tool=$2 path=$3 arch=$4 hash=$5 ws=$PWD
    case $tool in
    store)
        run_timed "$op" "$tool" "$STORE_BIN" checkout "$hash" --to "$ws/co" --link copy
        CO_OUT="$ws/co" ;;
    dvc)
        rm -rf "$path"; sync
        run_timed "$op" "$tool" dvc checkout -q
        CO_OUT="$ws/$path" ;;
    restic)
        run_timed "$op" "$tool" restic -q -r "$ws/.restic" restore latest --target "$ws/co"
        CO_OUT="$ws/co" ;;
    borg | borg64k)
        mkdir -p "$ws/co"; cd "$ws/co"
        run_timed "$op" "$tool" borg extract "$ws/.borg::$arch"
        cd "$ws"
        CO_OUT="$ws/co" ;;
    esac
}

tool_env() {
    local ws=$1
    export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$ws/.restic-cache"
    export BORG_BASE_DIR="$ws/.borg-base" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
    export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
    export DVC_NO_ANALYTICS=1 DVC_SITE_CACHE_DIR="$ws/.dvc-site" GIT_CONFIG_NOSYSTEM=1
    unset STORE_DIR
}

# ------------------------------------------------------------------ groups
# Each group runs in its own process (`compare.sh __group ...`) so `set -e` holds inside
# and a failing tool only loses its own numbers.

group_big() { # TOOL
    local tool=$1 ws="$WORK/$1-big-r$REP" repo s1 s2 h2=""
    fresh "$ws"; cd "$ws"; tool_env "$ws"
    if [ "$tool" = limit ]; then
        warm "$DATA/big"
        run_timed add_big limit b3sum "$(find "$DATA/big" -type f | head -n 1)"
        # What storing the same bytes durably costs on this disk, with no hashing or chunking:
        # read through the page cache and written with O_DIRECT in 4 MiB blocks, as packs are.
        run_timed write_big limit dd if="$(find "$DATA/big" -type f | head -n 1)" \
            of="$ws/copy" bs=4M oflag=direct conv=fsync status=none
        rm -f "$ws/copy"
        warm "$DATA/big-v2"
        run_timed checkout_big limit cp -r "$DATA/big-v2" "$ws/co"
        drop "$ws"; return 0
    fi
    tool_init "$tool"
    repo=$(tool_repo "$tool")
    link_data "$DATA/big" big
    warm big
    tool_add_cmd "$tool" big v1
    run_timed add_big "$tool" "${CMD[@]}"
    [ "$TIMED_OK" = 1 ] || { drop "$ws"; return 0; }
    s1=$(bytes_of "$repo")
    record stored_big "$tool" "$s1"
    # big -> big-v2: same path, file replaced (new inode)
    rm -rf big; link_data "$DATA/big-v2" big
    warm big
    tool_add_cmd "$tool" big v2
    run_timed add_big_v2 "$tool" "${CMD[@]}"
    [ "$TIMED_OK" = 1 ] || { drop "$ws"; return 0; }
    [ "$tool" = store ] && h2=$(store_hash big)
    s2=$(bytes_of "$repo")
    record growth_big "$tool" "$(python3 -c "print('%.2f' % (100.0 * ($s2 - $s1) / $s1))")"
    if [ "$tool" = store ]; then
        "$STORE_BIN" stats --json >"$RES/stats-big-r$REP.json" 2>/dev/null || true
    fi
    tool_checkout checkout_big "$tool" big v2 "$h2"
    [ "$TIMED_OK" = 1 ] && verify "$tool" "checkout big" "$DATA/big-v2" "$CO_OUT"
    drop "$ws"
}

group_small() { # TOOL
    local tool=$1 ws="$WORK/$1-small-r$REP" repo h2=""
    fresh "$ws"; cd "$ws"; tool_env "$ws"
    if [ "$tool" = limit ]; then
        warm "$DATA/small"
        if command -v zstd >/dev/null; then
            run_timed add_small limit bash -c "tar -C '$DATA' -cf - small | zstd -1 -T0 -q -c >/dev/null"
        fi
        warm "$DATA/small-v2"
        run_timed status_small limit find "$DATA/small-v2" -type f -printf '%s %T@\n'
        run_timed checkout_small limit cp -r "$DATA/small-v2" "$ws/co"
        drop "$ws"; return 0
    fi
    tool_init "$tool"
    repo=$(tool_repo "$tool")
    link_data "$DATA/small" small
    warm small
    tool_add_cmd "$tool" small v1
    run_timed add_small "$tool" "${CMD[@]}"
    [ "$TIMED_OK" = 1 ] || { drop "$ws"; return 0; }
    record stored_small "$tool" "$(bytes_of "$repo")"
    sync_tree "$DATA/small-v2" small
    warm small
    tool_add_cmd "$tool" small v2
    run_timed update_small "$tool" "${CMD[@]}"
    [ "$TIMED_OK" = 1 ] || { drop "$ws"; return 0; }
    [ "$tool" = store ] && h2=$(store_hash small)
    case $tool in
    store) run_timed status_small "$tool" "$STORE_BIN" status ;;
    dvc) run_timed status_small "$tool" dvc status ;;
    esac
    if [ "$tool" = store ]; then
        "$STORE_BIN" stats --json >"$RES/stats-small-r$REP.json" 2>/dev/null || true
    fi
    tool_checkout checkout_small "$tool" small v2 "$h2"
    [ "$TIMED_OK" = 1 ] && verify "$tool" "checkout small" "$DATA/small-v2" "$CO_OUT"
    drop "$ws"
}

# add_fresh TOOL WS SRC NAME OP: a fresh workspace WS holding SRC (linked in as NAME), added
# once, timed as OP; leaves the current directory in WS
add_fresh() {
    local tool=$1 ws=$2 src=$3 name=$4 op=$5
    fresh "$ws"; cd "$ws"; tool_env "$ws"
    tool_init "$tool"
    link_data "$src" "$name"
    warm "$name"
    tool_add_cmd "$tool" "$name" v1
    run_timed "$op" "$tool" "${CMD[@]}"
}

group_ml() { # TOOL
    local tool=$1 ws="$WORK/$1-ml-r$REP"
    [ "$tool" = limit ] && return 0
    add_fresh "$tool" "$ws" "$DATA/ml" ml add_ml
    [ "$TIMED_OK" = 1 ] && record stored_ml "$tool" "$(bytes_of "$(tool_repo "$tool")")"
    drop "$ws"
}

group_tree() { # TOOL
    local tool=$1 ws="$WORK/$1-tree-r$REP" repo local_state
    [ "$tool" = limit ] && return 0
    add_fresh "$tool" "$ws" "$TREE" tree add_tree
    if [ "$TIMED_OK" = 1 ]; then
        repo=$(tool_repo "$tool")
        case $tool in
        store) record durable_tree "$tool" "$(bytes_of "$repo/packs")"; local_state=0 ;;
        restic) record durable_tree "$tool" "$(bytes_of "$repo")"
            local_state=$(bytes_of "$RESTIC_CACHE_DIR" 2>/dev/null || echo 0) ;;
        borg | borg64k) record durable_tree "$tool" "$(bytes_of "$repo")"
            local_state=$(bytes_of "$BORG_BASE_DIR" 2>/dev/null || echo 0) ;;
        *) record durable_tree "$tool" "$(bytes_of "$repo")"; local_state=0 ;;
        esac
        record stored_tree "$tool" "$(( $(bytes_of "$repo") + local_state ))"
    fi
    drop "$ws"
}

group_sweep() { # AVG
    local avg=$1 ws="$WORK/store-sweep-$1" s1 s2
    fresh "$ws"; cd "$ws"; tool_env "$ws"
    CHUNK_AVG=$avg tool_init store
    link_data "$DATA/big" big
    warm big
    run_timed "sweep_add_big_$avg" store "$STORE_BIN" add --quiet big
    s1=$(bytes_of .store)
    rm -rf big; link_data "$DATA/big-v2" big
    warm big
    run_timed "sweep_add_big_v2_$avg" store "$STORE_BIN" add --quiet big
    s2=$(bytes_of .store)
    record "sweep_growth_$avg" store "$(python3 -c "print('%.2f' % (100.0 * ($s2 - $s1) / $s1))")"
    record "sweep_stored_$avg" store "$s2"
    "$STORE_BIN" stats --json >"$RES/stats-sweep-$avg.json"
    record "sweep_chunks_$avg" store "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['chunks'])" "$RES/stats-sweep-$avg.json")"
    drop "$ws"
}

if [ "${1:-}" = __group ]; then
    # internal: compare.sh __group GROUP ARG (env from the parent)
    "group_$2" "$3"
    exit 0
fi

# -------------------------------------------------------------------- main
DATA=${1:-/tmp/benchdata}
STORE_BIN=${2:-target/release/store}
REPS=${REPS:-3}
TIMEOUT=${TIMEOUT:-1800}
WORK=${BENCH_WORK:-/tmp/bench-work}
TOOLS=${TOOLS:-store dvc restic borg borg64k limit}

case $STORE_BIN in
/*) ;;
*) if [ -e "$STORE_BIN" ]; then STORE_BIN=$(readlink -f "$STORE_BIN"); else STORE_BIN=$REPO/$STORE_BIN; fi ;;
esac

if [ ! -d "$DATA/big" ]; then
    gen=$REPO/../shared/bench/gen-data.py
    log "generating data in $DATA (scale ${SCALE:-1}) with $gen"
    python3 "$gen" "$DATA" --scale "${SCALE:-1}" >&2
fi
DATA=$(readlink -f "$DATA")
for d in big big-v2 small small-v2; do
    [ -d "$DATA/$d" ] || { echo "missing $DATA/$d" >&2; exit 1; }
done
case $WORK in "$DATA"* | "$REPO"*) echo "BENCH_WORK must be outside the data and the repo" >&2; exit 1 ;; esac

# which tools are usable
declare -A VERSION
tool_ok() {
    case $1 in
    store) [ -x "$STORE_BIN" ] && "$STORE_BIN" --help >/dev/null 2>&1 &&
        VERSION[store]=$("$STORE_BIN" --version 2>/dev/null | head -n 1 || echo "store") ;;
    dvc) command -v dvc >/dev/null && command -v git >/dev/null &&
        VERSION[dvc]="dvc $(DVC_NO_ANALYTICS=1 dvc --version 2>/dev/null)" ;;
    restic) command -v restic >/dev/null && VERSION[restic]=$(restic version | cut -d' ' -f1-2) ;;
    borg | borg64k) command -v borg >/dev/null && VERSION[$1]=$(borg --version) ;;
    limit) command -v b3sum >/dev/null && VERSION[limit]="$(b3sum --version), cp, find, zstd -1 -T0" ;;
    *) return 1 ;;
    esac
}
ACTIVE=()
for t in $TOOLS; do
    if tool_ok "$t"; then ACTIVE+=("$t"); else log "$t: not available -> n/a"; fi
done

mkdir -p "$WORK"
find "$WORK" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
RES=$WORK/results
mkdir -p "$RES"
if [ -n "${TREE:-}" ]; then
    TREE=$(readlink -f "$TREE")
    [ -d "$TREE" ] || { echo "TREE=$TREE is not a directory" >&2; exit 1; }
fi
export DATA STORE_BIN WORK RES REPS TIMEOUT TREE
log "data $DATA, store $STORE_BIN, reps $REPS, tools: ${ACTIVE[*]:-none}"
# never let another repo's settings leak in
unset STORE_DIR

run_group() { # GROUP TOOL
    log "$1 / $2 (rep $REP)"
    if ! REP=$REP bash "$SELF" __group "$1" "$2"; then
        log "$2: $1 group aborted (rep $REP)"
        note "$2: $1 group aborted in rep $REP (see stderr)"
    fi
}

for REP in $(seq 1 "$REPS"); do
    k=$(( (REP - 1) % (${#ACTIVE[@]} > 0 ? ${#ACTIVE[@]} : 1) ))
    ORDER=("${ACTIVE[@]:k}" "${ACTIVE[@]:0:k}")
    for t in "${ORDER[@]}"; do run_group big "$t"; done
    for t in "${ORDER[@]}"; do run_group small "$t"; done
    if [ -d "$DATA/ml" ] && [ "${ML:-1}" = 1 ]; then
        for t in "${ORDER[@]}"; do run_group ml "$t"; done
    fi
    if [ -n "${TREE:-}" ]; then
        for t in "${ORDER[@]}"; do run_group tree "$t"; done
    fi
done
if [ "${CHUNK_SWEEP:-0}" = 1 ] && [[ " ${ACTIVE[*]} " == *" store "* ]]; then
    REP=1
    for avg in 32768 65536 131072; do run_group sweep "$avg"; done
fi

# ------------------------------------------------------------------ report
{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "machine=$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -r)"
    echo "data=$DATA ($(du -sh "$DATA" | cut -f1))"
    echo "reps=$REPS"
    echo "big_mib=$(( $(du -sb "$DATA/big" | cut -f1) / 1048576 ))"
    echo "small_files=$(find "$DATA/small" -type f | wc -l)"
    if [ -n "${TREE:-}" ]; then
        echo "tree=$TREE"
        echo "tree_mib=$(( $(du -sb "$TREE" | cut -f1) / 1048576 ))"
        echo "tree_files=$(find "$TREE" -type f | wc -l)"
    fi
    for t in "${ACTIVE[@]}"; do echo "version_$t=${VERSION[$t]}"; done
} >"$RES/meta"

python3 - "$RES" "${ACTIVE[@]}" <<'PY'
import json, os, statistics, sys
res, active = sys.argv[1], sys.argv[2:]
cols = ["store", "dvc", "restic", "borg", "borg64k", "limit"]
names = {"store": "store", "dvc": "DVC", "restic": "restic", "borg": "borg (2 MiB)",
         "borg64k": "borg (64 KiB)", "limit": "limit"}

def vals(op, tool):
    p = os.path.join(res, "%s@%s" % (op, tool))
    if not os.path.exists(p):
        return []
    return [float(x) for x in open(p).read().split()]

def med(op, tool):
    v = vals(op, tool)
    return statistics.median(v) if v else None

MiB = 1024 * 1024
meta = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(res, "meta")))
rows = [
    # op, label, kind
    ("add_big", "add big (%s MiB)" % meta["big_mib"], "time"),
    ("write_big", "write floor: the big file copied with O_DIRECT and fsynced", "time"),
    ("add_big_v2", "add big-v2 after big", "time"),
    ("growth_big", "storage growth big -> big-v2", "pct"),
    ("stored_big", "stored size big", "bytes"),
    ("add_big_rss", "peak RSS, add big", "rss"),
    ("checkout_big", "checkout / restore big-v2 (copy)", "time"),
    ("add_small", "add small (%s files)" % meta["small_files"], "time"),
    ("stored_small", "stored size small", "bytes"),
    ("add_small_rss", "peak RSS, add small", "rss"),
    ("update_small", "update small -> small-v2 in place", "time"),
    ("status_small", "status, nothing changed, small", "time"),
    ("checkout_small", "checkout / restore small-v2 (copy)", "time"),
    ("add_ml", "add ml", "time"),
    ("stored_ml", "stored size ml", "bytes"),
    ("add_tree", "add TREE (%s MiB, %s files)" % (meta.get("tree_mib"), meta.get("tree_files")), "time"),
    ("durable_tree", "stored size TREE, durable (packs / repository / cache)", "bytes1"),
    ("stored_tree", "stored size TREE, all (with index / local caches)", "bytes1"),
    ("add_tree_rss", "peak RSS, add TREE", "rss"),
]
limit_of = {"add_big": "b3sum", "write_big": "dd oflag=direct", "checkout_big": "cp -r", "add_small": "tar|zstd -1",
            "status_small": "find -printf", "checkout_small": "cp -r"}

def cell(op, tool, kind):
    v = vals(op, tool)
    if not v or (kind == "rss" and tool == "limit"):
        return "n/a"
    m = statistics.median(v)
    if kind == "time":
        s = "%.2f s" % m if m >= 0.1 else "%.3f s" % m
        if len(v) > 1:
            s += " (min %.2f)" % min(v) if min(v) >= 0.1 else " (min %.3f)" % min(v)
        if tool == "limit":
            s += " " + limit_of.get(op, "")
        return s
    if kind == "pct":
        return "%+.1f%%" % m
    if kind == "bytes":
        return "%.0f MiB" % (m / MiB)
    if kind == "bytes1":
        return "%.1f MiB" % (m / MiB)
    if kind == "rss":
        return "%.0f MiB" % (m / 1024)
    return str(m)

shown = [c for c in cols if c in active]
ratio_cols = [c for c in shown if c not in ("store", "limit")] if "store" in shown else []
print("# store vs DVC / restic / borg\n")
print("- %s; %s; data %s; REPS=%s (median, min in parentheses)" % (
    meta["date"], meta["machine"], meta["data"], meta["reps"]))
if "tree" in meta:
    print("- TREE: %s" % meta["tree"])
for c in shown:
    print("- %s: %s" % (names[c], meta.get("version_" + c, "")))
print()
hdr = ["operation"] + [names[c] for c in shown] + ["%s/store" % names[c] for c in ratio_cols]
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for op, label, kind in rows:
    if not any(vals(op, c) for c in shown):
        continue
    line = [label] + [cell(op, c, kind) for c in shown]
    for c in ratio_cols:
        a, b = med(op, c), med(op, "store")
        line.append("%.2fx" % (a / b) if a is not None and b not in (None, 0) else "n/a")
    print("| " + " | ".join(line) + " |")
print("\nRatios are other tool / store on medians: above 1 means store is faster or smaller.")

sweep = [a for a in (32768, 65536, 131072) if vals("sweep_growth_%d" % a, "store")]
if sweep:
    print("\n## store chunk-size sweep (big -> big-v2)\n")
    print("| avg chunk | add big | add big-v2 | growth | chunks (after v2) | stored |")
    print("|---|---|---|---|---|---|")
    for a in sweep:
        print("| %d KiB | %s | %s | %s | %d | %s |" % (
            a // 1024, cell("sweep_add_big_%d" % a, "store", "time"),
            cell("sweep_add_big_v2_%d" % a, "store", "time"),
            cell("sweep_growth_%d" % a, "store", "pct"),
            med("sweep_chunks_%d" % a, "store"),
            cell("sweep_stored_%d" % a, "store", "bytes")))

for name in ("stats-big-r1.json", "stats-small-r1.json"):
    p = os.path.join(res, name)
    if os.path.exists(p):
        try:
            s = json.load(open(p))
            keys = ", ".join("%s=%s" % (k, s[k]) for k in sorted(s) if not isinstance(s[k], (dict, list)))
            print("\n`store stats --json` after %s: %s" % (name.split("-")[1], keys))
        except ValueError:
            pass
notes = os.path.join(res, "notes")
if os.path.exists(notes):
    print("\n## notes\n")
    for l in open(notes):
        print("- " + l.rstrip())
PY
