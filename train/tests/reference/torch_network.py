#!/usr/bin/env python3
"""An independent PyTorch build of the edge-reid-train network, and the fixtures that check ours.

Usage:
    python3 torch_network.py heads CHECKPOINT.safetensors CONFIG.json OUT.safetensors
    python3 torch_network.py resnet18 OUT.safetensors
    python3 torch_network.py mobilenetv2 OUT.safetensors

`heads`: CHECKPOINT is a `best.safetensors` that `edge-reid-train fit` wrote (torchvision names
for the backbone, `attr.*`, `sa.*`, `reid.*`, `person` for the heads) and CONFIG its run's
`config.json` or its `net` part (backbone, head, embedding size, person head, input size, branch
pooling, embedding norm). The
network is rebuilt here from torchvision's `BasicBlock` and torch's own layers
(`nn.MultiheadAttention` for the attention, `nn.LayerNorm`, `nn.BatchNorm1d/2d`), the checkpoint
loaded with `strict=True`, and OUT gets, for a fixed batch of 4 images:
  - `input`;
  - `eval.<output>`: the outputs in eval mode (running statistics);
  - `train.<output>`: the outputs in train mode (batch statistics), then `running.<var>`: every
    batch norm's running statistics after that one train-mode pass (momentum 0.1, unbiased
    variance, as torch updates them);
  - `grad_out.<output>`: fixed random tensors, and `grad.<var>`: the gradient of
    `sum(train.<output> * grad_out.<output>)` over all outputs for every learned variable.
Outputs are `embedding`, `attr.<name>` (12) and `person` (when the network has one).

`resnet18`: torchvision's ResNet18 itself, with the paper's stem (conv1 stride (2,1), max-pool
stride 1), every variable filled by `formula_weights` (nothing to commit but the outputs), run in
eval mode on `fixed_input` of 2 x 3 x 128 x 64: OUT gets `v`, the global average pool of
`layer4`, which the Rust test compares with our backbone given the same weights and input.

`mobilenetv2`: torchvision's MobileNetV2 itself at width 0.75, made into our light backbone: the
stem's stride (2,1), the 24-channel stage at stride 1, ReLU for ReLU6, a last 1x1 convolution to
512 channels; filled by `formula_weights` under our variable names, run on the same input in eval
mode and in train mode (batch statistics, in f64): OUT gets `eval.layer3` (after the 72-channel
stage), `eval.v`, `train.layer3` and `train.v`, and the gradients of `sum(train.v * grad_out)`
(`grad_out` fixed random) for the learned variables of the stem, `layer1`, the first two blocks
of `layer2`, one depthwise layer of `layer4` and the last batch norm: `grad.<var>` in f64 and
`grad32.<var>` as torch computes them in f32 (on these weights train mode is so badly
conditioned that the two differ by up to 28%: ours is held to torch's f32 error).

The Rust test that reads these files is `train/src/model/torch_reference.rs`; regenerate them with
`train/tests/reference/make_network_fixtures.sh`.
"""
import json
import math
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torchvision.models import mobilenet_v2, resnet18
from torchvision.models.resnet import BasicBlock

# edge_reid::attributes::ATTRIBUTES, in order (the class counts come from the checkpoint).
ATTRIBUTES = ["age", "backpack", "bag", "handbag", "clothes", "down", "up", "hair", "hat",
              "gender", "upcolor", "downcolor"]
STAGE_WIDTHS = {"resnet18": [64, 128, 256, 512], "small": [16, 32, 64, 128],
                "tiny": [8, 16, 32, 64], "mobilenetv2": [24, 24, 72, 512]}
BLOCKS = {"resnet18": 2, "small": 1, "tiny": 1}
REID_LEAKY_SLOPE = 0.01
ATTENTION_HEADS = 2


def stem_for_128x64(net):
    """The paper's stem: conv1 halves the rows only, the max-pool keeps the size."""
    net.conv1.stride = (2, 1)
    net.maxpool = nn.MaxPool2d(3, stride=1, padding=1)


class Backbone(nn.Module):
    """torchvision's ResNet layout at any stage widths (torchvision's own `BasicBlock`)."""

    def __init__(self, widths, blocks):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, stride=(2, 1), padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.maxpool = nn.MaxPool2d(3, stride=1, padding=1)
        inplanes = widths[0]
        for i, planes in enumerate(widths):
            layer = []
            for b in range(blocks):
                stride = 2 if b == 0 and i > 0 else 1
                down = None
                if stride != 1 or inplanes != planes:
                    down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                         nn.BatchNorm2d(planes))
                layer.append(BasicBlock(inplanes, planes, stride, down))
                inplanes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        layer3 = self.layer3(self.layer2(self.layer1(x)))
        return layer3, self.layer4(layer3)


class LightBackbone(nn.Module):
    """torchvision's MobileNetV2 at width 0.75 made into our light backbone: the stem's stride
    (2,1), the 24-channel stage at stride 1, ReLU for ReLU6, a last 1x1 convolution to 512
    channels; `layer3` is the output of the 72-channel stage (features 0-13)."""

    def __init__(self):
        super().__init__()
        setting = [[1, 16, 1, 1], [6, 24, 2, 1], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                   [6, 160, 3, 2], [6, 320, 1, 1]]
        net = mobilenet_v2(width_mult=0.75, inverted_residual_setting=setting)
        net.features[0][0].stride = (2, 1)
        last = net.features[18]
        last[0] = nn.Conv2d(last[0].in_channels, 512, 1, bias=False)
        last[1] = nn.BatchNorm2d(512)
        for module in net.modules():
            for name, child in module.named_children():
                if isinstance(child, nn.ReLU6):
                    setattr(module, name, nn.ReLU())
        self.features = net.features

    def forward(self, x):
        layer3 = self.features[:14](x)
        return layer3, self.features[14:](layer3)


class ConvBranch(nn.Module):
    """`grid`: the map adaptively average-pooled to 4x4 and flattened; else its global mean."""

    def __init__(self, c3, branch, out, grid):
        super().__init__()
        self.grid = grid
        self.conv = nn.Conv2d(c3, branch, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(branch)
        self.fc = nn.Linear(branch * 16 if grid else branch, out)

    def forward(self, x):
        y = F.relu(self.bn(self.conv(x)))
        return self.fc(F.adaptive_avg_pool2d(y, (4, 4)).flatten(1) if self.grid else y.mean((2, 3)))


class DenseBranch(nn.Module):
    def __init__(self, c4, hidden, classes):
        super().__init__()
        self.fc1 = nn.Linear(c4, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, v):
        return self.fc2(F.relu(self.fc1(v)))


class Net(nn.Module):
    def __init__(self, cfg, classes):
        super().__init__()
        widths = STAGE_WIDTHS[cfg["backbone"]]
        c3, c4 = widths[2], widths[3]
        hidden, branch, token = c4 // 4, c3 // 4, c4 // 4
        self.head = cfg["head"]
        # Configs written before these options had global pooling and the embedding's norm.
        grid = cfg.get("branch_pool", "global") == "grid"
        self.embedding_norm = cfg.get("embedding_norm", True)
        if cfg["backbone"] == "mobilenetv2":
            self.backbone = LightBackbone()
        else:
            self.backbone = Backbone(widths, BLOCKS[cfg["backbone"]])
        attr = {}
        for name in ATTRIBUTES:
            if self.head == "baseline":
                attr[name] = DenseBranch(c4, hidden, classes[name])
            elif self.head == "convhead":
                attr[name] = ConvBranch(c3, branch, classes[name], grid)
            else:
                m = ConvBranch(c3, branch, token, grid)
                m.out = nn.Linear(token, classes[name])
                attr[name] = m
        self.attr = nn.ModuleDict(attr)
        if self.head == "sa":
            self.v_proj = nn.Linear(c4, token)
            self.attention = nn.MultiheadAttention(token, ATTENTION_HEADS, batch_first=True)
            self.norm = nn.LayerNorm(token)
        self.reid_fc = nn.Linear(c4, cfg["embedding_dim"])
        if self.embedding_norm:
            self.reid_bn = nn.BatchNorm1d(cfg["embedding_dim"])
        self.person = nn.Linear(c4, 1) if cfg["person_head"] else None

    def forward(self, x):
        layer3, layer4 = self.backbone(x)
        v = layer4.mean((2, 3))
        embedding = self.reid_fc(v)
        if self.embedding_norm:
            embedding = F.leaky_relu(self.reid_bn(embedding), REID_LEAKY_SLOPE)
        out = {"embedding": embedding}
        if self.head == "baseline":
            logits = [self.attr[n](v) for n in ATTRIBUTES]
        elif self.head == "convhead":
            logits = [self.attr[n](layer3) for n in ATTRIBUTES]
        else:
            tokens = torch.stack([self.v_proj(v)] + [self.attr[n](layer3) for n in ATTRIBUTES], 1)
            attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
            attended = self.norm(tokens + attended)
            logits = [self.attr[n].out(attended[:, i + 1]) for i, n in enumerate(ATTRIBUTES)]
        for n, l in zip(ATTRIBUTES, logits):
            out[f"attr.{n}"] = l
        if self.person is not None:
            out["person"] = self.person(v)
        return out


def torch_names(checkpoint, head):
    """The checkpoint's variables under this module's names (q/k/v stacked into in_proj)."""
    state = {}
    light = "conv_last.weight" in checkpoint
    for name, t in checkpoint.items():
        if name.startswith("kendall."):
            continue
        if light and name in light_names(inverse=True):
            state["backbone." + light_names(inverse=True)[name]] = t
        elif name.split(".")[0] in ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4"):
            state["backbone." + name] = t
        elif name.startswith("reid."):
            state[name.replace("reid.", "reid_", 1)] = t
        elif name.startswith("sa.attention."):
            continue
        elif name.startswith("sa."):
            state[name[len("sa."):]] = t
        else:
            state[name] = t
    if head == "sa":
        p = "sa.attention."
        state["attention.in_proj_weight"] = torch.cat([checkpoint[p + k + ".weight"]
                                                       for k in "qkv"])
        state["attention.in_proj_bias"] = torch.cat([checkpoint[p + k + ".bias"] for k in "qkv"])
        state["attention.out_proj.weight"] = checkpoint[p + "out.weight"]
        state["attention.out_proj.bias"] = checkpoint[p + "out.bias"]
    return state


def our_name(name):
    """The checkpoint's name of this module's variable `name` (inverse of `torch_names`)."""
    if name.startswith("backbone.features."):
        return light_names()[name[len("backbone."):]]
    if name.startswith("backbone."):
        return name[len("backbone."):]
    if name.startswith("reid_"):
        return name.replace("reid_", "reid.", 1)
    if name.startswith(("v_proj.", "norm.")):
        return "sa." + name
    return name


def fixed_input(shape):
    """A deterministic batch: sines of the index."""
    n = math.prod(shape)
    i = torch.arange(n, dtype=torch.float64)
    return (torch.sin(i * 0.013) + torch.cos((i // 512) * 0.7)).float().reshape(shape)


def heads(checkpoint_path, config_path, out_path):
    checkpoint = load_file(checkpoint_path)
    cfg = json.load(open(config_path))
    cfg = cfg.get("net", cfg)
    classes = {}
    for n in ATTRIBUTES:
        last = {"baseline": "fc2", "convhead": "fc", "sa": "out"}[cfg["head"]]
        classes[n] = checkpoint[f"attr.{n}.{last}.weight"].shape[0]
    net = Net(cfg, classes)
    state = torch_names(checkpoint, cfg["head"])
    missing, unexpected = net.load_state_dict(state, strict=False)
    # torch's batch norms count their updates, ours do not (the momentum is fixed at 0.1)
    missing = [m for m in missing if not m.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit(f"checkpoint does not fit: missing {missing}, unexpected {unexpected}")
    x = fixed_input((4, 3, cfg["input_height"], cfg["input_width"]))
    fixture = {"input": x}
    net.eval()
    with torch.no_grad():
        for k, v in net(x).items():
            fixture[f"eval.{k}"] = v
    net.train()
    out = net(x)
    g = torch.Generator().manual_seed(0)
    loss = 0
    for k, v in out.items():
        fixture[f"train.{k}"] = v.detach()
        grad_out = torch.randn(v.shape, generator=g)
        fixture[f"grad_out.{k}"] = grad_out
        loss = loss + (v * grad_out).sum()
    loss.backward()
    for name, buf in net.named_buffers():
        if "running_" in name:
            fixture[f"running.{our_name(name)}"] = buf
    for name, p in net.named_parameters():
        if name.startswith("attention."):
            continue
        fixture[f"grad.{our_name(name)}"] = p.grad
    if cfg["head"] == "sa":
        d = net.attention.embed_dim
        for i, k in enumerate("qkv"):
            fixture[f"grad.sa.attention.{k}.weight"] = net.attention.in_proj_weight.grad[i * d:(i + 1) * d]
            fixture[f"grad.sa.attention.{k}.bias"] = net.attention.in_proj_bias.grad[i * d:(i + 1) * d]
        fixture["grad.sa.attention.out.weight"] = net.attention.out_proj.weight.grad
        fixture["grad.sa.attention.out.bias"] = net.attention.out_proj.bias.grad
    save_file({k: v.contiguous() for k, v in fixture.items()}, out_path)


def formula_weights(name, shape):
    """Deterministic weights for variable `name`: a sine of the index, phase from the name, at a
    scale that keeps activations of order 1 (the Rust test computes the same)."""
    n = math.prod(shape)
    phase = sum(name.encode()) % 97
    i = torch.arange(n, dtype=torch.float64)
    w = torch.sin(i * 0.61 + phase)
    if name.endswith("running_var"):
        return (1.0 + 0.5 * w.abs()).float().reshape(shape)
    if name.endswith(("running_mean", "bias")):
        return (0.1 * w).float().reshape(shape)
    if len(shape) == 1:  # a batch norm's scale
        return (1.0 + 0.1 * w).float().reshape(shape)
    fan_in = n // shape[0]
    return (w * math.sqrt(2.0 / fan_in)).float().reshape(shape)


def resnet(out_path):
    net = resnet18()
    stem_for_128x64(net)
    net.fc = nn.Identity()
    state = {k: formula_weights(k, v.shape) if v.dtype.is_floating_point else v
             for k, v in net.state_dict().items() if not k.startswith("fc.")}
    net.load_state_dict(state, strict=True)
    net.eval()
    x = fixed_input((2, 3, 128, 64))
    with torch.no_grad():
        v = net(x)
    save_file({"v": v.contiguous()}, out_path)


_LIGHT_NAMES = {}


def light_names(inverse=False):
    """`mobilenet_names` of the light backbone (or its inverse), computed once."""
    if not _LIGHT_NAMES:
        names = mobilenet_names(LightBackbone())
        _LIGHT_NAMES[False] = names
        _LIGHT_NAMES[True] = {ours: theirs for theirs, ours in names.items()}
    return _LIGHT_NAMES[inverse]


def mobilenet_names(net):
    """Our variable name for each of torchvision's MobileNetV2 names (`features.<block>...`),
    with the features' blocks grouped into the four stages (blocks 1-3, 4-6, 7-13, 14-17) as
    `mobilenet.rs` does."""
    stages = [range(1, 4), range(4, 7), range(7, 14), range(14, 18)]
    names = {}
    for key in net.features.state_dict():
        key = f"features.{key}"
        parts = key.split(".")
        block, rest = int(parts[1]), parts[2:]
        if block == 0:
            ours = ["conv1" if rest[0] == "0" else "bn1"] + rest[1:]
        elif block == 18:
            ours = ["conv_last" if rest[0] == "0" else "bn_last"] + rest[1:]
        else:
            stage = next(s for s, blocks in enumerate(stages) if block in blocks)
            index = block - stages[stage].start
            # torchvision: conv.[expand (0), dw, project conv, project bn] or, at expansion 1,
            # conv.[dw (0), project conv, project bn]; expand and dw are (conv, bn) pairs.
            layers = net.features[block].conv
            expand = len(layers) == 4
            part = int(rest[1])
            relu_parts = ["expand", "dw"] if expand else ["dw"]
            if part < len(relu_parts):
                ours = [relu_parts[part]] + rest[2:]
            else:
                ours = ["project", str(part - len(relu_parts))] + rest[2:]
            ours = [f"layer{stage + 1}", str(index)] + ours
        names[key] = ".".join(ours)
    return names


def mobilenet(out_path):
    # Only the early layers' gradients are kept: they have passed back through every later one;
    # a few later blocks' cover the other kinds of layer.
    kept = ("conv1.", "bn1.", "layer1.", "layer2.0.", "layer2.1.", "layer4.3.dw.", "bn_last.")
    names = light_names()
    fixture = {}
    for mode, dtype in [("eval", torch.float32), ("train", torch.float64),
                        ("train32", torch.float32)]:
        net = LightBackbone()
        net.load_state_dict({k: formula_weights(names[k], v.shape) if v.dtype.is_floating_point
                             else v for k, v in net.state_dict().items()})
        net = net.to(dtype).train(mode != "eval")
        layer3, layer4 = net(fixed_input((2, 3, 128, 64)).to(dtype))
        v = layer4.mean((2, 3))
        if mode == "eval":
            fixture["eval.layer3"] = layer3.detach().contiguous()
            fixture["eval.v"] = v.detach().contiguous()
            continue
        if mode == "train":
            fixture["train.layer3"] = layer3.detach().float().contiguous()
            fixture["train.v"] = v.detach().float().contiguous()
        grad_out = torch.randn(v.shape, generator=torch.Generator().manual_seed(0),
                               dtype=torch.float64)
        (v * grad_out.to(dtype)).sum().backward()
        fixture["grad_out"] = grad_out.float()
        prefix = "grad" if mode == "train" else "grad32"
        for name, p in net.named_parameters():
            if names[name].startswith(kept):
                fixture[f"{prefix}.{names[name]}"] = p.grad.float().contiguous()
    save_file(fixture, out_path)


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    if len(sys.argv) == 5 and sys.argv[1] == "heads":
        heads(*sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "resnet18":
        resnet(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "mobilenetv2":
        mobilenet(sys.argv[2])
    else:
        sys.exit(__doc__)
