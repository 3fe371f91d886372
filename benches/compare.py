#!/usr/bin/env python3
"""Per-crop latency of our runtime against onnxruntime: same ONNX files, same crops, one run.

    pip install onnxruntime numpy
    python3 benches/compare.py [MODEL.onnx ...] [--threads 1,2] [--rounds 20] [--crops 16] [--int8]

MODEL defaults to the shipped `models/edge-reid.onnx`. Our runtime is timed through the library's
own model path (`Model::load` and `Model::run` at batch 1, `examples/model_latency.rs`, built here
in release), onnxruntime from PyPI on its CPU provider with `intra_op_num_threads` set and
sequential execution. Both run the same crops (the synthetic camera's people, cut and normalised
by our preprocessing, written by the example as `.npy`), one crop per run; a round runs every crop
once, after a warm-up round, and each runtime runs its rounds in a fresh process. On more than
one thread ours is also timed with all crops in one call, run side by side (one crop per thread
at a time, `Model::run_crops`: throughput per crop, as the pipeline runs a frame's people).
Prints the CPU model, the versions and a Markdown table: per-crop median and min-max over rounds for each, and
the ratio ours / onnxruntime (below 1: ours is faster). A file is called int8 where its graph holds
quantised operators; its size is in multiply-adds per crop (`Conv`, `Gemm`, `MatMul`, counted from
onnx's shape inference).

`--int8` also times int8 copies of each model made here by onnxruntime's static quantiser, in both
standard forms (QOperator: `QLinearConv`/`QLinearMatMul`; QDQ: `QuantizeLinear`/`DequantizeLinear`
around float `Conv`/`MatMul`), per-channel symmetric int8 weights, activations calibrated on the
same crops: u8 with a zero point (onnxruntime's fast path) or symmetric s8. `Gemm` stays float
(its quantised form, `QGemm`, is not a standard operator).
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


def gmacs(model):
    """Multiply-adds of one crop in the graph's convolutions and matrix products (float or
    quantised), in billions, from onnx's shape inference at batch 1: a convolution costs its
    output elements times its weight's input channels (per group) and kernel area, a product its
    output elements times the summed dimension."""
    import math
    import onnx
    graph = onnx.load(str(model))
    for value in graph.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].dim_param:
            dims[0].dim_value = 1
    graph = onnx.shape_inference.infer_shapes(graph)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*graph.graph.value_info, *graph.graph.input, *graph.graph.output]}
    shapes.update({i.name: list(i.dims) for i in graph.graph.initializer})
    # Where each operator's weight (convolutions) or left operand (products) is.
    weight = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
    products = {"Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"}
    total = 0
    for node in graph.graph.node:
        out = math.prod(shapes[node.output[0]])
        if node.op_type in weight:
            total += out * math.prod(shapes[node.input[weight[node.op_type]]][1:])
        elif node.op_type in products:
            trans_a = any(a.name == "transA" and a.i for a in node.attribute)
            total += out * shapes[node.input[0]][-2 if trans_a else -1]
    return total / 1e9


def build():
    subprocess.run(["cargo", "build", "--quiet", "--release", "--example", EXAMPLE],
                   cwd=REPO, check=True)
    return REPO / "target" / "release" / "examples" / EXAMPLE


def ours(binary, model, threads, rounds, crops, write_crops=None, side_by_side=False):
    cmd = [str(binary), str(model), "--threads", str(threads), "--rounds", str(rounds),
           "--crops", str(crops)]
    if write_crops:
        cmd += ["--write-crops", str(write_crops)]
    if side_by_side:
        cmd.append("--side-by-side")
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


def quantised(model, crops_file, out_dir):
    """int8 copies of `model` in the QOperator and QDQ forms, as (label, path)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    # The quantiser wants f32 weights: fold the half-float initializers' casts first.
    graph = onnx.load(str(model))
    initializers = {i.name: i for i in graph.graph.initializer}
    nodes = []
    for node in graph.graph.node:
        if node.op_type == "Cast" and node.input[0] in initializers:
            weights = numpy_helper.to_array(initializers[node.input[0]]).astype(np.float32)
            graph.graph.initializer.append(numpy_helper.from_array(weights, node.output[0]))
        else:
            nodes.append(node)
    del graph.graph.node[:]
    graph.graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    kept = [i for i in graph.graph.initializer if i.name in used]
    del graph.graph.initializer[:]
    graph.graph.initializer.extend(kept)
    f32 = out_dir / f"{model.stem}-f32.onnx"
    onnx.save(graph, str(f32))
    crops = np.load(crops_file)
    constants = {i.name for i in graph.graph.initializer}
    input_name = next(i.name for i in graph.graph.input if i.name not in constants)

    class Crops(CalibrationDataReader):
        def __init__(self):
            self.left = iter([{input_name: crop[None]} for crop in crops])

        def get_next(self):
            return next(self.left, None)

    made = []
    forms = [("QOperator, u8 activations", QuantFormat.QOperator, QuantType.QUInt8),
             ("QOperator, s8 activations", QuantFormat.QOperator, QuantType.QInt8),
             ("QDQ, s8 activations", QuantFormat.QDQ, QuantType.QInt8)]
    for n, (label, form, activations) in enumerate(forms):
        out = out_dir / f"{model.stem}-int8-{n}.onnx"
        quantize_static(str(f32), str(out), Crops(), quant_format=form, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=activations,
                        op_types_to_quantize=["Conv", "MatMul"],
                        extra_options={"WeightSymmetric": True,
                                       "ActivationSymmetric": activations == QuantType.QInt8})
        # The quantiser records the calibration batch (1) as every value's shape; our runtime
        # plans for its own batch, so those shapes go, and the card stays the only metadata.
        q = onnx.load(str(out))
        del q.graph.value_info[:]
        card = [(p.key, p.value) for p in q.metadata_props if p.key == "edge_reid.card"]
        del q.metadata_props[:]
        for key, value in card:
            q.metadata_props.add(key=key, value=value)
        onnx.save(q, str(out))
        made.append((f"{model.name} int8 {label}", out))
    return made


def spread(values):
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", type=Path, default=[REPO / "models/edge-reid.onnx"])
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--int8", action="store_true",
                        help="also time int8 copies made by onnxruntime's quantiser")
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
        files = []
        for model in args.models:
            crops_file = Path(tmp) / f"{model.stem}-crops.npy"
            ours(binary, model, 1, 1, args.crops, write_crops=crops_file)
            files.append((model.name, model, crops_file))
            if args.int8:
                files += [(label, path, crops_file)
                          for label, path in quantised(model, crops_file, Path(tmp))]
        for name, model, crops_file in files:
            kind = precision(model)
            size = f"{gmacs(model):.2f}"
            for t in threads:
                ort_ms, ort_load = onnxruntime(model, t, args.rounds, crops_file)
                for side_by_side in [False, True] if t > 1 else [False]:
                    our_ms, our_load = ours(binary, model, t, args.rounds, args.crops,
                                            side_by_side=side_by_side)
                    ratio = statistics.median(our_ms) / statistics.median(ort_ms)
                    how = f"{t} crops side by side" if side_by_side else "one crop per call"
                    rows.append(f"| `{name}` | {kind} | {size} | {t} | {how} | {spread(our_ms)} | "
                                f"{spread(ort_ms)} | **{ratio:.2f}x** | {our_load:.2f} / "
                                f"{ort_load:.2f} |")
    print("| model | precision | GMACs per crop | threads | ours: how | ours, ms per crop: median (min-max) | "
          "onnxruntime, ms per crop (one per call) | ours / onnxruntime | "
          "load s (ours / onnxruntime) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
