#!/usr/bin/env bash
# Crash torture (minutes, not CI): for each operation, TRIALS times: copy a prepared store,
# start the operation, SIGKILL its process group after a random delay (0 .. the time an unkilled
# run takes), then check that nothing was damaged or lost:
#   - `store verify` exits 0 (and `store verify --remote origin` for push and pull);
#   - the operation, run again, succeeds (add, seal, push, pull);
#   - a second `store gc --yes`, then `verify`, is still clean; no temporary file is left;
#   - every sealed run restores byte for byte (`store checkout RUN --to DIR`, `diff -r` against
#     the original files), and every added version that must be kept restores too;
#   - seal: the workflow's git branch holds the run's code commit, no ref lock is left behind;
#   - push: a fresh clone of the remote restores every run; pull: the runs restore with the
#     remote out of reach.
# Prints a table (operation, trials, killed mid-operation, failures; failures include one unkilled
# run per operation, checked alike, that times the operation); exits 1 on any failure.
# Failed trials are kept under the work directory with failures.log.
#
# Usage: benches/torture.sh > result.md
# Environment: STORE_BIN (default target/release/store), TRIALS=100,
#   OPS="add gc gc-keep seal push pull reindex", TORTURE_WORK (default a new /tmp directory),
#   CHECK_TIMEOUT=300 (seconds a check may take before it counts as hung).
# Needs: git, diff, python3.
set -uo pipefail
SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
STORE=$(cd "$REPO" && readlink -f "${STORE_BIN:-target/release/store}")
TRIALS=${TRIALS:-100}
OPS=${OPS:-"add gc gc-keep seal push pull reindex"}
WORK=${TORTURE_WORK:-$(mktemp -d /tmp/torture.XXXXXX)}
CHECK_TIMEOUT=${CHECK_TIMEOUT:-300}
[ -x "$STORE" ] || { echo "no store binary at $STORE (build it or set STORE_BIN)" >&2; exit 2; }
mkdir -p "$WORK"
WORK=$(readlink -f "$WORK")
# A copy, so that a rebuild during the run does not mix two versions.
cp "$STORE" "$WORK/store"
STORE="$WORK/store"
# Every trial runs at the same path as the template was built at, so the absolute paths a store
# keeps (code.repo, remotes, the git origin) stay valid in each copy.
T="$WORK/trial"
LOG="$WORK/failures.log"
: >"$LOG"
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
st() { "$STORE" "$@"; }
rnd() { mkdir -p "$(dirname "$1")"; head -c "$2" /dev/urandom >"$1"; }
now_us() { echo $(($(date +%s%N) / 1000)); }

# A workspace with two sealed runs (r1, r2) and an open one (r3) of workflow W, each with a
# shared input directory, outputs and a code file (committed to git at the seal), four versions
# of `hist/` (garbage for `gc --keep-last 1`; every add also leaves a small pack for gc to merge)
# and `newdata/`, not yet added. Built at $T/ws.
build_main() {
    rm -rf "$T"; mkdir -p "$T/ws"; cd "$T/ws" || exit 2
    st init -q
    # Small packs (1 MiB), so a gc writes several replacement packs: the interrupted-gc window
    # (replacements renamed, index not yet committed) is then wide enough to be hit.
    sed -i 's/"pack_target_size": [0-9]*/"pack_target_size": 1048576/' .store/config.json
    git init -q code
    git init -q --bare code-origin.git
    git -C code remote add origin "$T/ws/code-origin.git"
    st config set code.repo "$T/ws/code" >/dev/null
    rnd runs/shared/in.bin 2000000
    for r in r1 r2 r3; do
        rnd "runs/$r/out/big.bin" 3000000
        for j in $(seq 10); do rnd "runs/$r/out/s$j.dat" 4000; done
        mkdir -p "runs/$r/code"; printf 'print("%s")\n' "$r" >"runs/$r/code/step.py"
        for spec in input:runs/shared output:"runs/$r/out" code:"runs/$r/code/step.py"; do
            st add -q --no-env --role "${spec%%:*}" --wf W --run "$r" --job "J-${spec%%:*}" \
                "${spec#*:}" >/dev/null
        done
        [ "$r" = r3 ] || st seal -q "$r" >/dev/null
    done
    : >versions.txt
    # Versions of hist/a.bin share most chunks, so --keep-last 1 repacks (partly dead packs)
    # instead of only deleting whole packs.
    rnd hist-base.bin 6000000
    for v in 1 2 3 4; do
        mkdir -p hist; cp hist-base.bin hist/a.bin
        printf 'version %s' "$v" | dd of=hist/a.bin bs=1 seek=$((v * 1400000)) conv=notrunc status=none
        echo "v$v" >hist/b.txt
        echo "$v $(st add -q hist | awk '{print $1}')" >>versions.txt
        mkdir -p hist-orig; cp -a hist "hist-orig/v$v"
    done
    rnd newdata/big.bin 12000000
    for j in $(seq 30); do rnd "newdata/s$j.dat" 3000; done
}

# The main workspace pushed to the directory remote $T/remote, and a clone of it in $T/clone
# (runs and manifests, no content) for `pull`.
build_pull() {
    cd "$T/ws" || exit 2
    st remote add origin "$T/remote" >/dev/null
    st push -q >/dev/null
    st clone -q "$T/remote" "$T/clone" >/dev/null
}

# The operation, its working directory, and what must restore after it: "RUN:PATH,PATH" for a
# sealed run (paths relative to ws), "vN" for an added version of hist/.
op_dir() { case $1 in pull) echo "$T/clone" ;; *) echo "$T/ws" ;; esac; }
op_cmd() {
    case $1 in
        add) echo "add -q --no-env --role output --wf W --run r4 --job J-out newdata" ;;
        gc) echo "gc --yes -q" ;;
        gc-keep) echo "gc --keep-last 1 --yes -q" ;;
        seal) echo "seal -q r3" ;;
        push) echo "push -q" ;;
        pull) echo "pull -q" ;;
        reindex) echo "reindex -q" ;;
    esac
}
expected() {
    local runs="r1:runs/shared,runs/r1 r2:runs/shared,runs/r2"
    case $1 in
        add) echo "$runs r4:newdata v1 v2 v3 v4" ;;
        seal) echo "$runs r3:runs/shared,runs/r3 v1 v2 v3 v4" ;;
        gc-keep) echo "$runs v4" ;;
        pull) echo "$runs" ;;
        *) echo "$runs v1 v2 v3 v4" ;;
    esac
}

# One check: runs CMD in the current directory; on failure records NAME with the tail of its
# error output.
ok=1
chk() {
    local name=$1; shift
    local cmd=("$@")
    [ "${cmd[0]}" = st ] && cmd[0]=$STORE
    timeout "$CHECK_TIMEOUT" "${cmd[@]}" >"$T/chk.out" 2>"$T/chk.err"
    local rc=$?
    case $rc in
        0) ;;
        124) bad "$name hung (killed after $CHECK_TIMEOUT s)" ;;
        *) bad "$name failed (exit $rc): $(tail -n 3 "$T/chk.err" | tr '\n' ' ')" ;;
    esac
}
bad() { echo "$OP #$TRIAL: $*" >>"$LOG"; ok=0; }

# Restores what must be kept (expected) from the store in DIR and compares with the originals.
restores() {
    local dir=$1 item run paths p v h out back=$PWD
    cd "$dir" || exit 2
    for item in $2; do
        out="$T/restore-$item"; out=${out%%:*}; rm -rf "$out"
        case $item in
            v*)
                v=${item#v}; h=$(awk -v v="$v" '$1 == v {print $2}' "$T/ws/versions.txt")
                chk "checkout version $v" st checkout -q "$h" --to "$out" --link copy
                [ -d "$out" ] && { diff -r "$out" "$T/ws/hist-orig/v$v" >/dev/null \
                    || bad "version $v restores different bytes"; }
                ;;
            *)
                run=${item%%:*}; paths=${item#*:}
                chk "checkout $run" st checkout -q "$run" --to "$out" --link copy
                for p in ${paths//,/ }; do
                    diff -r "$out/$p" "$T/ws/$p" >/dev/null 2>&1 \
                        || bad "run $run: $p restores different bytes (or not at all)"
                done
                ;;
        esac
        rm -rf "$out"
    done
    cd "$back" || exit 2
}

# Everything checked after the operation was (or was not) killed.
check_trial() {
    local op=$1 dir
    dir=$(op_dir "$op")
    cd "$dir" || exit 2
    chk "verify" st verify -q
    case $op in
        push)
            chk "verify --remote" st verify -q --remote origin
            chk "push again" st push -q
            chk "verify --remote after push" st verify -q --remote origin
            local n
            n=$(find "$T/remote/tmp" -type f 2>/dev/null | wc -l)
            # At most the uploads in flight when the push was killed (--jobs 8).
            [ "$n" -le 8 ] || bad "$n temporary files on the remote"
            ;;
        pull)
            chk "verify --remote" st verify -q --remote origin
            chk "pull again" st pull -q
            ;;
        add)
            chk "add again" st $(op_cmd add)
            chk "seal r4" st seal -q r4
            ;;
        seal)
            local t0
            t0=$(now_us)
            chk "seal again" st seal -q r3
            [ $(($(now_us) - t0)) -lt 5000000 ] || log "seal #$TRIAL: the second seal waited $((($(now_us) - t0) / 1000)) ms (a ref lock left by the kill?)"
            local want
            want=$(st show --json r3 | python3 -c 'import json,sys; print(json.load(sys.stdin)["code"]["commit"])' 2>/dev/null)
            [ -n "$want" ] && [ "$(git -C code rev-parse W 2>/dev/null)" = "$want" ] \
                || bad "branch W is not at r3's code commit ($want)"
            [ -z "$(find code/.git -name '*.lock' -o -name '*.stale-*')" ] \
                || bad "git lock files left: $(find code/.git -name '*.lock' -o -name '*.stale-*' | tr '\n' ' ')"
            chk "git fsck" git -C code fsck --no-progress
            ;;
    esac
    chk "gc --yes" st gc --yes -q
    chk "verify after gc" st verify -q
    local left
    left=$(find .store/tmp -type f 2>/dev/null | wc -l)
    left=$((left + $(find .store -name '*.tmp' -not -path '.store/tmp/*' 2>/dev/null | wc -l)))
    [ "$left" -eq 0 ] || bad "$left temporary files left after gc"
    if [ "$op" = pull ]; then
        # Local content alone must restore the runs.
        mv "$T/remote" "$T/remote.away"
        restores "$dir" "$(expected "$op")"
        mv "$T/remote.away" "$T/remote"
    else
        restores "$dir" "$(expected "$op")"
    fi
    if [ "$op" = push ]; then
        rm -rf "$T/clone2"
        chk "clone" st clone -q "$T/remote" "$T/clone2"
        [ -d "$T/clone2" ] && restores "$T/clone2" "r1:runs/shared,runs/r1 r2:runs/shared,runs/r2"
        rm -rf "$T/clone2"
    fi
}

# Copies the template for OP into $T.
fresh() {
    cd "$WORK" || exit 2
    rm -rf "$T"
    case $1 in pull) cp -a "$WORK/template-pull" "$T" ;; *) cp -a "$WORK/template-main" "$T" ;; esac
    if [ "$1" = push ]; then (cd "$T/ws" && st remote add origin "$T/remote" >/dev/null); fi
}

log "building templates in $WORK with $STORE"
build_main; rm -rf "$WORK/template-main"; cp -a "$T" "$WORK/template-main"
build_pull; rm -rf "$WORK/template-pull"; mv "$T" "$WORK/template-pull"

echo "| operation | trials | killed mid-operation | failures |"
echo "|---|---|---|---|"
total_fail=0
for OP in $OPS; do
    # The span kill delays are drawn from: an unkilled run, itself checked like a trial.
    TRIAL=baseline; ok=1
    fresh "$OP"; cd "$(op_dir "$OP")" || exit 2
    t0=$(now_us)
    # shellcheck disable=SC2046
    timeout "$CHECK_TIMEOUT" "$STORE" $(op_cmd "$OP") >/dev/null 2>"$T/op.err" \
        || bad "unkilled run failed: $(tail -n 3 "$T/op.err" | tr '\n' ' ')"
    span=$(($(now_us) - t0))
    check_trial "$OP"
    fails=$((1 - ok))
    [ "$ok" = 1 ] || { rm -rf "$WORK/failed-$OP-baseline"; mv "$T" "$WORK/failed-$OP-baseline"; }
    log "$OP: an unkilled run takes $((span / 1000)) ms"
    killed=0
    for TRIAL in $(seq "$TRIALS"); do
        ok=1
        fresh "$OP"; cd "$(op_dir "$OP")" || exit 2
        delay=$(( ((RANDOM << 15) | RANDOM) % (span + 1) ))
        # Own process group (job control), so the kill takes git children too, as a scheduler
        # killing a job would.
        set -m
        # shellcheck disable=SC2046
        ( exec "$STORE" $(op_cmd "$OP") ) >/dev/null 2>"$T/op.err" &
        pid=$!
        sleep "$(printf '%d.%06d' $((delay / 1000000)) $((delay % 1000000)))"
        kill -KILL -- "-$pid" 2>/dev/null
        { wait "$pid"; rc=$?; } 2>/dev/null
        set +m
        [ "$rc" = 137 ] && killed=$((killed + 1))
        if [ "$rc" != 137 ] && [ "$rc" != 0 ]; then
            bad "exited $rc before the kill: $(tail -n 3 "$T/op.err" | tr '\n' ' ')"
        fi
        check_trial "$OP"
        if [ "$ok" != 1 ]; then
            fails=$((fails + 1))
            rm -rf "$WORK/failed-$OP-$TRIAL"; mv "$T" "$WORK/failed-$OP-$TRIAL"
        fi
    done
    log "$OP: $TRIALS trials, $killed killed mid-operation, $fails failures"
    echo "| $OP | $TRIALS | $killed | $fails |"
    total_fail=$((total_fail + fails))
done
rm -rf "$T"
if [ "$total_fail" -gt 0 ]; then
    log "$total_fail failures: see $LOG (failed trials kept in $WORK)"
    exit 1
fi
[ -n "${TORTURE_WORK:-}" ] || rm -rf "$WORK"
