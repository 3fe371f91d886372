#!/usr/bin/env python3
"""Prints the medians of the last criterion run as a Markdown table (stdlib only).

    cargo bench -p edge-reid
    python3 benches/medians.py [ID_PREFIX ...]

Reads every `criterion/**/new/estimates.json` (and the `benchmark.json` beside it) under the cargo
target folder: `$CARGO_TARGET_DIR` if set, else `target/` of this repository. Criterion prints the
mean (or the regression slope); the README quotes the median, which a descheduled sample on a busy
machine moves less. Benches that measure n crops per iteration (criterion throughput
`Elements(n)`) also get the time per item (crop, query or frame): the median divided by n. Results of earlier runs stay
in the folder (a bench id names its model, so another model's results sit beside this one's): only
ids starting with one of the ID_PREFIXes are listed when some are given.
"""

import json
import os
import re
import sys
from pathlib import Path

# What one element of each bench group's throughput is.
UNITS = {"preprocess": "crop", "inference": "crop", "gallery": "query", "pipeline": "frame"}
GROUP_ORDER = list(UNITS)


def target_dir():
    env = os.environ.get("CARGO_TARGET_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "target"


def format_ns(ns):
    """A duration in nanoseconds with a unit that keeps 3 significant digits readable."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def natural_key(text):
    """Sorts `10k` < `100k` < `1M` and `batch1` < `batch8`: numbers by value, k and M included."""
    scale = {"": 1, "k": 1e3, "M": 1e6}
    parts = []
    for word, number, suffix in re.findall(r"(\D*)(\d+(?:\.\d+)?)?([kM](?![a-zA-Z]))?", text):
        parts.append((word, float(number) * scale[suffix or ""] if number else -1.0))
    return parts


def results(root):
    for estimates in sorted(root.glob("**/new/estimates.json")):
        info_file = estimates.with_name("benchmark.json")
        if not info_file.is_file():
            continue
        info = json.loads(info_file.read_text())
        median = json.loads(estimates.read_text())["median"]
        elements = (info.get("throughput") or {}).get("Elements")
        yield info, median, elements


def main(prefixes):
    root = target_dir() / "criterion"
    rows = []
    for info, median, elements in results(root):
        full_id = info["full_id"]
        if prefixes and not any(full_id.startswith(p) for p in prefixes):
            continue
        group = info["group_id"]
        ns = median["point_estimate"]
        ci = median["confidence_interval"]
        per = ""
        if elements:
            per = f"{format_ns(ns / elements)} per {UNITS.get(group, 'element')}"
        order = GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER)
        key = (order, group, natural_key(full_id))
        span = f"{format_ns(ci['lower_bound'])} - {format_ns(ci['upper_bound'])}"
        rows.append((key, f"| `{full_id}` | {format_ns(ns)} | {span} | {per} |"))
    if not rows:
        sys.exit(f"no criterion results under {root}: run `cargo bench -p edge-reid` first")
    print("| bench | median | 95% CI of the median | per item |")
    print("|---|---|---|---|")
    for _, row in sorted(rows):
        print(row)


if __name__ == "__main__":
    main(sys.argv[1:])
