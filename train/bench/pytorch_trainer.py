#!/usr/bin/env python3
"""The paper's method trained by PyTorch, to hold `edge-reid-train fit` against.

    python3 train/bench/pytorch_trainer.py --like RUN --out OUT [--threads 1] [--epochs N]

RUN is a run folder of `edge-reid-train fit`: its `config.json` gives the data, the network and
every setting (epochs, P, K, learning rate, weight decay, warm-up, margin, input normalisation),
its `split.json` the images to train on and the validation query and gallery (fit writes both
before its first epoch), so the two trainers see the same split. Everything else is built here
from PyTorch's own parts, independently of the Rust code:

- data: Market-1501 file names (`PPPP_cCsS_FFFFFF_NN.jpg`) and `annotations_{train,test}.csv`
  (value 1 -> class 0, 2 -> class 1, age 1-4 -> 0-3, the one colour column set to 2 -> its class;
  no colour set, several, or a multicolour column set to 2 -> ignored by the loss and the metrics);
- the network: `train/tests/reference/torch_network.py` (torchvision's `BasicBlock`,
  `nn.MultiheadAttention`, `nn.LayerNorm`), PyTorch's default initialisation, torchvision's
  ResNet initialisation for the backbone (Kaiming normal, fan-out); `--init candle` draws the
  heads as candle-nn's defaults would (`candle_init`);
- sampler: torchreid's `RandomIdentitySampler` (each identity's shuffled images in chunks of K,
  P random identities with chunks left per batch; `--sampler fit`: the P with the most left);
- augmentation: torchvision's `RandomHorizontalFlip(0.5)`, `Pad(10)` + `RandomCrop`, `Normalize`,
  `RandomErasing(0.5, scale=(0.02, 0.4), ratio=(0.3, 3.3), value="random")`;
- losses: `cross_entropy(ignore_index=255)` per attribute averaged over the 12, the triplet loss
  over all valid triplets averaged over those with a positive loss (`torch.cdist`), Kendall's
  weighting as the paper's Eq. 3 prints it, `exp(-s_ar) L_ar + exp(-2 s_id) L_id + s_ar + s_id`;
- `torch.optim.AdamW` with weight decay on tensors of two or more dimensions only, and per step a
  linear warm-up from 10% then cosine decay to 1% (`LambdaLR`);
- validation after every epoch, scored here: Market's mAP and rank-1 (same identity and camera
  left out), per-attribute accuracy and balanced accuracy over the validation persons.

OUT gets `config.json` (RUN's), `metrics.csv` (columns named as fit's), and `last.safetensors` and
`best.safetensors` (best by fit's score, the mean of mAP and mean balanced accuracy) with fit's
variable names, so `edge-reid-train eval --run OUT [--checkpoint last] [--split test]` scores
them with the same code as a run of fit. Only the multi-task net without a person head is trained.
"""
import argparse
import csv
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "reference"))
from torch_network import ATTRIBUTES, Net, our_name  # noqa: E402

IGNORE = 255
BINARY = ["backpack", "bag", "handbag", "clothes", "down", "up", "hair", "hat", "gender"]
UP = ["upblack", "upwhite", "upred", "uppurple", "upyellow", "upgray", "upblue", "upgreen"]
DOWN = ["downblack", "downwhite", "downpink", "downpurple", "downyellow", "downgray", "downblue",
        "downgreen", "downbrown"]
CLASSES = [4] + [2] * len(BINARY) + [len(UP), len(DOWN)]


def identity_camera(path):
    """Identity and camera of a Market file name `PPPP_cCsS_FFFFFF_NN.jpg`."""
    pid, cam = path.name.split("_")[:2]
    return int(pid), int(cam[1])


def read_annotations(root):
    """Class indices per identity from the annotation CSVs of `root`."""
    table = {}
    for name in ("annotations_train.csv", "annotations_test.csv"):
        path = root / name
        if not path.is_file():
            continue
        with open(path, newline="", encoding="utf-8-sig") as f:
            for row in csv.DictReader(f):
                labels = [int(row["age"]) - 1] + [int(row[b]) - 1 for b in BINARY]
                for group, multi in ((UP, "upmulticolor"), (DOWN, "downmulticolor")):
                    on = [i for i, c in enumerate(group) if row[c] == "2"]
                    labels.append(on[0] if len(on) == 1 and row.get(multi, "1") != "2" else IGNORE)
                table[int(row["id"])] = labels
    if not table:
        sys.exit(f"{root}: no annotations_train.csv or annotations_test.csv")
    return table


def load_images(root, paths, size):
    """The images as one uint8 tensor [n, 3, h, w] (resized bilinearly where they differ)."""
    h, w = size
    out = torch.empty((len(paths), 3, h, w), dtype=torch.uint8)
    for i, p in enumerate(paths):
        img = Image.open(root / p).convert("RGB")
        if img.size != (w, h):
            img = img.resize((w, h), Image.BILINEAR)
        out[i] = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
    return out


def identity_batches(pids, p, k, rng, most_first=False):
    """torchreid's RandomIdentitySampler: one epoch of P x K batches of indices. `most_first`
    takes the P identities with the most chunks left instead of P at random (fit's order)."""
    by_pid = {}
    for i, pid in enumerate(pids):
        by_pid.setdefault(pid, []).append(i)
    chunks = {}
    for pid, idxs in by_pid.items():
        idxs = list(idxs) if len(idxs) >= k else rng.choices(idxs, k=k)
        rng.shuffle(idxs)
        chunks[pid] = [idxs[j:j + k] for j in range(0, len(idxs) - k + 1, k)]
    available = [pid for pid in chunks if chunks[pid]]
    batches = []
    while len(available) >= p:
        batch = []
        if most_first:
            rng.shuffle(available)
            available.sort(key=lambda pid: -len(chunks[pid]))
        for pid in available[:p] if most_first else rng.sample(available, p):
            batch += chunks[pid].pop()
            if not chunks[pid]:
                available.remove(pid)
        batches.append(batch)
    return batches


def triplet_all(emb, labels, margin):
    d = torch.cdist(emb, emb)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
    valid = (same & ~eye)[:, :, None] & (~same)[:, None, :]
    losses = F.relu(d[:, :, None] - d[:, None, :] + margin) * valid
    return losses.sum() / (losses > 0).sum().clamp(min=1)


def attribute_loss(logits, targets):
    losses = []
    for i, l in enumerate(logits):
        t = targets[:, i]
        labelled = t != IGNORE
        losses.append(F.cross_entropy(l[labelled], t[labelled]) if labelled.any()
                      else l.sum() * 0)
    return torch.stack(losses).mean()


def average_precision(dist, qp, gp, qc, gc):
    """Market's mAP and rank-1 of a [q, g] distance matrix."""
    aps, rank1 = [], []
    for i in range(len(qp)):
        keep = ~((gp == qp[i]) & (gc == qc[i]))
        order = np.argsort(dist[i][keep], kind="stable")
        hits = (gp[keep][order] == qp[i])
        if not hits.any():
            continue
        positions = np.flatnonzero(hits)
        aps.append(np.mean((np.arange(len(positions)) + 1) / (positions + 1)))
        rank1.append(float(hits[0]))
    return float(np.mean(aps)), float(np.mean(rank1))


def attribute_scores(pred, truth):
    """Per-attribute accuracy and balanced accuracy over rows that label the attribute."""
    acc, bacc = [], []
    for i in range(len(ATTRIBUTES)):
        labelled = truth[:, i] != IGNORE
        p, t = pred[labelled, i], truth[labelled, i]
        if not len(t):
            continue
        acc.append(float(np.mean(p == t)))
        bacc.append(float(np.mean([np.mean(p[t == c] == c) for c in np.unique(t)])))
    return float(np.mean(acc)), float(np.mean(bacc))


def candle_init(net):
    """candle-nn's `linear` initialisation, which fit's dense layers had until they took PyTorch's:
    weights Kaiming normal (fan-in, gain sqrt 2), biases uniform in +-1/sqrt(fan-in), the
    attention's four projections alike; every convolution Kaiming normal with fan-out."""
    def dense(weight, bias):
        nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu")
        bound = 1 / math.sqrt(weight.shape[1])
        nn.init.uniform_(bias, -bound, bound)

    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                dense(m.weight, m.bias)
            elif isinstance(m, nn.MultiheadAttention):
                d = m.embed_dim
                for i in range(3):
                    dense(m.in_proj_weight[i * d:(i + 1) * d], m.in_proj_bias[i * d:(i + 1) * d])


class Trainer:
    def __init__(self, cfg, split, init, sampler):
        self.cfg, self.sampler = cfg, sampler
        net_cfg = cfg["net"]
        if net_cfg["person_head"] or cfg["junk_per_batch"]:
            sys.exit("this trainer trains nets without a person head (--person-head false)")
        if cfg["mining"] != "all":
            sys.exit(f"mining {cfg['mining']}: this trainer has the paper's all-triplet loss only")
        root = Path(cfg["data"])
        table = read_annotations(root)
        size = (net_cfg["input_height"], net_cfg["input_width"])
        train = [Path(p) for p in split["train"] if identity_camera(Path(p))[0] > 0]
        self.train_pids = [identity_camera(p)[0] for p in train]
        self.train_images = load_images(root, train, size)
        self.train_labels = torch.tensor([table[pid] for pid in self.train_pids])
        val = [Path(p) for p in split["val_query"] + split["val_gallery"]]
        self.queries = len(split["val_query"])
        self.val_images = load_images(root, val, size)
        ids = [identity_camera(p) for p in val]
        self.val_pids = np.array([i for i, _ in ids])
        self.val_cams = np.array([c for _, c in ids])
        persons = self.val_pids > 0
        self.val_truth = np.array([table[pid] for pid in self.val_pids[persons]])
        self.val_persons = persons
        mean = torch.tensor(cfg["mean"]).view(3, 1, 1)
        std = torch.tensor(cfg["std"]).view(3, 1, 1)
        self.normalize = lambda x: (x.float() / 255 - mean) / std
        self.augment = v2.Compose([
            v2.RandomHorizontalFlip(0.5),
            v2.Pad(10),
            v2.RandomCrop(size),
        ])
        self.erase = v2.RandomErasing(0.5, scale=(0.02, 0.4), ratio=(0.3, 3.3), value="random")
        torch.manual_seed(cfg["seed"])
        self.rng = random.Random(cfg["seed"])
        self.net = Net(net_cfg, dict(zip(ATTRIBUTES, CLASSES)))
        convs = self.net.modules() if init == "candle" else self.net.backbone.modules()
        for m in convs:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if init == "candle":
            candle_init(self.net)
        self.s_ar = nn.Parameter(torch.zeros(()))
        self.s_id = nn.Parameter(torch.zeros(()))
        params = list(self.net.parameters())
        decay = [p for p in params if p.ndim >= 2]
        rest = [p for p in params if p.ndim < 2] + [self.s_ar, self.s_id]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]},
                                      {"params": rest, "weight_decay": 0.0}],
                                     lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8)

    def schedule(self, batches):
        warmup, total = self.cfg["warmup_epochs"] * batches, self.cfg["epochs"] * batches

        def factor(step):
            if step < warmup:
                return 0.1 + 0.9 * step / warmup
            t = min((step - warmup) / max(total - warmup, 1), 1.0)
            return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))
        return torch.optim.lr_scheduler.LambdaLR(self.opt, factor)

    def train_epoch(self, scheduler):
        cfg = self.cfg
        self.net.train()
        batches = identity_batches(self.train_pids, cfg["p"], cfg["k"], self.rng,
                                   self.sampler == "fit")
        sums, correct, labelled, seen = np.zeros(3), 0, 0, 0
        started = time.perf_counter()
        for batch in batches:
            idx = torch.tensor(batch)
            x = torch.stack([self.erase(self.normalize(self.augment(img)))
                             for img in self.train_images[idx]])
            targets = self.train_labels[idx]
            pids = torch.tensor([self.train_pids[i] for i in batch])
            out = self.net(x)
            logits = [out[f"attr.{n}"] for n in ATTRIBUTES]
            l_ar = attribute_loss(logits, targets)
            l_id = triplet_all(out["embedding"], pids, cfg["margin"])
            loss = (torch.exp(-self.s_ar) * l_ar + torch.exp(-2 * self.s_id) * l_id
                    + self.s_ar + self.s_id)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            scheduler.step()
            sums += [loss.item(), l_ar.item(), l_id.item()]
            for i, l in enumerate(logits):
                t = targets[:, i]
                correct += int(((l.argmax(1) == t) & (t != IGNORE)).sum())
                labelled += int((t != IGNORE).sum())
            seen += len(batch)
        n = len(batches)
        return {"lr": self.opt.param_groups[0]["lr"], "loss": sums[0] / n,
                "ar_loss": sums[1] / n, "id_loss": sums[2] / n, "s_ar": self.s_ar.item(),
                "s_id": self.s_id.item(), "train_accuracy": correct / max(labelled, 1),
                "images_per_second": seen / (time.perf_counter() - started)}

    @torch.no_grad()
    def validate(self):
        self.net.eval()
        emb, pred = [], []
        for start in range(0, len(self.val_images), 64):
            out = self.net(self.normalize(self.val_images[start:start + 64]))
            emb.append(out["embedding"])
            pred.append(torch.stack([out[f"attr.{n}"].argmax(1) for n in ATTRIBUTES], 1))
        emb, pred = torch.cat(emb), torch.cat(pred).numpy()
        q = self.queries
        dist = torch.cdist(emb[:q], emb[q:]).numpy()
        m, r1 = average_precision(dist, self.val_pids[:q], self.val_pids[q:],
                                  self.val_cams[:q], self.val_cams[q:])
        acc, bacc = attribute_scores(pred[self.val_persons], self.val_truth)
        return {"val_accuracy": acc, "val_balanced_accuracy": bacc, "val_map": m,
                "val_rank1": r1, "score": 0.5 * (bacc + m)}

    def checkpoint(self):
        """The variables under fit's names (q/k/v split out of in_proj, the Kendall weights)."""
        state = {}
        for name, t in self.net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.startswith("attention."):
                d = self.net.attention.embed_dim
                if name.startswith("attention.in_proj_"):
                    kind = name.rsplit("_", 1)[1]
                    for i, k in enumerate("qkv"):
                        state[f"sa.attention.{k}.{kind}"] = t[i * d:(i + 1) * d]
                else:
                    state["sa.attention.out." + name.rsplit(".", 1)[1]] = t
                continue
            state[our_name(name)] = t
        state["kendall.s_ar"] = self.s_ar.detach()
        state["kendall.s_id"] = self.s_id.detach()
        return {k: v.detach().contiguous().clone() for k, v in state.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--like", type=Path, required=True, help="a run folder of edge-reid-train fit")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, help="instead of the run's")
    ap.add_argument("--init", choices=["torch", "candle"], default="torch",
                    help="the heads initialised as PyTorch's layers are, or as candle-nn's")
    ap.add_argument("--sampler", choices=["torchreid", "fit"], default="torchreid",
                    help="P random identities per batch, or the P with the most images left")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(a.like / "config.json"))
    if a.epochs:
        cfg["epochs"] = a.epochs
    split = json.load(open(a.like / "split.json"))
    trainer = Trainer(cfg, split, a.init, a.sampler)
    a.out.mkdir(parents=True, exist_ok=True)
    json.dump(cfg, open(a.out / "config.json", "w"), indent=2)
    shutil.copy(a.like / "split.json", a.out / "split.json")
    # The schedule's length: the sampler's epochs vary by a batch or so with the draw.
    batches = len(identity_batches(trainer.train_pids, cfg["p"], cfg["k"], random.Random(0)))
    scheduler = trainer.schedule(batches)
    columns = ["epoch", "lr", "loss", "ar_loss", "id_loss", "s_ar", "s_id", "train_accuracy",
               "val_accuracy", "val_balanced_accuracy", "val_map", "val_rank1", "score",
               "images_per_second", "seconds"]
    rows, best = [], -1.0
    for epoch in range(1, cfg["epochs"] + 1):
        started = time.perf_counter()
        row = {"epoch": epoch, **trainer.train_epoch(scheduler), **trainer.validate()}
        row["seconds"] = time.perf_counter() - started
        rows.append(row)
        with open(a.out / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, columns)
            w.writeheader()
            w.writerows(rows)
        state = trainer.checkpoint()
        save_file(state, a.out / "last.safetensors")
        if row["score"] > best:
            best = row["score"]
            save_file(state, a.out / "best.safetensors")
        print(f"epoch {epoch}: loss {row['loss']:.4f} val mAP {100 * row['val_map']:.2f}% "
              f"attributes {100 * row['val_accuracy']:.2f}% "
              f"({100 * row['val_balanced_accuracy']:.2f}%) "
              f"{row['images_per_second']:.1f} img/s", flush=True)


if __name__ == "__main__":
    main()
