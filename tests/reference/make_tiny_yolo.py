"""Writes tests/fixtures/models/tiny-yolo.onnx: a stand-in person detector in the Ultralytics
YOLOv8 export layout (input `images` [1, 3, 32, 32], output `output0` [1, 4 + 2 classes, 7]) whose
output is a constant candidate table (plus 0 * mean(images), so the graph uses its input).

Run from the repository root: `python3 tests/reference/make_tiny_yolo.py` (needs `onnx`, `numpy`).
The CLI test `detector_boxes_come_back_in_frame_pixels` in tests/runtime/cli.rs knows the table.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Columns are candidates: cx, cy, w, h (input pixels), person score, other-class score; the
# all-zero ones only make the table as long as the layout check wants (more candidates than rows).
TABLE = np.array(
    [
        [16.0, 8.0, 24.0, 0, 0, 0, 0],  # cx
        [16.0, 12.0, 20.0, 0, 0, 0, 0],  # cy
        [8.0, 6.0, 6.0, 0, 0, 0, 0],  # w
        [16.0, 12.0, 12.0, 0, 0, 0, 0],  # h
        [0.9, 0.6, 0.1, 0, 0, 0, 0],  # person
        [0.1, 0.1, 0.9, 0, 0, 0, 0],  # another class
    ],
    dtype=np.float32,
)[None]

graph = helper.make_graph(
    [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[0, 1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["table", "nothing"], ["output0"]),
    ],
    "tiny-yolo",
    [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
    [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(TABLE.shape))],
    [
        numpy_helper.from_array(TABLE, "table"),
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
    ],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, "tests/fixtures/models/tiny-yolo.onnx")
