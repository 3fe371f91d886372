#!/usr/bin/env python3
"""Per-crop latency of our runtime against onnxruntime: same ONNX files, same crops, one run.

    pip install onnxruntime numpy
    python3 benches/compare.py [MODEL.onnx ...] [--threads 1,2] [--rounds 20] [--crops 16]

MODEL defaults to the shipped `models/edge-reid.onnx`. Our runtime is timed through the library's
own model path (`Model::load` and `Model::run` at batch 1, `examples/model_latency.rs`, built here
in release), onnxruntime from PyPI on its CPU provider with `intra_op_num_threads` set and
sequential execution. Both run the same crops (the synthetic camera's people, cut and normalised
by our preprocessing, written by the example as `.npy`), one crop per run; a round runs every crop
once, after a warm-up round, and each runtime runs its rounds in a fresh process. Prints the CPU
model, the versions and a Markdown table: per-crop median and min-max over rounds for each, and
the ratio ours / onnxruntime (below 1: ours is faster). A file is called int8 where its graph holds
quantised operators.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = "model_latency"
QUANTISED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
                 "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def cpu_flags():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return "?"


def precision(model):
    import onnx
    ops = {n.op_type for n in onnx.load(str(model), load_external_data=False).graph.node}
    return "int8" if ops & QUANTISED_OPS else "f32"


def build():
    subprocess.run(["cargo", "build", "--quiet", "--release", "--example", EXAMPLE],
                   cwd=REPO, check=True)
    return REPO / "target" / "release" / "examples" / EXAMPLE


def ours(binary, model, threads, rounds, crops, write_crops=None):
    cmd = [str(binary), str(model), "--threads", str(threads), "--rounds", str(rounds),
           "--crops", str(crops)]
    if write_crops:
        cmd += ["--write-crops", str(write_crops)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    return report["ms_per_crop"], report["load_s"]


def onnxruntime(model, threads, rounds, crops_file):
    """The same protocol as `examples/model_latency.rs`, run in a child so each side starts fresh."""
    code = f"""
import json, sys, time
import numpy as np, onnxruntime as ort
crops = np.load({str(crops_file)!r})
options = ort.SessionOptions()
options.intra_op_num_threads = {threads}
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
started = time.perf_counter()
session = ort.InferenceSession({str(model)!r}, options, providers=["CPUExecutionProvider"])
load_s = time.perf_counter() - started
name = session.get_inputs()[0].name
rounds = []
for r in range({rounds} + 1):
    started = time.perf_counter()
    for crop in crops:
        session.run(None, {{name: crop[None]}})
    if r:
        rounds.append((time.perf_counter() - started) * 1e3 / len(crops))
print(json.dumps({{"ms_per_crop": rounds, "load_s": load_s}}))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    report = json.loads(out)
    return report["ms_per_crop"], report["load_s"]


def spread(values):
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", type=Path, default=[REPO / "models/edge-reid.onnx"])
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--crops", type=int, default=16)
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]

    import numpy
    import onnxruntime as ort
    binary = build()
    print(f"CPU: {cpu_model()} ({cpu_flags()}), {len(os.sched_getaffinity(0))} "
          f"cores; onnxruntime {ort.__version__}, numpy {numpy.__version__}; "
          f"{args.rounds} rounds of {args.crops} crops, batch 1; {time.strftime('%Y-%m-%d')}\n")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            crops_file = Path(tmp) / "crops.npy"
            ours(binary, model, 1, 1, args.crops, write_crops=crops_file)
            kind = precision(model)
            for t in threads:
                our_ms, our_load = ours(binary, model, t, args.rounds, args.crops)
                ort_ms, ort_load = onnxruntime(model, t, args.rounds, crops_file)
                ratio = statistics.median(our_ms) / statistics.median(ort_ms)
                rows.append(f"| `{model.name}` | {kind} | {t} | {spread(our_ms)} | "
                            f"{spread(ort_ms)} | **{ratio:.2f}x** | {our_load:.2f} / "
                            f"{ort_load:.2f} |")
    print("| model | precision | threads | ours, ms per crop: median (min-max) | "
          "onnxruntime, ms per crop | ours / onnxruntime | load s (ours / onnxruntime) |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
