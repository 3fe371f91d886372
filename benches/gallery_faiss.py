#!/usr/bin/env python3
"""Gallery search against faiss's exact flat index: same vectors, same queries, one run, one thread.

    pip install faiss-cpu numpy
    python3 benches/gallery_faiss.py [--sizes 10000,100000,1000000] [--queries 64] [--rounds 5]

For each size: seeded random unit vectors of dimension 128 (numpy), the gallery with one identity
per row (so its top 5 identities are a flat index's 5 nearest rows), 64 fresh unit queries. Ours
is timed through the library (`Gallery::search`, `Gallery::search_batch`; `examples/
gallery_latency.rs`, built here in release), faiss `IndexFlatL2` with `omp_set_num_threads(1)`,
each query alone and in batches of 8 (one frame's people). Both answers are checked against the
exact top 5 (float64 brute force): recall@5 must be 1 for ours. Prints the CPU, the versions and a
Markdown table of per-query medians (min-max over rounds) and the ratio faiss / ours (above 1: ours
is faster).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import REPO, cpu_flags, cpu_model  # noqa: E402

DIM = 128
TOP = 5
BATCH = 8


def unit_rows(rng, n):
    x = rng.uniform(-1.0, 1.0, (n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def exact_top(gallery, queries):
    """The 5 nearest rows of each query in float64, in chunks of the gallery."""
    best_d = np.full((len(queries), TOP), np.inf)
    best_i = np.zeros((len(queries), TOP), dtype=np.int64)
    q = queries.astype(np.float64)
    for start in range(0, len(gallery), 100_000):
        g = gallery[start:start + 100_000].astype(np.float64)
        d = (q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2 * q @ g.T
        d = np.concatenate([best_d, d], axis=1)
        i = np.concatenate([best_i, np.arange(start, start + len(g))[None, :].repeat(len(q), 0)], 1)
        keep = np.argsort(d, axis=1, kind="stable")[:, :TOP]
        best_d = np.take_along_axis(d, keep, 1)
        best_i = np.take_along_axis(i, keep, 1)
    return best_i


def recall(answers, truth):
    return np.mean([len(set(a) & set(t)) / TOP for a, t in zip(answers, truth)])


def time_faiss(index, queries, rounds, batch):
    per_round = []
    for _ in range(rounds):
        started = time.perf_counter()
        for start in range(0, len(queries), batch):
            index.search(queries[start:start + batch], TOP)
        per_round.append((time.perf_counter() - started) * 1e3 / len(queries))
    return per_round


def spread(values):
    m = statistics.median(values)
    unit, scale = ("µs", 1e3) if m < 1 else ("ms", 1)
    return f"{m * scale:.{1 if m * scale >= 10 else 2}f} {unit} ({min(values) * scale:.3g}-{max(values) * scale:.3g})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import faiss
    faiss.omp_set_num_threads(1)
    subprocess.run(["cargo", "build", "--quiet", "--release", "--example", "gallery_latency"],
                   cwd=REPO, check=True)
    binary = REPO / "target" / "release" / "examples" / "gallery_latency"
    print(f"CPU: {cpu_model()} ({cpu_flags()}), {len(os.sched_getaffinity(0))} cores, one thread "
          f"each; faiss-cpu {faiss.__version__}, numpy {np.__version__}; {args.queries} queries, "
          f"{args.rounds} rounds; {time.strftime('%Y-%m-%d')}\n")
    rows = []
    rng = np.random.default_rng(17)
    for n in [int(s) for s in args.sizes.split(",")]:
        gallery = unit_rows(rng, n)
        queries = unit_rows(rng, args.queries)
        truth = exact_top(gallery, queries)
        with tempfile.TemporaryDirectory() as tmp:
            gallery.tofile(Path(tmp) / "gallery.f32")
            queries.tofile(Path(tmp) / "queries.f32")
            out = subprocess.run([str(binary), str(Path(tmp) / "gallery.f32"),
                                  str(Path(tmp) / "queries.f32"), "--dim", str(DIM),
                                  "--rounds", str(args.rounds), "--batch", str(BATCH)],
                                 check=True, capture_output=True, text=True).stdout
        ours = json.loads(out)
        index = faiss.IndexFlatL2(DIM)
        index.add(gallery)
        faiss_single = time_faiss(index, queries, args.rounds, 1)
        faiss_batch = time_faiss(index, queries, args.rounds, BATCH)
        _, faiss_answers = index.search(queries, TOP)
        our_recall = recall(ours["answers"], truth)
        for label, mine, theirs in [("1", ours["single_ms_per_query"], faiss_single),
                                    (str(BATCH), ours["batch_ms_per_query"], faiss_batch)]:
            ratio = statistics.median(theirs) / statistics.median(mine)
            rows.append(f"| {n:,} | {label} | {spread(mine)} | {spread(theirs)} | **{ratio:.2f}x** "
                        f"| {our_recall:.3f} / {recall(faiss_answers, truth):.3f} |")
        print(f"{n:,} rows: enrolled in {ours['enroll_s']:.1f} s, first search (codes the "
              f"gallery) {ours['first_search_s'] * 1e3:.0f} ms", file=sys.stderr)
        if our_recall != 1.0:
            sys.exit(f"{n} rows: our recall@5 is {our_recall}, not 1")
    print("| gallery rows x 128 | queries per call | ours, per query: median (min-max) | "
          "faiss `IndexFlatL2` | faiss / ours | recall@5 vs exact (ours / faiss) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
