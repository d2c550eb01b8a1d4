#!/usr/bin/env bash
# Drives the property-based fuzz targets (every decoder of bytes from other machines: in
# tests/it/fuzz.rs packs, manifests, stored objects with any declared length, configuration,
# Pegasus YAML; in the library's `fuzz` test modules remote segments, run objects, Drive and
# MLflow answers) for longer than CI does: CASES per target (default 200000), release build.
# usage: benches/fuzz.sh [CASES]
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES=${1:-200000}
cargo test --release --lib fuzz -- --test-threads 2
cargo test --release --test it fuzz -- --test-threads 2
