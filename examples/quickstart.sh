#!/usr/bin/env bash
# The whole training path on a small synthetic set, on CPU, in a few minutes:
# synth -> fit -> eval -> export (the export checks candle against tract through the runtime's loader).
# Usage: bash examples/quickstart.sh [WORKDIR]   (default: target/quickstart, replaced on each run)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-target/quickstart}

cargo build --release -p edge-reid-train
train=target/release/edge-reid-train

rm -rf "$work"
"$train" synth --out "$work/data" --identities 80 --seed 1
"$train" fit --data "$work/data" --run "$work/run" --backbone small --person-head \
    --epochs 4 --warmup-epochs 1 --p 8 --k 4 --lr 1e-3
"$train" eval --run "$work/run"
"$train" export --run "$work/run" --out "$work/edge-reid-small.onnx"
