#!/usr/bin/env bash
# Builds `store`, versions a small dataset, changes it, and restores both versions verified.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
STORE="$PWD/target/release/store"
WS=$(mktemp -d)
trap 'rm -rf "$WS"' EXIT
cd "$WS"

mkdir -p data/raw
python3 - <<'PY'
import random
random.seed(1)
with open("data/raw/measurements.csv", "w") as f:
    f.write("id,temperature,pressure\n")
    for i in range(50000):
        f.write(f"{i},{random.gauss(20, 5):.3f},{random.gauss(1013, 9):.2f}\n")
with open("data/model.bin", "wb") as f:
    f.write(random.randbytes(3 << 20))
PY

"$STORE" init
V1=$("$STORE" add data | cut -d' ' -f1)
echo "version 1 of data/: $V1"

echo "999999,99.9,999.9" >> data/raw/measurements.csv
echo "--- status after editing one file:"
"$STORE" status
V2=$("$STORE" add data | cut -d' ' -f1)
echo "version 2 of data/: $V2"

"$STORE" checkout "$V1" --to restored-v1 --link copy
"$STORE" checkout "$V2" --to restored-v2 --link copy
cmp restored-v2/raw/measurements.csv data/raw/measurements.csv
if cmp -s restored-v1/raw/measurements.csv data/raw/measurements.csv; then
  echo "version 1 should differ from the edited file" >&2; exit 1
fi
"$STORE" verify
"$STORE" stats
echo "quickstart: both versions restored byte for byte and verified"
