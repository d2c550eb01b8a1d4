#!/usr/bin/env bash
# MLflow linkage cost: generation (`store augment`) time of the federated example with 3 rounds,
# without and with --mlflow, against a local MLflow server (the research prototype took 45-121 s
# against a hosted one, creating runs one by one while writing the workflow); then the MLflow
# requests per tracked job over a whole `store run --mlflow` of that workflow: at generation
# (from augment --json), in the tracking jobs and in the seal (each says how many it made).
# usage: benches/mlflow.sh [STORE_BIN]   (MLFLOW_URI=http://... to use a running server;
#                                         otherwise one is started on loopback and stopped, from
#                                         the virtual environment .ci/run keeps, else from PATH)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
STORE_BIN=$(realpath "${1:-$REPO/target/release/store}")
DIR=$(mktemp -d)
SERVER_PID=
trap '[ -z "$SERVER_PID" ] || kill -- -"$SERVER_PID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
if [ -z "${MLFLOW_URI:-}" ]; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  MLFLOW_BIN="${STORE_CI_MLFLOW_VENV:-$HOME/.cache/store-ci/mlflow-server}/bin/mlflow"
  [ -x "$MLFLOW_BIN" ] || MLFLOW_BIN=mlflow
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid "$MLFLOW_BIN" server --workers 1 \
    --backend-store-uri "sqlite:///$DIR/mlflow.db" --artifacts-destination "$DIR/artifacts" \
    --host 127.0.0.1 --port "$PORT" >"$DIR/server.log" 2>&1 &
  SERVER_PID=$!
  MLFLOW_URI="http://127.0.0.1:$PORT"
  for _ in $(seq 1 300); do curl -fsS "$MLFLOW_URI/health" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fsS "$MLFLOW_URI/health" >/dev/null || { cat "$DIR/server.log"; exit 1; }
fi
secs() { echo "$2 - $1" | bc; }

mkdir "$DIR/ws"
cd "$DIR/ws"
"$STORE_BIN" init -q
"$STORE_BIN" config set mlflow.uri "$MLFLOW_URI"
s=$(date +%s.%N)
python3 "$REPO/examples/federated/generate.py" --rounds 3 --absolute -o "$DIR/fed3.yml"
g=$(date +%s.%N)
echo "federated, 3 rounds: generate.py (Pegasus API) $(secs "$s" "$g") s"
echo
echo "| augment | try 1 (s) | try 2 (s) | try 3 (s) | MLflow requests | tracked jobs | requests per tracked job |"
echo "|---|---|---|---|---|---|---|"
for mode in plain mlflow; do
  row="| $mode"
  req="-"; jobs="-"; per="-"
  for i in 1 2 3; do
    flag=()
    [ "$mode" = mlflow ] && flag=(--mlflow)
    s=$(date +%s.%N)
    "$STORE_BIN" -q augment "$DIR/fed3.yml" -o "$DIR/out-$mode.yml" --json "${flag[@]}" >"$DIR/r.json"
    e=$(date +%s.%N)
    row="$row | $(secs "$s" "$e")"
    if [ "$mode" = mlflow ]; then
      read -r req jobs < <(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["mlflow"]; assert m["pending"] is None, m; print(m["requests"], m["tracked_jobs"])' "$DIR/r.json")
      per=$(echo "scale=2; $req / $jobs" | bc)
    fi
  done
  echo "$row | $req | $jobs | $per |"
done

# A whole run: every request the generation, the tracking jobs and the seal made (each says).
"$STORE_BIN" run "$DIR/fed3.yml" --mlflow --workdir "$DIR/ws/run" 2>"$DIR/run.err" >"$DIR/run.id"
gen=$(grep -o 'job runs ([0-9]* requests)' "$DIR/run.err" | grep -o '[0-9]* requests' | tr -dc 0-9)
trk=$(cat "$DIR"/ws/run/logs/store_*.err | grep -o 'MLflow: logged .* requests)' \
  | grep -o '([0-9]* requests)' | tr -dc '0-9\n' | paste -sd+ | bc)
seal=$(grep -o 'finished ([0-9]* requests)' "$DIR/ws/run/logs/store_seal.err" | tr -dc 0-9)
echo
echo "store run --mlflow, 3 rounds ($jobs tracked jobs): generation $gen, tracking jobs $trk, seal $seal requests;"
echo "per tracked job: $(echo "scale=2; ($gen + $trk + $seal) / $jobs" | bc) requests in all"
