#!/usr/bin/env bash
# The whole test suite, Rust and Python, with nothing skipped: installs what the tests need into
# project-local virtual environments (never the system Python), starts a real S3-compatible
# server (moto), Azurite (Azure Blob Storage) and a real MLflow tracking server on loopback, and
# runs `cargo test --release` with CI=true, so a test that cannot run fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Pegasus tests generate workflows with the real Pegasus Python API and load the result
# with Pegasus's own loader; the example jobs log with MLflow's client; the Python example's
# notebook (examples/python/notebook.py) builds pandas DataFrames. Versions are pinned to the
# ones the suite last passed with.
VENV=.venv/tests
# The scripts are run too: a venv that was moved or copied imports fine but its scripts name
# the old interpreter path; it is rebuilt (--clear) rather than half-reused.
if ! "$VENV/bin/python3" -c "import Pegasus.api, Pegasus.workflow, mlflow, moto, maturin, pytest, pandas" 2>/dev/null ||
    ! "$VENV/bin/moto_server" --help >/dev/null 2>&1 || ! "$VENV/bin/pytest" --version >/dev/null 2>&1; then
    python3 -m venv --clear "$VENV"
    "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check pegasus-wms.api==5.1.3 \
        pegasus-wms==5.1.3 'moto[s3]==5.2.1' flask flask-cors mlflow-skinny==3.17.2 \
        maturin==1.9.4 pytest==9.2.0 pandas==3.1.1
fi
export PATH="$PWD/$VENV/bin:$PATH"
python3 -c "import Pegasus.api, Pegasus.workflow, mlflow"
# The MLflow server needs SQLAlchemy 2 and a newer Flask than pegasus-wms allows: it gets a
# virtual environment of its own.
MLFLOW_VENV=.venv/mlflow-server
MLFLOW_VERSION=3.17.2
if ! "$MLFLOW_VENV/bin/mlflow" --version 2>/dev/null | grep -qF "$MLFLOW_VERSION"; then
    python3 -m venv --clear "$MLFLOW_VENV"
    "$MLFLOW_VENV/bin/python3" -m pip install --quiet --disable-pip-version-check "mlflow==$MLFLOW_VERSION"
fi

# The report tests open pages in a real headless browser: Debian's chromium.
if ! command -v chromium >/dev/null 2>&1; then
    SUDO=
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium
fi

# Azure remotes are tested against Azurite, the Azure Storage emulator, from the npm registry,
# installed into a project-local directory (never the system).
AZURITE_DIR=.venv/azurite
AZURITE_VERSION=3.37.0
if ! grep -qF "\"version\": \"$AZURITE_VERSION\"" "$AZURITE_DIR/node_modules/azurite/package.json" 2>/dev/null; then
    npm install --silent --no-audit --no-fund --prefix "$AZURITE_DIR" "azurite@$AZURITE_VERSION"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
S3_PORT=$(free_port)
S3_LOG=$(mktemp)
moto_server -H 127.0.0.1 -p "$S3_PORT" >"$S3_LOG" 2>&1 &
S3_PID=$!
MLFLOW_PID=
AZURITE_PID=
# The MLflow server runs its workers as child processes: it gets a session of its own, and the
# whole process group is stopped at exit.
trap 'kill $S3_PID 2>/dev/null || true; [ -z "$AZURITE_PID" ] || kill "$AZURITE_PID" 2>/dev/null || true; [ -z "$MLFLOW_PID" ] || kill -- -"$MLFLOW_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$S3_PORT/" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fsS "http://127.0.0.1:$S3_PORT/" >/dev/null || { cat "$S3_LOG"; exit 1; }
export STORE_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"

# Azurite's blob service, in memory, with its well-known development account; the tests reach
# it the way users reach an emulator (AZURE_STORAGE_USE_EMULATOR, AZURITE_BLOB_STORAGE_URL)
# and use one container, created here (Azurite creates none by itself).
AZURE_PORT=$(free_port)
AZURE_LOG=$(mktemp)
node "$AZURITE_DIR/node_modules/azurite/dist/src/blob/main.js" --blobHost 127.0.0.1 \
    --blobPort "$AZURE_PORT" --inMemoryPersistence --skipApiVersionCheck --silent \
    >"$AZURE_LOG" 2>&1 &
AZURITE_PID=$!
for _ in $(seq 1 100); do
    curl -sS -o /dev/null "http://127.0.0.1:$AZURE_PORT/" 2>/dev/null && break
    sleep 0.2
done
python3 tests/azurite_container.py "http://127.0.0.1:$AZURE_PORT" store-test || { cat "$AZURE_LOG"; exit 1; }
export STORE_TEST_AZURE_ENDPOINT="http://127.0.0.1:$AZURE_PORT"
export STORE_TEST_AZURE_CONTAINER=store-test

MLFLOW_PORT=$(free_port)
MLFLOW_DIR=$(mktemp -d)
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid "$MLFLOW_VENV/bin/mlflow" server --workers 1 \
    --backend-store-uri "sqlite:///$MLFLOW_DIR/mlflow.db" \
    --artifacts-destination "$MLFLOW_DIR/artifacts" \
    --host 127.0.0.1 --port "$MLFLOW_PORT" >"$MLFLOW_DIR/server.log" 2>&1 &
MLFLOW_PID=$!
for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$MLFLOW_PORT/health" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fsS "http://127.0.0.1:$MLFLOW_PORT/health" >/dev/null || { cat "$MLFLOW_DIR/server.log"; exit 1; }
export STORE_TEST_MLFLOW_URI="http://127.0.0.1:$MLFLOW_PORT"

# Under CI=true a missing package or server fails its test instead of skipping it.
CI=true cargo test --release

# The Python package (python/, PyO3 bindings of the same library), built into the test venv
# with maturin, then its tests with pytest against the same servers and the binary just built.
VIRTUAL_ENV="$PWD/$VENV" maturin develop --release --quiet -m python/Cargo.toml
CI=true STORE_BIN="$PWD/target/release/store" python3 -m pytest -q python/tests
