#!/usr/bin/env python3
"""What int8 costs in accuracy: a model's test-split scores in our runtime, f32 against int8.

    python3 benches/int8_accuracy.py --data synth-full [--model models/edge-reid.onnx] \
        [--calibration 256] [--threads 2]

The int8 copy is written by `edge-reid-train quantize` (int8 convolutions in the QDQ form,
calibrated on `--calibration` images of the data's `bounding_box_train/`, never the test split).
Both files are then scored by `edge-reid eval --data DATA` (release builds, `--threads`), which
prints the paper's Table 1 and Table 2; this script prints both outputs and a Markdown table of
the scores and their differences.
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import REPO, cpu_model  # noqa: E402


def evaluate(binary, model, data, threads):
    """`edge-reid eval`'s output, its scores (mAP, rank-1, attribute accuracies) and seconds."""
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
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "edge-reid", "-p",
                    "edge-reid-train", "--bins"], cwd=REPO, check=True)
    binaries = REPO / "target/release"
    with tempfile.TemporaryDirectory() as tmp:
        int8 = Path(tmp) / f"{args.model.stem}-int8.onnx"
        made = subprocess.run([str(binaries / "edge-reid-train"), "quantize", "--model",
                               str(args.model), "--data", str(args.data), "--out", str(int8),
                               "--calibration", str(args.calibration)],
                              check=True, capture_output=True, text=True).stdout
        print(made)
        rows = []
        for label, model in [("f32", args.model), ("int8", int8)]:
            out, scores, took = evaluate(binaries / "edge-reid", model, args.data, args.threads)
            print(f"## {label}: {model.name} ({took:.0f} s)\n\n{out}")
            rows.append((label, scores))
    print(f"CPU: {cpu_model()}\n")
    names = list(rows[0][1])
    print("| model | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, scores in rows:
        print(f"| {label} | " + " | ".join(f"{scores[n]:.2f}" for n in names) + " |")
    f32, q = rows[0][1], rows[1][1]
    print("| int8 - f32 | " + " | ".join(f"{q[n] - f32[n]:+.2f}" for n in names) + " |")


if __name__ == "__main__":
    main()
