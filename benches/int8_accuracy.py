#!/usr/bin/env python3
"""What int8 costs in accuracy: a model's test-split scores in our runtime, f32 against int8.

    pip install onnxruntime onnx numpy pillow
    python3 benches/int8_accuracy.py --data synth-full [--model models/edge-reid.onnx] \
        [--calibration 256] [--threads 2]

The int8 copy is onnxruntime's static quantiser's, as `benches/compare.py --int8` makes it (QDQ
form: per-channel symmetric int8 weights of every `Conv` and `MatMul`, symmetric s8 activations),
calibrated on `--calibration` images drawn at random (seed 0) from the data's training split
(`bounding_box_train/`, never the test split), cut as the runtime cuts a whole image (resized
bilinearly to the card's input, the card's mean and standard deviation). Both files are then
scored by `edge-reid eval --data DATA` (release build, `--threads`), which prints the paper's
Table 1 and Table 2; this script prints both outputs and a Markdown table of the scores and their
differences.
"""

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import REPO, cpu_model, quantised  # noqa: E402


def card_of(model):
    import onnx
    graph = onnx.load(str(model))
    return json.loads(next(p.value for p in graph.metadata_props if p.key == "edge_reid.card"))


def calibration_crops(data, card, count, out):
    """`count` training images as the runtime feeds them, saved as one `[n, 3, H, W]` .npy."""
    import numpy as np
    from PIL import Image
    spec = card["input"]
    images = sorted((data / "bounding_box_train").glob("*.jpg"))
    if not images:
        sys.exit(f"no images in {data / 'bounding_box_train'}")
    random.Random(0).shuffle(images)
    mean = np.array(spec["mean"], np.float32)[:, None, None]
    std = np.array(spec["std"], np.float32)[:, None, None]
    crops = []
    for path in images[:count]:
        image = Image.open(path).convert("RGB").resize((spec["width"], spec["height"]),
                                                       Image.BILINEAR)
        chw = np.asarray(image, np.float32).transpose(2, 0, 1) / 255.0
        crops.append((chw - mean) / std)
    np.save(out, np.stack(crops).astype(np.float32))


def evaluate(binary, model, data, threads):
    """`edge-reid eval`'s output and its scores: mAP, rank-1, mean attribute accuracy."""
    started = time.monotonic()
    out = subprocess.run([str(binary), "eval", "--data", str(data), "--model", str(model),
                          "--threads", str(threads)],
                         check=True, capture_output=True, text=True).stdout
    average = re.search(r"^average\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", out, re.M)
    reid = re.search(r"mAP\s+rank-1.*\n\s*([\d.]+)\s+([\d.]+)", out)
    if not (average and reid):
        sys.exit(f"unexpected eval output:\n{out}")
    scores = {"mAP": float(reid.group(1)), "rank-1": float(reid.group(2)),
              "attribute accuracy": float(average.group(2)),
              "balanced attribute accuracy": float(average.group(3))}
    return out, scores, time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=REPO / "models/edge-reid.onnx")
    parser.add_argument("--calibration", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--quiet", "--release", "--bin", "edge-reid"], cwd=REPO,
                   check=True)
    binary = REPO / "target/release/edge-reid"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        crops = tmp / "calibration.npy"
        calibration_crops(args.data, card_of(args.model), args.calibration, crops)
        int8 = next(path for label, path in quantised(args.model, crops, tmp) if "QDQ" in label)
        rows = []
        for label, model in [("f32", args.model), ("int8 QDQ", int8)]:
            out, scores, took = evaluate(binary, model, args.data, args.threads)
            print(f"## {label}: {model.name} ({took:.0f} s)\n\n{out}")
            rows.append((label, scores))
    print(f"CPU: {cpu_model()}; {args.calibration} calibration images from "
          f"{args.data / 'bounding_box_train'}\n")
    names = list(rows[0][1])
    print("| model | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, scores in rows:
        print(f"| {label} | " + " | ".join(f"{scores[n]:.2f}" for n in names) + " |")
    f32, q = rows[0][1], rows[1][1]
    print("| int8 - f32 | " + " | ".join(f"{q[n] - f32[n]:+.2f}" for n in names) + " |")


if __name__ == "__main__":
    main()
