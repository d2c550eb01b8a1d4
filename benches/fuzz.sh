#!/usr/bin/env bash
# Drives the property-based fuzz targets of tests/it/fuzz.rs (every decoder of bytes from other
# machines: packs, manifests, stored objects with any declared length, configuration, Pegasus
# YAML) for longer than CI does: CASES per target (default 200000), release build.
# usage: benches/fuzz.sh [CASES]
set -euo pipefail
cd "$(dirname "$0")/.."
PROPTEST_CASES=${1:-200000} cargo test --release --test it fuzz -- --test-threads 2
