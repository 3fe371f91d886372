#!/usr/bin/env python3
"""Two runs' learning curves side by side, epoch by epoch, as a Markdown table.

    python3 train/bench/curves.py RUN_A RUN_B [COLUMN ...]

RUN_A and RUN_B are run folders with a `metrics.csv` (`edge-reid-train fit` or
`train/bench/pytorch_trainer.py`, which name their columns alike). Columns (default: loss,
id_loss, s_ar, s_id, val_map, val_accuracy, val_balanced_accuracy) print as `A / B`; metrics in
[0, 1] named val_* or *_accuracy as percentages.
"""
import csv
import sys
from pathlib import Path

DEFAULT = ["loss", "id_loss", "s_ar", "s_id", "val_map", "val_accuracy", "val_balanced_accuracy"]


def rows(run):
    with open(Path(run) / "metrics.csv", newline="") as f:
        return {int(r["epoch"]): r for r in csv.DictReader(f)}


def cell(name, value):
    if value is None or value == "":
        return "-"
    v = float(value)
    return f"{100 * v:.2f}" if name.startswith("val_") or name.endswith("accuracy") else f"{v:.4f}"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    a, b = rows(sys.argv[1]), rows(sys.argv[2])
    columns = sys.argv[3:] or DEFAULT
    print(f"A = {sys.argv[1]}, B = {sys.argv[2]}\n")
    print("| epoch | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for epoch in sorted(set(a) | set(b)):
        cells = [f"{cell(c, a.get(epoch, {}).get(c))} / {cell(c, b.get(epoch, {}).get(c))}"
                 for c in columns]
        print(f"| {epoch} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
