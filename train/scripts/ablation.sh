#!/usr/bin/env bash
# The network choices of the paper's text against the earlier ones, trained side by side on one
# synthetic set, with the settings of the PyTorch comparison (small backbone, 15 epochs, P=16 K=4,
# Adam 3e-4, weight decay 5e-4, margin 0.3, no warm-up, one thread each), printed as a table.
#
#   train/scripts/ablation.sh OUT [VARIANT...]
#
# Variants (default: the first five): sa (the paper's: grid pooling, no embedding norm),
# sa-global, sa-norm, sa-earlier (global pooling and the embedding norm: the network before the
# change), baseline, convhead; with -warmup (sa-warmup, baseline-warmup, ...) the run has fit's
# default warm-up (a tenth of the epochs) instead of none. torch-V trains variant V's run again with
# train/bench/pytorch_trainer.py (same config and split; list V before it, e.g. `sa torch-sa`).
# Environment: EPOCHS (15), IDENTITIES (300), JOBS (2 runs at a time), SEED (0: fit's seed, which
# draws the validation split, the initialisation and the batches; the torch- runs take it from the
# run they copy), TORCH_ARGS (more options of pytorch_trainer.py, e.g. `--sampler fit`).
set -euo pipefail
out=${1:?usage: ablation.sh OUT [VARIANT...]}
shift
[ $# -gt 0 ] && variants=("$@") || variants=(sa sa-global sa-norm sa-earlier baseline)
root=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release --manifest-path "$root/Cargo.toml" -p edge-reid-train >&2
bin=${CARGO_TARGET_DIR:-$root/target}/release/edge-reid-train
data=$out/synth-${IDENTITIES:-300}
mkdir -p "$out"
[ -f "$data/synth.json" ] || "$bin" synth --out "$data" --identities "${IDENTITIES:-300}" --seed 77
args() {
  case $1 in
    *-warmup) args "${1%-warmup}" ;;
    sa) echo --head sa ;;
    sa-global) echo --head sa --branch-pool global ;;
    sa-norm) echo --head sa --embedding-norm true ;;
    sa-earlier) echo --head sa --branch-pool global --embedding-norm true ;;
    baseline) echo --head baseline ;;
    convhead) echo --head convhead ;;
    torch-*) args "${1#torch-}" ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}
train() {
  local v=$1 run=$out/run-$1
  if [[ $v == torch-* ]]; then
    local like=$out/run-${v#torch-}
    # fit writes the split before its first epoch (seconds after it starts).
    for _ in $(seq 300); do [ -f "$like/split.json" ] && break; sleep 2; done
    [ -f "$like/split.json" ] || { echo "$v: no $like/split.json; see $out/fit-${v#torch-}.log" >&2; return 1; }
    # shellcheck disable=SC2086
    python3 "$root/train/bench/pytorch_trainer.py" --like "$like" --out "$run" --threads 1 ${TORCH_ARGS:-} \
      > "$out/fit-$v.log" 2>&1
  else
    # shellcheck disable=SC2046
    CANDLE_NUM_THREADS=1 "$bin" fit --data "$data" --run "$run" --backbone small $(args "$v") \
      --epochs "${EPOCHS:-15}" $([[ $v == *-warmup ]] || echo --warmup-epochs 0) --lr 3e-4 \
      --weight-decay 5e-4 --margin 0.3 \
      --p 16 --k 4 --patience 0 --seed "${SEED:-0}" --workers 1 > "$out/fit-$v.log" 2>&1
  fi
  "$bin" eval --run "$run" > "$out/eval-val-$v.txt"
  "$bin" eval --run "$run" --split test > "$out/eval-test-$v.txt"
}
for v in "${variants[@]}"; do
  args "$v" > /dev/null
  [[ $v == torch-* ]] || rm -f "$out/run-$v/split.json"
done
for v in "${variants[@]}"; do
  train "$v" &
  while [ "$(jobs -rp | wc -l)" -ge "${JOBS:-2}" ]; do wait -n; done
done
wait
echo "| variant | val mAP | val attributes (balanced) | test mAP / rank-1 | img/s |"
echo "|---|---|---|---|---|"
for v in "${variants[@]}"; do
  val=$out/eval-val-$v.txt test=$out/eval-test-$v.txt
  avg=$(awk '/^average/ {printf "%s%% (%s%%)", $3, $4}' "$val")
  vmap=$(awk '/mAP/ {getline; print $1; exit}' "$val")
  tmap=$(awk '/mAP/ {getline; print $1 "% / " $2 "%"; exit}' "$test")
  speed=$(grep -o '[0-9.]* img/s' "$out/fit-$v.log" | awk '{s += $1; n++} END {if (n) printf "%d", s / n}')
  echo "| $v | $vmap% | $avg | $tmap | $speed |"
done
