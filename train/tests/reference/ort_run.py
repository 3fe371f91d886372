"""Runs an exported edge-reid ONNX file with onnxruntime (an independent runtime) and prints its
outputs as JSON, after `onnx.checker.check_model` (full check, with shape inference) when the
`onnx` package is installed.

Usage: python3 ort_run.py MODEL.onnx INPUT.f32 N,C,H,W
  INPUT.f32 holds the input tensor as raw little-endian f32, row-major, of the given shape.
Prints: {"checker": "passed" | "skipped: ...", "outputs": [{"name", "shape", "data"}, ...]}
with the outputs in graph order. Called by the edge-reid-train export tests.

The graph runs as written, without onnxruntime's graph optimisations: with them it fuses the
QuantizeLinear/DequantizeLinear pairs of an int8 file into integer kernels that round differently
(2% of an output's scale on the tests' int8 file, and on the shipped model's int8 copy between
its own optimised and unoptimised runs), so it would no longer check what the file says.
"""
import json
import sys

import numpy as np
import onnxruntime as ort


def main():
    model, raw, shape = sys.argv[1], sys.argv[2], [int(d) for d in sys.argv[3].split(",")]
    try:
        import onnx
    except ImportError:
        checker = "skipped: the onnx package is not installed"
    else:
        onnx.checker.check_model(onnx.load(model), full_check=True)
        checker = "passed"
    x = np.fromfile(raw, dtype="<f4").reshape(shape)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {session.get_inputs()[0].name: x})
    outputs = [
        {"name": n, "shape": list(v.shape), "data": v.astype(np.float64).ravel().tolist()}
        for n, v in zip(names, values)
    ]
    print(json.dumps({"checker": checker, "outputs": outputs}))


if __name__ == "__main__":
    main()
