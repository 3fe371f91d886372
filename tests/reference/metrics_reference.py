"""Reference values for `src/eval/metrics.rs` and `src/distance.rs`.

Writes two fixtures next to this directory, read by the unit tests with `include_str!`:

- `tests/fixtures/metrics_market1501.json`: re-ID cases (distance matrices or embeddings, identities,
  cameras) with CMC and mAP from torchreid's own `eval_market1501`, distance matrices from torchreid's
  `compute_distance_matrix` (run in float64), and mINP as defined by Ye et al., "Deep Learning for
  Person Re-identification: A Survey and Outlook" (INP = positives / rank of the hardest positive).
- `tests/fixtures/metrics_attributes.json`: per-attribute accuracy and balanced accuracy from
  scikit-learn, the most-frequent-class baseline from numpy.

Run from the repository root (the output is deterministic):

    pip install --no-deps torchreid==0.2.5   # KaiyangZhou/deep-person-reid packaged for PyPI
    pip install scikit-learn torch numpy
    python3 tests/reference/metrics_reference.py

torchreid's package `__init__` imports its whole training stack (datasets, models, ...), so the two
metric modules are loaded straight from their files in the installed package instead.
"""

import importlib.util
import json
import os

import numpy as np
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def load_torchreid_module(name):
    """Loads `torchreid/reid/metrics/<name>.py` without running torchreid's package `__init__`."""
    package = importlib.util.find_spec("torchreid").submodule_search_locations[0]
    path = os.path.join(package, "reid", "metrics", name + ".py")
    spec = importlib.util.spec_from_file_location("torchreid_metrics_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rank = load_torchreid_module("rank")
distance = load_torchreid_module("distance")


def minp(distmat, q_pids, g_pids, q_camids, g_camids):
    """mean Inverse Negative Penalty over the queries with a valid match (independent numpy code)."""
    inps = []
    for q in range(distmat.shape[0]):
        order = np.argsort(distmat[q], kind="stable")
        keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        hits = g_pids[order][keep] == q_pids[q]
        if not hits.any():
            continue
        hardest = np.flatnonzero(hits)[-1] + 1  # 1-based rank of the last positive
        inps.append(hits.sum() / hardest)
    return float(np.mean(inps))


def assert_tie_free(distmat, gap):
    """The Rust code sorts stably and numpy's quicksort does not: the fixtures must have no ties
    (and, where Rust recomputes the distances in f32, no near-ties either)."""
    for row in distmat:
        s = np.sort(row)
        assert np.all(np.diff(s) > gap), "near-tie in a fixture row; change the seed"


def reid_case(name, distmat, q_pids, g_pids, q_camids, g_camids, max_rank, extra=None):
    cmc, m_ap = rank.eval_market1501(distmat, q_pids, g_pids, q_camids, g_camids, max_rank)
    case = {
        "name": name,
        "num_query": int(distmat.shape[0]),
        "num_gallery": int(distmat.shape[1]),
        "q_pids": q_pids.tolist(),
        "g_pids": g_pids.tolist(),
        "q_camids": q_camids.tolist(),
        "g_camids": g_camids.tolist(),
        "max_rank": max_rank,
        "cmc": [float(x) for x in cmc],
        "map": float(m_ap),
        "minp": minp(distmat, q_pids, g_pids, q_camids, g_camids),
        "num_valid_queries": int(
            sum(
                ((g_pids == p) & (g_camids != c)).any()
                for p, c in zip(q_pids.tolist(), q_camids.tolist())
            )
        ),
    }
    case.update(extra or {})
    return case


def distmat_cases(rng):
    cases = []

    # 7 queries x 30 gallery. Identities 1-5 have gallery images in several cameras, including the
    # query's own camera (dropped by the metric); 0 is a distractor; query 5 (identity 6) has gallery
    # images only in its own camera and query 6 (identity 7) none at all: both have no valid match.
    q_pids = np.array([1, 2, 3, 4, 5, 6, 7], dtype=np.int64)
    q_camids = np.array([1, 2, 3, 1, 4, 2, 5], dtype=np.int64)
    g_pids = np.array(
        [1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 5, 5, 5, 6, 6]
        + [0] * 8
        + [8, 9, 10],
        dtype=np.int64,
    )
    g_camids = np.array(
        [1, 2, 3, 6, 2, 2, 5, 3, 1, 4, 6, 3, 2, 3, 4, 1, 6, 2, 2]
        + [1, 2, 3, 4, 5, 6, 1, 2]
        + [3, 5, 6],
        dtype=np.int64,
    )
    assert len(g_pids) == len(g_camids) == 30
    d = rng.uniform(0.0, 1.0, size=(7, 30))
    d -= 0.35 * (q_pids[:, None] == g_pids[None, :])  # positives tend to rank high, not always first
    d = d.astype(np.float32)
    assert_tie_free(d, 0.0)
    for max_rank in (1, 5, 10):
        cases.append(
            reid_case(
                f"7x30 max_rank {max_rank}",
                d,
                q_pids,
                g_pids,
                q_camids,
                g_camids,
                max_rank,
                {"distmat": [float(x) for x in d.ravel()]},
            )
        )

    # max_rank larger than the gallery: torchreid truncates to the gallery size.
    q_pids = np.array([3, 4, 5], dtype=np.int64)
    q_camids = np.array([1, 2, 3], dtype=np.int64)
    g_pids = np.array([3, 4, 0, 5, 3, 4], dtype=np.int64)
    g_camids = np.array([2, 1, 1, 4, 5, 6], dtype=np.int64)
    d = rng.uniform(0.0, 1.0, size=(3, 6)).astype(np.float32)
    assert_tie_free(d, 0.0)
    cases.append(
        reid_case(
            "3x6 max_rank 10",
            d,
            q_pids,
            g_pids,
            q_camids,
            g_camids,
            10,
            {"distmat": [float(x) for x in d.ravel()]},
        )
    )
    return cases


def embedding_cases(rng):
    # Embeddings: the Rust test recomputes the distances in f32 and evaluates its own matrix.
    dim = 19  # not a multiple of the 8-wide accumulators
    num_ids = 6
    centres = rng.normal(size=(num_ids, dim))
    q_pids = np.array([0, 1, 2, 3, 4, 5], dtype=np.int64)
    q_camids = np.array([1, 2, 3, 4, 5, 6], dtype=np.int64)
    g_pids = np.repeat(np.arange(num_ids), 4)
    g_camids = np.tile(np.array([1, 2, 3, 6]), num_ids)
    qf = (centres[q_pids] + 0.9 * rng.normal(size=(len(q_pids), dim))).astype(np.float32)
    gf = (centres[g_pids] + 0.9 * rng.normal(size=(len(g_pids), dim))).astype(np.float32)
    q64, g64 = torch.from_numpy(qf.astype(np.float64)), torch.from_numpy(gf.astype(np.float64))
    squared = distance.compute_distance_matrix(q64, g64, "euclidean").numpy()
    cosine = distance.compute_distance_matrix(q64, g64, "cosine").numpy()
    euclidean = np.sqrt(np.maximum(squared, 0.0))
    assert_tie_free(squared, 1e-4)
    assert_tie_free(cosine, 1e-5)
    cases = []
    for metric, d in (("euclidean", squared), ("cosine", cosine)):
        cases.append(
            reid_case(
                f"embeddings {metric}",
                d,
                q_pids,
                g_pids,
                q_camids,
                g_camids,
                5,
                {
                    "dim": dim,
                    "metric": metric,
                    "query_features": [float(x) for x in qf.ravel()],
                    "gallery_features": [float(x) for x in gf.ravel()],
                    "squared_euclidean": [float(x) for x in squared.ravel()],
                    "euclidean": [float(x) for x in euclidean.ravel()],
                    "cosine": [float(x) for x in cosine.ravel()],
                },
            )
        )
    return cases


def attribute_fixture(rng):
    classes = [4, 2, 2, 2, 2, 2, 2, 2, 2, 2, 8, 9]
    n_truth, n_ref = 40, 60
    # Skewed class priors so the most frequent class means something.
    truth = np.zeros((n_truth, 12), dtype=np.int64)
    pred = np.zeros((n_truth, 12), dtype=np.int64)
    reference = np.zeros((n_ref, 12), dtype=np.int64)
    for a, c in enumerate(classes):
        p = rng.dirichlet(np.ones(c) * 0.7)
        truth[:, a] = rng.choice(c, size=n_truth, p=p)
        reference[:, a] = rng.choice(c, size=n_ref, p=p)
        correct = rng.uniform(size=n_truth) < 0.7
        pred[:, a] = np.where(correct, truth[:, a], rng.integers(0, c, size=n_truth))
    # Attribute 2: a class that is predicted but never in the truth (sklearn ignores it in the
    # mean recall); attribute 0: the truth uses only some of the four classes.
    truth[:, 2] = 0
    truth[:, 0] = np.where(truth[:, 0] == 3, 1, truth[:, 0])
    rows = []
    for a in range(12):
        majority = int(np.argmax(np.bincount(reference[:, a], minlength=classes[a])))
        rows.append(
            {
                "majority_class": majority,
                "mfc": float(np.mean(truth[:, a] == majority)),
                "accuracy": float(accuracy_score(truth[:, a], pred[:, a])),
                "balanced_accuracy": float(balanced_accuracy_score(truth[:, a], pred[:, a])),
            }
        )
    return {
        "predicted": pred.tolist(),
        "truth": truth.tolist(),
        "reference": reference.tolist(),
        "rows": rows,
        "mean_mfc": float(np.mean([r["mfc"] for r in rows])),
        "mean_accuracy": float(np.mean([r["accuracy"] for r in rows])),
        "mean_balanced_accuracy": float(np.mean([r["balanced_accuracy"] for r in rows])),
    }


def main():
    import warnings

    warnings.simplefilter("ignore")  # sklearn warns about the class absent from the truth
    rng = np.random.default_rng(1501)
    reid = {"cases": distmat_cases(rng) + embedding_cases(rng)}
    attributes = attribute_fixture(rng)
    os.makedirs(FIXTURES, exist_ok=True)
    for name, value in (
        ("metrics_market1501.json", reid),
        ("metrics_attributes.json", attributes),
    ):
        with open(os.path.join(FIXTURES, name), "w") as f:
            json.dump(value, f)
            f.write("\n")
        print("wrote", os.path.join(FIXTURES, name))


if __name__ == "__main__":
    main()
