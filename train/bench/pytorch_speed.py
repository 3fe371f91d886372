"""Training speed of the paper's network in PyTorch, to compare with `edge-reid-train fit`.

The same network as train/src/model (ResNet18 or the small backbone with conv1 stride (2,1) and
maxpool stride 1, the baseline attribute heads, the re-ID head Linear -> BatchNorm1d -> LeakyReLU),
the same losses (mean of 12 cross-entropies, triplet loss over all valid triplets averaged over the
positive ones, Kendall weighting) and Adam, on random P x K batches of 128x64 images. Prints the
median images/s over the timed steps.

    python3 train/bench/pytorch_speed.py --backbone resnet18 --device cpu --threads 2
    python3 train/bench/pytorch_speed.py --backbone resnet18 --device cuda
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CLASSES = [4, 2, 2, 2, 2, 2, 2, 2, 2, 2, 8, 9]


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class Net(nn.Module):
    def __init__(self, widths, blocks, dim=128):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, (2, 1), 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            for b in range(blocks):
                layers.append(Block(cin, w, 2 if (i > 0 and b == 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        c = widths[-1]
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(c, c // 4), nn.ReLU(), nn.Linear(c // 4, k)) for k in CLASSES
        )
        self.reid = nn.Sequential(nn.Linear(c, dim), nn.BatchNorm1d(dim), nn.LeakyReLU(0.01))
        self.s_ar = nn.Parameter(torch.zeros(()))
        self.s_id = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 1, 1)
        v = self.layers(x).mean((2, 3))
        return self.reid(v), [h(v) for h in self.heads]


def triplet_all(emb, labels, margin=0.3):
    d = torch.cdist(emb, emb)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
    valid = (same & ~eye)[:, :, None] & (~same)[:, None, :]
    losses = F.relu(d[:, :, None] - d[:, None, :] + margin) * valid
    return losses.sum() / (losses > 0).sum().clamp(min=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", choices=["resnet18", "small"], default="resnet18")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--p", type=int, default=16)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    widths, blocks = ([64, 128, 256, 512], 2) if a.backbone == "resnet18" else ([16, 32, 64, 128], 1)
    net = Net(widths, blocks).to(a.device).train()
    opt = torch.optim.Adam(net.parameters(), lr=3e-4)
    n = a.p * a.k
    x = torch.randn(n, 3, 128, 64, device=a.device)
    ids = torch.arange(a.p, device=a.device).repeat_interleave(a.k)
    targets = [torch.randint(0, k, (n,), device=a.device) for k in CLASSES]
    rates = []
    for step in range(a.warmup + a.steps):
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        emb, logits = net(x)
        l_ar = sum(F.cross_entropy(l, y) for l, y in zip(logits, targets)) / len(CLASSES)
        l_id = triplet_all(emb, ids)
        loss = torch.exp(-net.s_ar) * l_ar + torch.exp(-2 * net.s_id) * l_id + net.s_ar + net.s_id
        opt.zero_grad()
        loss.backward()
        opt.step()
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        if step >= a.warmup:
            rates.append(n / (time.perf_counter() - t))
    print(f"pytorch {torch.__version__} {a.backbone} {a.device} batch {n}: "
          f"median {statistics.median(rates):.1f} images/s over {a.steps} steps")


if __name__ == "__main__":
    main()
