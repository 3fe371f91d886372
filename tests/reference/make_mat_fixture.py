"""Writes the MAT-file fixtures of `src/dataset/market/mat.rs` and `src/dataset/market/annotations.rs`.

Run from the repository root:  python3 tests/reference/make_mat_fixture.py
(needs numpy and scipy). It writes into tests/fixtures/:

- market_small.mat, market_small_compressed.mat: scipy.io.savemat (plain and zlib-compressed) of a
  tiny `market_attribute` struct laid out like Lin et al.'s file (fields `train` and `test`, each a
  1x1 struct of 27 1 x n double arrays in Lin's field order plus `image_index`, a 1 x n cell of
  char arrays, identities deliberately not sorted), and `extra` (a 2x3 uint8 matrix, a 2x1 cell).
- market_multicolour.mat: identity 0004 with two upper-body colours set to 2 (upblack, upred) and
  identity 0008 with no lower-body colour set (multicolour clothing, as real files have): both
  load, those colours unlabelled.
- market_bad_colour.mat (identity 0004 with upred = 3) and market_missing_field.mat (`test`
  lacks `hat`): malformed content the loader must reject.
- matlab_style.mat: a struct `s` written byte by byte the way MATLAB stores it (a double array
  stored as miUINT8, a char array stored as miUINT16, small data elements, compressed), then read
  back with scipy.io.loadmat to prove the bytes are a valid MAT file.

It prints the class-index labels (ATTRIBUTES order) the Rust tests expect for each identity.
"""

import struct
import zlib
from pathlib import Path

import numpy as np
import scipy.io

OUT = Path(__file__).resolve().parent.parent / "fixtures"

LIN_FIELDS = ["age", "backpack", "bag", "handbag", "downblack", "downblue", "downbrown", "downgray",
              "downgreen", "downpink", "downpurple", "downwhite", "downyellow", "upblack", "upblue",
              "upgreen", "upgray", "uppurple", "upred", "upwhite", "upyellow", "clothes", "down",
              "up", "hair", "hat", "gender"]
SCALAR = ["age", "backpack", "bag", "handbag", "clothes", "down", "up", "hair", "hat", "gender"]
UP = ["black", "white", "red", "purple", "yellow", "gray", "blue", "green"]
DOWN = ["black", "white", "pink", "purple", "yellow", "gray", "blue", "green", "brown"]

# identity -> (age..gender as file values, up colour, down colour)
TRAIN = {
    "0007": ([2, 1, 2, 1, 2, 1, 2, 1, 1, 2], "red", "brown"),
    "0002": ([3, 2, 1, 1, 2, 2, 2, 1, 1, 1], "black", "blue"),
    "0010": ([1, 1, 1, 2, 1, 1, 1, 2, 2, 2], "green", "pink"),
}
TEST = {
    "0005": ([4, 1, 1, 1, 2, 1, 2, 2, 1, 2], "white", "black"),
    "0003": ([3, 2, 2, 2, 2, 2, 2, 1, 1, 1], "gray", "gray"),
}


def split(table, show=True):
    ids = list(table)
    fields = {}
    for name in LIN_FIELDS:
        row = []
        for values, up, down in table.values():
            if name in SCALAR:
                row.append(values[SCALAR.index(name)])
            elif name.startswith("up"):
                row.append(2 if name == "up" + up else 1)
            else:
                row.append(2 if name == "down" + down else 1)
        fields[name] = np.array([row], dtype=np.float64)
    index = np.empty((1, len(ids)), dtype=object)
    for i, identity in enumerate(ids):
        index[0, i] = identity
    fields["image_index"] = index
    for identity, (values, up, down) in table.items() if show else []:
        labels = [v - 1 for v in values] + [UP.index(up), DOWN.index(down)]
        print(f"{identity}: {labels}")
    return fields


def scipy_files():
    cell = np.empty((2, 1), dtype=object)
    cell[0, 0] = "ab"
    cell[1, 0] = np.array([[1.5, -2.0]])
    data = {
        "market_attribute": {"train": split(TRAIN), "test": split(TEST)},
        "extra": {"u8": np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8), "cell": cell},
    }
    scipy.io.savemat(OUT / "market_small.mat", data, do_compression=False)
    scipy.io.savemat(OUT / "market_small_compressed.mat", data, do_compression=True)


def multicolour_file():
    train = split({"0004": ([1] * 10, "black", "black"), "0008": ([2] * 10, "blue", "gray")},
                  show=False)
    train["upred"][0, 0] = 2
    for colour in DOWN:
        train["down" + colour][0, 1] = 1
    data = {"market_attribute": {"train": train}}
    scipy.io.savemat(OUT / "market_multicolour.mat", data, do_compression=True)


def bad_files():
    train = split({"0004": ([1] * 10, "black", "black")}, show=False)
    train["upred"][0, 0] = 3
    data = {"market_attribute": {"train": train}}
    scipy.io.savemat(OUT / "market_bad_colour.mat", data, do_compression=True)
    test = split(TEST, show=False)
    del test["hat"]
    data = {"market_attribute": {"train": split(TRAIN, show=False), "test": test}}
    scipy.io.savemat(OUT / "market_missing_field.mat", data, do_compression=True)


def element(kind, data):
    return struct.pack("<II", kind, len(data)) + data + b"\0" * (-len(data) % 8)


def small(kind, data):
    return struct.pack("<HH", kind, len(data)) + data.ljust(4, b"\0")


def matrix(cls, dims, name, body):
    flags = element(6, struct.pack("<II", cls, 0))
    dims = element(5, struct.pack("<" + "i" * len(dims), *dims))
    name = small(1, name) if name else element(1, b"")
    return element(14, flags + dims + name + body)


def matlab_file():
    age = matrix(6, [1, 3], b"", element(2, bytes([1, 4, 2])))
    name = matrix(4, [1, 4], b"", element(4, "0042".encode("utf-16-le")))
    names = b"age".ljust(32, b"\0") + b"name".ljust(32, b"\0")
    body = small(5, struct.pack("<i", 32)) + element(1, names) + age + name
    var = matrix(2, [1, 1], b"s", body)
    header = b"MATLAB 5.0 MAT-file, written like MATLAB for edge-reid tests".ljust(116, b" ")
    header += b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    compressed = zlib.compress(var)
    path = OUT / "matlab_style.mat"
    path.write_bytes(header + struct.pack("<II", 15, len(compressed)) + compressed)
    s = scipy.io.loadmat(path, mat_dtype=True)["s"][0, 0]
    assert s["age"].dtype == np.float64 and s["age"].tolist() == [[1.0, 4.0, 2.0]], s["age"]
    assert s["name"][0] == "0042", s["name"]


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    scipy_files()
    multicolour_file()
    bad_files()
    matlab_file()
