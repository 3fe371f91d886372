"""Training speed of the paper's network in PyTorch, to compare with `edge-reid-train fit`.

The network is `train/tests/reference/torch_network.py`'s (the one the fixtures check ours
against), built as `NetConfig::paper` builds ours: the chosen backbone and head, branches on the
pooled grid, a 128-d embedding with BatchNorm and LeakyReLU for the baseline only. The losses are
`pytorch_trainer.py`'s (mean of 12 cross-entropies, triplet loss over all valid triplets averaged
over the positive ones, Kendall weighting), with Adam, on random P x K batches of 128x64 images:
the same step as `train/examples/train_speed.rs`. Prints the median images/s over the timed steps.

    python3 train/bench/pytorch_speed.py --backbone small --head sa --threads 2
    python3 train/bench/pytorch_speed.py --backbone resnet18 --device cuda
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pytorch_trainer import ATTRIBUTES, CLASSES, Net, attribute_loss, triplet_all  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", choices=["resnet18", "small"], default="resnet18")
    ap.add_argument("--head", choices=["baseline", "convhead", "sa"], default="baseline")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--p", type=int, default=16)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = {"backbone": a.backbone, "head": a.head, "embedding_dim": 128, "person_head": False,
           "branch_pool": "grid", "embedding_norm": a.head == "baseline"}
    net = Net(cfg, dict(zip(ATTRIBUTES, CLASSES))).to(a.device).train()
    s_ar = torch.zeros((), device=a.device, requires_grad=True)
    s_id = torch.zeros((), device=a.device, requires_grad=True)
    opt = torch.optim.Adam(list(net.parameters()) + [s_ar, s_id], lr=3e-4)
    n = a.p * a.k
    x = torch.randn(n, 3, 128, 64, device=a.device)
    ids = torch.arange(a.p, device=a.device).repeat_interleave(a.k)
    targets = torch.stack([torch.randint(0, k, (n,), device=a.device) for k in CLASSES], 1)
    rates = []
    for step in range(a.warmup + a.steps):
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = net(x)
        l_ar = attribute_loss([out[f"attr.{name}"] for name in ATTRIBUTES], targets)
        l_id = triplet_all(out["embedding"], ids, 0.3)
        loss = torch.exp(-s_ar) * l_ar + torch.exp(-2 * s_id) * l_id + s_ar + s_id
        opt.zero_grad()
        loss.backward()
        opt.step()
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        if step >= a.warmup:
            rates.append(n / (time.perf_counter() - t))
    print(f"pytorch {torch.__version__} {a.backbone} {a.head} {a.device} batch {n}: "
          f"median {statistics.median(rates):.1f} images/s over {a.steps} steps")


if __name__ == "__main__":
    main()
