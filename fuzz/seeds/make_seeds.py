#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/seeds/<target>/) from the test fixtures and from
inputs built here by hand, independently of the Rust code (the gallery files follow the format
table of src/gallery/file_format.rs; the model is built with the `onnx` package around the card of
tests/fixtures/models/small-64x32.onnx). Run from the repository root:

    python3 fuzz/seeds/make_seeds.py
"""
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "fuzz" / "seeds"
FIXTURES = ROOT / "tests" / "fixtures"
rng = random.Random(16)


def put(target, name, data):
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def gallery(version, dim, metric, identities):
    """A gallery file: identities are (name, enrolled_ms, rows)."""
    body = struct.pack("<IB3x", dim, metric) + bytes(range(32))
    rows = sum(len(r) for _, _, r in identities)
    body += struct.pack("<QQ", len(identities), rows)
    for name, enrolled, vectors in identities:
        raw = name.encode()
        body += struct.pack("<H", len(raw)) + raw
        if version >= 3:
            body += struct.pack("<q", enrolled)
        body += struct.pack("<Q", len(vectors))
        for v in vectors:
            body += struct.pack(f"<{dim}f", *v)
    length = 24 + len(body) + 4
    head = b"EREIDGAL" + struct.pack("<IQ", version, length)
    head += struct.pack("<I", zlib.crc32(head))
    content = head + body
    return content + struct.pack("<I", zlib.crc32(content))


def vectors(n, dim):
    return [[rng.uniform(-1, 1) for _ in range(dim)] for _ in range(n)]


def onnx_seed():
    """A tiny model with the fixture's card: pooled channels -> one MatMul + Add per output."""
    fixture = onnx.load(FIXTURES / "models" / "small-64x32.onnx")
    card = next(p.value for p in fixture.metadata_props if p.key == "edge_reid.card")
    outputs = [(o.name, o.type.tensor_type.shape.dim[1].dim_value) for o in fixture.graph.output]
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
    ]
    inits = []
    for name, width in outputs:
        w = np.random.default_rng(len(inits)).standard_normal((3, width)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"{name}_w"),
                  numpy_helper.from_array(np.zeros(width, np.float32), f"{name}_b")]
        nodes += [helper.make_node("MatMul", ["flat", f"{name}_w"], [f"{name}_mm"]),
                  helper.make_node("Add", [f"{name}_mm", f"{name}_b"], [name])]
    graph = helper.make_graph(
        nodes, "seed",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 64, 32])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", w]) for n, w in outputs],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"edge_reid.card": card})
    onnx.checker.check_model(model)
    return model.SerializeToString(), card


def main():
    # Gallery files; the first byte tells the target whether to repair length and CRCs.
    v3 = gallery(3, 4, 0, [("alice", 1764547200000, vectors(2, 4)), ("bob", 0, vectors(1, 4))])
    v2 = gallery(2, 3, 1, [("carol", 0, vectors(1, 3))])
    put("gallery_file", "v3", b"\x00" + v3)
    put("gallery_file", "v2", b"\x00" + v2)
    put("gallery_file", "v3_repair", b"\x01" + v3)

    for mat in sorted(FIXTURES.glob("*.mat")):
        put("mat_file", mat.name, mat.read_bytes())
        if mat.name.startswith("market"):
            put("annotations_mat", mat.name, mat.read_bytes())

    header = ("id,age,backpack,bag,handbag,clothes,down,up,hair,hat,gender,upblack,upwhite,upred,"
              "uppurple,upyellow,upgray,upblue,upgreen,downblack,downwhite,downpink,downpurple,"
              "downyellow,downgray,downblue,downgreen,downbrown")
    row = "2,1,1,2,1,2,1,1,2,1,1,1,2,1,1,1,1,1,2,1,1,1,1,1,1,1,1,1"
    put("annotations_csv", "two_rows.csv", f"{header}\n{row}\n7,{row[2:]}\n".encode())
    put("annotations_csv", "multicolour.csv",
        f"\ufeff{header},upmulticolor,downmulticolor\r\n{row},1,1\r\n".encode())

    model, card = onnx_seed()
    put("onnx_model", "tiny_carded.onnx", model)
    put("onnx_model", "tiny_yolo_no_card.onnx", (FIXTURES / "models" / "tiny-yolo.onnx").read_bytes())
    put("model_card", "small_64x32.json", card.encode())

    frames = FIXTURES / "frames"
    size = lambda w, h: struct.pack("<HH", w, h)
    put("mjpeg_frame", "testsrc2", size(64, 48) + (frames / "testsrc2_64x48.jpg").read_bytes())
    put("mjpeg_frame", "testsrc2_nodht", size(64, 48) + (frames / "testsrc2_64x48_nodht.jpg").read_bytes())
    put("yuyv_frame", "random", size(32, 16) + struct.pack("<H", 64) + (frames / "random_32x16.yuyv").read_bytes())
    put("yuyv_frame", "testsrc2", size(64, 48) + struct.pack("<H", 128) + (frames / "testsrc2_64x48.yuyv").read_bytes())

    put("raw_frames", "three_and_a_bit", bytes([4, 2]) + bytes(rng.randrange(256) for _ in range(3 * 24 + 5)))
    put("raw_frames", "whole", bytes([3, 3]) + bytes(54))

    for i, text in enumerate(["640x480", " 64X48 ", "8192x8192", "10,20,64,128", "0, 0, 1, 1", "1.2", "inf", "1e-3"]):
        put("cli_values", f"value{i}", text.encode())

    # Tables of floats: plain boxes (cx, cy, w, h, person, other) and NaN / infinite values.
    header = bytes([1]) + struct.pack("<HH", 640, 480) + bytes([159, 159, 64, 115])
    table = [320, 100, 40, 120, 0.9, 0.1, 330, 105, 42, 118, 0.8, 0.05, 10, 10, 4, 4, 0.3, 0.6]
    put("yolo_output", "boxes", header + struct.pack(f"<{len(table)}f", *table))
    odd = [float("nan"), 1, 1, 1, 1, 0, float("inf"), 5, -float("inf"), 9, 0.5, 0.2]
    put("yolo_output", "non_finite", header + struct.pack(f"<{len(odd)}f", *odd))

    put("geometry", "overlap", struct.pack("<10I", 10, 10, 20, 40, 15, 12, 20, 40, 64, 48))
    put("geometry", "huge", struct.pack("<10I", 2**32 - 5, 0, 2**32 - 1, 2**32 - 1, 0, 0, 2**32 - 1, 2**32 - 1, 2**32 - 1, 2**32 - 1))

    # Tracker: settings, then frames of (gap, count, boxes, four embedding bytes, poison).
    walk = bytes([51, 0, 64, 2, 5, 10, 2])
    for f in range(30):
        walk += bytes([0, 2, 10 + f, 20, 20, 60, 120, 30 + f, 20, 60, 10, 20, 30, 40, 0])
    put("tracker", "two_walkers", walk)
    put("tracker", "random", bytes(rng.randrange(256) for _ in range(600)))


if __name__ == "__main__":
    main()
