#!/usr/bin/env bash
# Regenerates train/tests/fixtures/network/: for each head variant, a checkpoint that
# `edge-reid-train fit` writes (tiny backbone, a few batches of a synthetic set, so the batch norms
# have statistics of their own), and what the independent PyTorch build (torch_network.py) computes
# from it; plus torchvision's ResNet18 and MobileNetV2 (made into our light backbone) on formula
# weights. Needs torch, torchvision and safetensors.
#   bash train/tests/reference/make_network_fixtures.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=train/tests/fixtures/network
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
train=(cargo run --release -q -p edge-reid-train --)
"${train[@]}" synth --out "$tmp/data" --identities 24 --seed 5
# Every variant of the code: the baseline with the embedding's norm (its default), convhead with
# the earlier global pooling, sa with the paper's pooled grid (the defaults of both).
for head in baseline convhead sa; do
  pool=grid
  [ "$head" = convhead ] && pool=global
  "${train[@]}" fit --data "$tmp/data" --run "$tmp/$head" --backbone tiny --head "$head" \
    --branch-pool "$pool" --input-size 32x64 --embedding-dim 32 --person-head \
    --junk-per-batch 4 --epochs 1 --max-batches 3 --p 4 --k 4 --warmup-epochs 0 --workers 1
  cp "$tmp/$head/best.safetensors" "$out/$head.safetensors"
  python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["net"], indent=2))' \
    "$tmp/$head/config.json" > "$out/$head.net.json"
  python3 train/tests/reference/torch_network.py heads "$out/$head.safetensors" \
    "$out/$head.net.json" "$out/$head.expected.safetensors"
done
python3 train/tests/reference/torch_network.py resnet18 "$out/resnet18.expected.safetensors"
python3 train/tests/reference/torch_network.py mobilenetv2 "$out/mobilenetv2.expected.safetensors"
ls -l "$out"
