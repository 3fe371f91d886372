#!/usr/bin/env python3
"""Prints the paper-style Markdown tables (Table 1: attributes, Table 2: re-ID) for the heads that
`train/scripts/compare_heads.sh OUT` trained, side by side, from its `eval-{val,test}-HEAD.txt`.

    python3 train/scripts/heads_table.py OUT [val|test]
"""
import re
import sys
from pathlib import Path

HEADS = ["baseline", "convhead", "sa"]


def parse(path):
    """Table 1 rows {name: (mfc, acc, balanced)} and Table 2 (map, r1, r5, r10, queries)."""
    rows, ranking, queries = {}, None, None
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\w+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", line)
        if m:
            rows[m.group(1)] = tuple(float(v) for v in m.groups()[1:])
        m = re.match(r"^Table 2: re-identification \((\d+) valid queries\)", line)
        if m:
            queries = int(m.group(1))
            ranking = tuple(float(v) for v in lines[i + 2].split())
    return rows, ranking, queries


def main():
    out = Path(sys.argv[1])
    split = sys.argv[2] if len(sys.argv) > 2 else "test"
    runs = {h: parse(out / f"eval-{split}-{h}.txt") for h in HEADS if (out / f"eval-{split}-{h}.txt").exists()}
    if not runs:
        sys.exit(f"no eval-{split}-*.txt in {out}")
    heads = list(runs)
    first = runs[heads[0]][0]
    print(f"Table 1 ({split}): accuracy % (balanced accuracy %)\n")
    print("| attribute | MFC | " + " | ".join(heads) + " |")
    print("|---|---|" + "---|" * len(heads))
    for name in first:
        cells = [f"{runs[h][0][name][1]:.2f} ({runs[h][0][name][2]:.2f})" for h in heads]
        label = f"**{name}**" if name == "average" else name
        print(f"| {label} | {first[name][0]:.2f} | " + " | ".join(cells) + " |")
    queries = runs[heads[0]][2]
    print(f"\nTable 2 ({split}, {queries} queries): %\n")
    print("| head | mAP | rank-1 | rank-5 | rank-10 |")
    print("|---|---|---|---|---|")
    for h in heads:
        print(f"| {h} | " + " | ".join(f"{v:.2f}" for v in runs[h][1]) + " |")


if __name__ == "__main__":
    main()
