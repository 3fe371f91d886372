#!/usr/bin/env bash
# Trains the paper's three attribute heads on the same synthetic benchmark and prints Tables 1 and 2
# for each (validation split and the synthetic query/gallery test split).
#
#   train/scripts/compare_heads.sh OUT [HEAD...]     (heads default to: baseline convhead sa)
#
# Environment: BACKBONE (small), EPOCHS (12), IDENTITIES (1500 = the full-size set), THREADS (2).
# Two heads can run side by side on two cores with THREADS=1 (one process per head).
set -euo pipefail
out=${1:?usage: compare_heads.sh OUT [HEAD...]}
shift
[ $# -gt 0 ] && heads=("$@") || heads=(baseline convhead sa)
root=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release --manifest-path "$root/Cargo.toml" -p edge-reid-train >&2
bin=${CARGO_TARGET_DIR:-$root/target}/release/edge-reid-train
data=$out/synth-${IDENTITIES:-1500}
mkdir -p "$out"
# Rendering is deterministic, so side-by-side invocations agree on the data; only one renders it.
if mkdir "$data.lock" 2>/dev/null; then
  [ -f "$data/synth.json" ] || "$bin" synth --out "$data" --identities "${IDENTITIES:-1500}" --seed 0
  rmdir "$data.lock"
else
  while [ -d "$data.lock" ]; do sleep 2; done
fi
for head in "${heads[@]}"; do
  run=$out/run-$head
  CANDLE_NUM_THREADS=${THREADS:-2} "$bin" fit --data "$data" --run "$run" --backbone "${BACKBONE:-small}" \
    --head "$head" --epochs "${EPOCHS:-12}" --warmup-epochs 2 --lr 1e-3 --patience 0 --seed 0 \
    --workers 1 > "$out/fit-$head.log" 2>&1
  "$bin" eval --run "$run" > "$out/eval-val-$head.txt"
  "$bin" eval --run "$run" --split test > "$out/eval-test-$head.txt"
done
