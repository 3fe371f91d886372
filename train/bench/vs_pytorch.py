#!/usr/bin/env python3
"""Training speed of `train/examples/train_speed.rs` against `pytorch_speed.py`, as a table.

For each backbone, head and thread count, the two run alternately (ours, PyTorch, ours, ...) for
ROUNDS rounds, each a fresh process timing STEPS steps after one untimed one, so that a busy spell
of the machine hits both; the table has the medians of the rounds' images/s and their ratio.
Build the example first (`cargo build --release -p edge-reid-train --example train_speed`).

    python3 train/bench/vs_pytorch.py --backbone small --head baseline convhead sa --threads 1 2
"""
import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def ours(binary, backbone, head, threads, steps):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), CANDLE_NUM_THREADS=str(threads))
    out = subprocess.run([binary, "--backbone", backbone, "--head", head, "--steps", str(steps)],
                         env=env, check=True, capture_output=True, text=True).stdout
    row = next(l for l in out.splitlines() if l.startswith(f"{backbone} "))
    return float(row.split()[5])


def pytorch(backbone, head, threads, steps):
    out = subprocess.run([sys.executable, str(HERE / "pytorch_speed.py"), "--backbone", backbone,
                          "--head", head, "--threads", str(threads), "--steps", str(steps),
                          "--warmup", "1"], check=True, capture_output=True, text=True).stdout
    return float(re.search(r"median ([0-9.]+) images/s", out).group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/examples/train_speed")
    ap.add_argument("--backbone", nargs="+", default=["small"])
    ap.add_argument("--head", nargs="+", default=["baseline", "convhead", "sa"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    import torch
    print(f"{cpu_model()}, {os.cpu_count()} logical CPUs; PyTorch {torch.__version__}; "
          f"batch 64 x 3 x 128 x 64; median of {a.rounds} alternating rounds of {a.steps} steps\n")
    print("| backbone | head | threads | ours img/s | PyTorch img/s | ours / PyTorch |")
    print("|---|---|---|---|---|---|")
    for backbone in a.backbone:
        for head in a.head:
            for threads in a.threads:
                o, p = [], []
                for _ in range(a.rounds):
                    o.append(ours(a.binary, backbone, head, threads, a.steps))
                    p.append(pytorch(backbone, head, threads, a.steps))
                mo, mp = statistics.median(o), statistics.median(p)
                print(f"| {backbone} | {head} | {threads} | {mo:.1f} | {mp:.1f} | {mo / mp:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
