#!/usr/bin/env bash
# Training speed before and after a change, back to back in one run on this machine: builds
# examples/train_speed.rs (release) at git revision BEFORE and at the working tree, then times
# BEFORE, the working tree with glibc's default allocator settings, the working tree as the
# `edge-reid-train` binary runs (malloc::retain_freed_memory), the same with candle's elementwise
# thread pool off (CANDLE_NUM_THREADS=1), and PyTorch (train/bench/pytorch_speed.py, 2 threads).
#
#   train/bench/compare_speed.sh [BEFORE] [train_speed arguments...]
#   train/bench/compare_speed.sh 6fd82b1 --backbone small resnet18 --steps 3
#
# BEFORE defaults to 6fd82b1 (the harness, before the CPU convolution and pool ops).
set -euo pipefail
before=${1:-6fd82b1}
shift || true
root=$(git rev-parse --show-toplevel)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/src"
git -C "$root" archive "$before" | tar -x -C "$tmp/src"
build() {
    (cd "$1" && cargo build --quiet --release -p edge-reid-train --example train_speed)
    cp "$CARGO_TARGET_DIR/release/examples/train_speed" "$2"
}
build "$tmp/src" "$tmp/before"
build "$root" "$tmp/after"
backbones=$(printf '%s\n' "$@" | grep -E '^(small|resnet18)$' || echo "small resnet18")
uptime
echo "== before ($before)"
"$tmp/before" "$@"
echo "== after, default malloc"
"$tmp/after" --default-malloc "$@"
echo "== after"
"$tmp/after" "$@"
echo "== after, CANDLE_NUM_THREADS=1"
CANDLE_NUM_THREADS=1 "$tmp/after" "$@"
for b in $backbones; do
    python3 "$root/train/bench/pytorch_speed.py" --backbone "$b" --threads 2 --steps 3 --warmup 1
done
uptime
