#!/usr/bin/env python3
"""PyTorch reference benchmark for MMANet's segmentation (ESANet, RGB-D) training step.

Written from the project's own Rust code: the network `core/src/model/esanet.rs`, the task loss,
dense MAD and the regularization decoder's loss `core/src/task/segmentation.rs`,
`core/src/losses/mad.rs` (`dense_mad_loss`), the teacher's normalisation
(`core/src/task/mod.rs::{TeacherNorm, FrozenTeacher}`), the training step
(`core/src/train.rs::train_batch`) and the method spec (`MMANET.md` §2). It is not derived from
the official MMANet code. It is the segmentation companion of `bench/mmanet_torch.py` (the
classification step) and prints a table in the same shape:

    | side | preset | method | batch | median ms/step | samples/s | peak memory |

Rows (labels as the Rust `bench train` rows)
  SF-MD   (--method sf-md) per-sample modality dropout (uniform over the 3 non-empty
          combinations of rgb, depth), the student without the regularization decoder, forward
          with the [B, 2] mask, the class-weighted CE summed over 4 scales, one readback of
          [ce, total, pixel accuracy], backward, SGD step.
  MMANet  (--method mmanet) as SF-MD, on the student with the regularization decoder (run only
          when the batch holds a depth-only sample, as the Rust forward), plus the frozen teacher
          on the complete modalities (batch statistics under no_grad: `teacher_norm = official`
          for segmentation), dense MAD on the context output, skip3 and skip2 weighted by the
          entropy of the teacher's 1/16 decoder feature, and MAR: the regularization decoder's
          4-scale CE on the depth-only samples; one readback of [ce, mad, mar, total, pixel
          accuracy], backward, SGD step.
  deployment forward  (unless --no-deploy) the deployment network (no regularization decoder)
          in eval mode on the complete modalities: host inputs uploaded, forward, arg-max label
          map read back (.cpu()).
  MAD forward + backward  (--mad) `mmanet bench mad`'s segmentation case (dense MAD, N = 9600
          pixel rows, C = 512 channels, a 512-channel teacher map).

Examples
  python bench/esanet_torch.py --check-params
  python bench/esanet_torch.py --check-golden
  python bench/esanet_torch.py --preset tiny --batch 2 --height 96 --width 128 --warmup 1 \
      --iters 1 --threads 1 --show-losses
  python bench/esanet_torch.py --preset paper --batch 8 --device cuda --warmup 5 --iters 20 \
      --json torch-seg.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import warnings

# torch warns on import when NumPy is absent; the script does not use NumPy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # exit status 3: a driving script can skip the PyTorch side
    print("error: PyTorch is not installed (pip install torch)", file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Shared with the classification reference: the optimiser settings, timing, MAD's guards and the
# teacher weights (entropy over its sum, as `core/src/losses/mad.rs`).
from mmanet_torch import (  # noqa: E402
    LR, MOMENTUM, NORM_EPS, WEIGHT_DECAY, fmt_bytes, free, num_params, sync, teacher_weights,
    time_unit,
)

# ---------------------------------------------------------------------------------------------
# Constants (the Rust defaults)

#: `SegModelConfig::arch` (core/src/model/esanet.rs): block, blocks per layer, planes of
#: layer1..4, decoder channels (1/16, 1/8, 1/4), NonBottleneck1D blocks per decoder module.
PRESETS = {
    "paper": ("bottleneck", (3, 4, 6, 3), (64, 128, 256, 512), (512, 256, 128), 3),
    "small": ("basic", (1, 1, 1, 1), (16, 32, 64, 128), (64, 32, 16), 1),
    "tiny": ("basic", (1, 1, 1, 1), (8, 16, 32, 64), (32, 16, 8), 1),
}
EXPANSION = {"basic": 1, "bottleneck": 4}
#: `ContextKind::bins`: PPM (NYUv2) and APPM (Cityscapes).
CONTEXT_BINS = {"ppm": (1, 5), "appm": (1, 2, 4, 8)}
MODALITIES = ("rgb", "depth")
#: The 3 non-empty combinations over (rgb, depth), in `all_combinations(2)` order: R, D, RD.
ALL_COMBINATIONS = [(1, 0), (0, 1), (1, 1)]
#: The weak combination of segmentation MAR: depth alone (the one the Rust forward hard-codes as
#: the condition for running the regularization decoder, `segmentation.rs::depth_only`).
WEAK = (0, 1)
LABELS = {"sf-md": "SF-MD", "mmanet": "MMANet", "deploy": "deployment forward",
          "mad": "MAD forward + backward"}
#: NYUv2's α (`kd_scale`) and β (`auxi_scale`) (configs/nyuv2.toml, spec §2), what the Rust
#: `bench train --preset seg-…` sets (app/src/bench/train_seg.rs). `MmanetConfig`'s own defaults
#: (core/src/mmanet.rs, one for both tasks) are the anti-spoofing 30 and 0.5.
ALPHA = 4.0
BETA = 0.2
#: CE denominator guard (`weighted_cross_entropy`: pixel weight sum clamped to 1e-12).
CE_EPS = 1e-12
#: MAR's value when no sample has the weak combination (`regularization_loss`).
MAR_EMPTY = 1e-16
#: `mmanet bench mad`'s segmentation shape: N = 8·30·40 pixel rows, C = 512, 512-channel map.
MAD_SHAPE = (8 * 30 * 40, 512, 512)
PAPER_CLASSES = 40
PAPER_TEACHER_PARAMS = 71_733_544
PAPER_STUDENT_PARAMS = 88_068_840
PAPER_REG_DECODER_PARAMS = PAPER_STUDENT_PARAMS - PAPER_TEACHER_PARAMS  # 16,335,296

# ---------------------------------------------------------------------------------------------
# Network (core/src/model/esanet.rs)


def conv(cin: int, cout: int, k: tuple[int, int], stride: int = 1, bias: bool = False,
         kaiming: bool = False, groups: int = 1) -> nn.Conv2d:
    """k[0]×k[1] conv, padding k/2 per axis; `kaiming` = the ResNet init (fan_out, relu),
    otherwise PyTorch's default (Burn's default too)."""
    c = nn.Conv2d(cin, cout, k, stride=stride, padding=(k[0] // 2, k[1] // 2), bias=bias,
                  groups=groups)
    if kaiming:
        nn.init.kaiming_normal_(c.weight, mode="fan_out", nonlinearity="relu")
    return c


class ResBlock(nn.Module):
    """torchvision's BasicBlock / Bottleneck (stride on the 3×3), names `conv1`, `bn1`, …,
    `downsample` = (1×1 conv, BN) when the stride or the width changes."""

    def __init__(self, kind: str, cin: int, planes: int, stride: int):
        super().__init__()
        cout = planes * EXPANSION[kind]
        self.downsample = (
            nn.Sequential(conv(cin, cout, (1, 1), stride, kaiming=True), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout else None
        )
        if kind == "basic":
            self.conv1 = conv(cin, planes, (3, 3), stride, kaiming=True)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = conv(planes, planes, (3, 3), 1, kaiming=True)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = self.bn3 = None
        else:
            self.conv1 = conv(cin, planes, (1, 1), 1, kaiming=True)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = conv(planes, planes, (3, 3), stride, kaiming=True)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = conv(planes, cout, (1, 1), 1, kaiming=True)
            self.bn3 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.conv3 is not None:
            y = self.bn3(self.conv3(F.relu(y)))
        return F.relu(y + identity)


class ResNetEncoder(nn.Module):
    """torchvision-layout ResNet without `fc`: `conv1` 7×7/2 → `bn1` → ReLU (the stem), then
    `layer1..4` (the max-pool runs in `EsaNet.encode`, between the stem and layer1)."""

    def __init__(self, in_channels: int, preset: str):
        super().__init__()
        kind, layers, planes, _, _ = PRESETS[preset]
        self.conv1 = conv(in_channels, planes[0], (7, 7), 2, kaiming=True)
        self.bn1 = nn.BatchNorm2d(planes[0])
        cin = planes[0]
        stages = []
        for i in range(4):
            blocks = []
            for b in range(layers[i]):
                stride = 1 if i == 0 or b > 0 else 2
                blocks.append(ResBlock(kind, cin, planes[i], stride))
                cin = planes[i] * EXPANSION[kind]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn1(self.conv1(x)))

    def layer(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return (self.layer1, self.layer2, self.layer3, self.layer4)[i - 1](x)


def max_pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 3, stride=2, padding=1)


class SqueezeExcitation(nn.Module):
    """x ⊙ σ(W₂·ReLU(W₁·GAP(x))) with 1×1 convs (bias), hidden = max(C / 16, 1)."""

    def __init__(self, c: int):
        super().__init__()
        hidden = max(c // 16, 1)
        self.fc1 = conv(c, hidden, (1, 1), bias=True)
        self.fc2 = conv(hidden, c, (1, 1), bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class SeAddFusion(nn.Module):
    """`SE_rgb(rgb) + SE_depth(depth)`."""

    def __init__(self, c: int):
        super().__init__()
        self.se_rgb = SqueezeExcitation(c)
        self.se_depth = SqueezeExcitation(c)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        return self.se_rgb(rgb) + self.se_depth(depth)


class ConvBnAct(nn.Module):
    """k×k conv (no bias) → BN → ReLU."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        self.conv = conv(cin, cout, (k, k))
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def nearest(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="nearest")


class ContextModule(nn.Module):
    """PPM / APPM: per bin, adaptive-avg-pool, 1×1 ConvBnAct to `cin / bins`, nearest back up;
    concatenated with the input; 1×1 ConvBnAct to `cout`."""

    def __init__(self, kind: str, cin: int, cout: int, train_size_32: tuple[int, int]):
        super().__init__()
        self.kind = kind
        self.bins = CONTEXT_BINS[kind]
        self.train_size_32 = train_size_32
        reduced = cin // len(self.bins)
        self.branches = nn.ModuleList([ConvBnAct(cin, reduced, 1) for _ in self.bins])
        self.final_conv = ConvBnAct(cin + reduced * len(self.bins), cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        parts = [x]
        for b, branch in zip(self.bins, self.branches):
            if self.kind == "ppm":
                pooled = (b, b)
            else:  # int(h / (H/32) + 0.5) per axis, as the official APPM
                mh = int(h / self.train_size_32[0] + 0.5)
                mw = int(w / self.train_size_32[1] + 0.5)
                pooled = (b * max(mh, 1), b * max(mw, 1))
            y = branch(F.adaptive_avg_pool2d(x, pooled))
            parts.append(nearest(y, (h, w)))
        return self.final_conv(torch.cat(parts, 1))


class NonBottleneck1D(nn.Module):
    """ERFNet's: 3×1 → ReLU → 1×3 → BN → ReLU → 3×1 → ReLU → 1×3 → BN, + input, ReLU (convs
    with bias, BN eps 1e-3)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv3x1_1 = conv(c, c, (3, 1), bias=True)
        self.conv1x3_1 = conv(c, c, (1, 3), bias=True)
        self.bn1 = nn.BatchNorm2d(c, eps=1e-3)
        self.conv3x1_2 = conv(c, c, (3, 1), bias=True)
        self.conv1x3_2 = conv(c, c, (1, 3), bias=True)
        self.bn2 = nn.BatchNorm2d(c, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv3x1_1(x))
        y = F.relu(self.bn1(self.conv1x3_1(y)))
        y = F.relu(self.conv3x1_2(y))
        y = self.bn2(self.conv1x3_2(y))
        return F.relu(y + x)


class LearnedUpsample(nn.Module):
    """`learned-3x3-zeropad`: nearest ×2, then a depthwise 3×3 conv (zero padding, bias), its
    kernel initialised to the bilinear [1 2 1]ᵀ[1 2 1]/16, bias 0."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = conv(c, c, (3, 3), bias=True, groups=c)
        k = torch.tensor([1.0, 2.0, 1.0])
        with torch.no_grad():
            self.conv.weight.copy_((k[:, None] * k[None, :] / 16.0).expand(c, 1, 3, 3))
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        return self.conv(nearest(x, (2 * h, 2 * w)))


class DecoderModule(nn.Module):
    """3×3 ConvBnAct → NonBottleneck1D × n → (1×1 side output) → learned ×2 → + skip."""

    def __init__(self, cin: int, c: int, blocks: int, classes: int):
        super().__init__()
        self.conv3x3 = ConvBnAct(cin, c, 3)
        self.blocks = nn.Sequential(*[NonBottleneck1D(c) for _ in range(blocks)])
        self.side_output = conv(c, classes, (1, 1), bias=True)
        self.upsample = LearnedUpsample(c)

    def forward(self, x: torch.Tensor, skip: torch.Tensor):
        y = self.blocks(self.conv3x3(x))
        side = self.side_output(y)
        return self.upsample(y) + skip, side


class Decoder(nn.Module):
    """Three modules (1/32 → 1/16 → 1/8 → 1/4), `conv_out` 3×3, two learned ×2 upsamplings.
    Returns (logits, [side 1/8, 1/16, 1/32], [features 1/4, 1/8, 1/16])."""

    def __init__(self, preset: str, classes: int):
        super().__init__()
        _, _, _, d, blocks = PRESETS[preset]
        cins = (d[0], d[0], d[1])
        self.modules_ = nn.ModuleList(
            [DecoderModule(cins[i], d[i], blocks, classes) for i in range(3)])
        self.conv_out = conv(d[2], classes, (3, 3), bias=True)
        self.upsample1 = LearnedUpsample(classes)
        self.upsample2 = LearnedUpsample(classes)

    def forward(self, cache: dict):
        f16, s32 = self.modules_[0](cache["context"], cache["skip3"])
        f8, s16 = self.modules_[1](f16, cache["skip2"])
        f4, s8 = self.modules_[2](f8, cache["skip1"])
        logits = self.upsample2(self.upsample1(self.conv_out(f4)))
        return {"logits": logits, "side": (s8, s16, s32), "features": (f4, f8, f16)}


def scales(out: dict) -> list[torch.Tensor]:
    """The four scales the task loss sums over: full, 1/8, 1/16, 1/32."""
    return [out["logits"], *out["side"]]


class SkipLayer(nn.Module):
    """1×1 ConvBnAct when the channels differ, identity otherwise."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = ConvBnAct(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.conv is None else self.conv(x)


class EsaNet(nn.Module):
    """ESANet with masked SE-add fusion after the stem and layer1–4, and optionally MMANet's
    regularization decoder. `mask` is [B, 2] of 0/1 (rgb, depth). The depth stream continues
    from its own unmasked features, the RGB stream from the fused ones."""

    def __init__(self, preset: str, classes: int, train_size: tuple[int, int],
                 reg_decoder: bool = False, context: str = "ppm"):
        super().__init__()
        kind, _, planes, d, _ = PRESETS[preset]
        e = EXPANSION[kind]
        enc = [planes[0]] + [p * e for p in planes]
        self.encoder_rgb = ResNetEncoder(3, preset)
        self.encoder_depth = ResNetEncoder(1, preset)
        self.fusions = nn.ModuleList([SeAddFusion(c) for c in enc])
        self.skips = nn.ModuleList([SkipLayer(enc[1], d[2]), SkipLayer(enc[2], d[1]),
                                    SkipLayer(enc[3], d[0])])
        self.context = ContextModule(context, enc[4], d[0],
                                     (train_size[0] // 32, train_size[1] // 32))
        self.decoder = Decoder(preset, classes)
        self.reg_decoder = Decoder(preset, classes) if reg_decoder else None

    def encode(self, rgb: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor) -> dict:
        b = mask.shape[0]
        m_rgb = mask[:, 0:1].reshape(b, 1, 1, 1)
        m_depth = mask[:, 1:2].reshape(b, 1, 1, 1)

        def fuse(i, r, dd):
            return self.fusions[i](r * m_rgb, dd * m_depth)

        r = self.encoder_rgb.stem(rgb)
        dd = self.encoder_depth.stem(depth)
        f = max_pool(fuse(0, r, dd))
        dd = max_pool(dd)
        skips = []
        for i in range(1, 5):
            r = self.encoder_rgb.layer(i, f)
            dd = self.encoder_depth.layer(i, dd)
            f = fuse(i, r, dd)
            if i <= 3:
                skips.append(self.skips[i - 1](f))
        return {"context": self.context(f), "skip3": skips[2], "skip2": skips[1],
                "skip1": skips[0]}

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor,
                with_reg: bool = False):
        cache = self.encode(rgb, depth, mask)
        main = self.decoder(cache)
        reg = self.reg_decoder(cache) if (self.reg_decoder is not None and with_reg) else None
        return main, cache, reg


# ---------------------------------------------------------------------------------------------
# Losses (core/src/task/segmentation.rs, core/src/losses/mad.rs)


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                           weights: torch.Tensor) -> torch.Tensor:
    """One scale: Σ_pixels w[y]·CE / Σ_non-void w[y]; void (label 0) ignored, labels shifted by
    −1 (PyTorch's fused weighted CE with ignore_index −1, summed, over the non-void weight sum;
    the same value as the Rust gather/select form, checked by --check-golden)."""
    target = labels - 1
    num = F.cross_entropy(logits, target, weight=weights, ignore_index=-1, reduction="sum")
    pixel_w = weights[target.clamp_min(0)] * (labels > 0)
    return num / pixel_w.sum().clamp_min(CE_EPS)


def weighted_cross_entropy_rust(logits: torch.Tensor, labels: torch.Tensor,
                                weights: torch.Tensor) -> torch.Tensor:
    """`weighted_cross_entropy` op for op as the Rust code writes it (for the self-check)."""
    logp = F.log_softmax(logits, 1)
    valid = (labels > 0).to(logits.dtype)
    target = (labels - 1).clamp_min(0)
    picked = logp.gather(1, target.unsqueeze(1)).squeeze(1)
    pw = weights[target] * valid
    return (-picked * pw).sum() / pw.sum().clamp_min(CE_EPS)


def multiscale_loss(logit_scales: list[torch.Tensor], label_scales: list[torch.Tensor],
                    weights: torch.Tensor) -> torch.Tensor:
    """The task loss: `weighted_cross_entropy` summed over full, 1/8, 1/16, 1/32."""
    total = None
    for lg, lb in zip(logit_scales, label_scales):
        v = weighted_cross_entropy(lg, lb, weights)
        total = v if total is None else total + v
    return total


def pixel_rows(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] → [B·H·W, C], pixels in (b, h, w) order."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def pool_tall(x: torch.Tensor) -> torch.Tensor:
    """Adaptive-avg-pools a level to 30×40 when it is taller than 30."""
    return F.adaptive_avg_pool2d(x, (30, 40)) if x.shape[2] > 30 else x


def row_normalize(m: torch.Tensor) -> torch.Tensor:
    """Rows over sqrt(max(Σ x², eps²)), as `row_normalize`."""
    return m / m.square().sum(1, keepdim=True).clamp_min(NORM_EPS * NORM_EPS).sqrt()


def dense_block_row_sums(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Rows are pixels [N, C]; columns split at ⌊N/2⌋, each block G = X X[J]ᵀ row-normalised on
    its own; the two blocks' row sums of the squared discrepancy, [2, N]."""
    n = student.shape[0]
    half = n // 2
    teacher = teacher.detach()
    sums = []
    for lo, hi in ((0, half), (half, n)):
        if hi == lo:
            sums.append(student.new_zeros(1, n))
            continue
        d = (row_normalize(student @ student[lo:hi].t())
             - row_normalize(teacher @ teacher[lo:hi].t())).square()
        sums.append(d.sum(1).reshape(1, n))
    return torch.cat(sums, 0)


def dense_mad_loss(student: torch.Tensor, teacher: torch.Tensor,
                   teacher_map: torch.Tensor) -> torch.Tensor:
    """Σ_i w_i·r_i (row weighting), w from the entropy of the teacher map rows [N, K]."""
    r = dense_block_row_sums(student, teacher).sum(0)
    return (r * teacher_weights(teacher_map)).sum()


def dense_mad_levels(student: dict, teacher: dict, teacher_map: torch.Tensor) -> torch.Tensor:
    """Dense MAD summed over the context output, skip3 and skip2: each level pooled to 30×40
    when taller, every pixel a row, weights from the teacher's 1/16 decoder feature pooled to
    the level's size."""
    total = None
    for key in ("context", "skip3", "skip2"):
        s, t = pool_tall(student[key]), pool_tall(teacher[key].detach())
        m = F.adaptive_avg_pool2d(teacher_map.detach(), s.shape[2:])
        v = dense_mad_loss(pixel_rows(s), pixel_rows(t), pixel_rows(m))
        total = v if total is None else total + v
    return total


def regularization_loss(main: dict, reg: dict | None, sets: list[tuple[int, int]],
                        label_scales: list[torch.Tensor], weights: torch.Tensor,
                        device: torch.device) -> torch.Tensor:
    """MAR (segmentation): the regularization decoder's 4-scale CE on the samples whose
    combination is the weak one (depth alone); 1e-16 when there are none. Without a depth-only
    sample the regularization decoder did not run and the main decoder stands in."""
    out = reg if reg is not None else main
    idx = [i for i, s in enumerate(sets) if s == WEAK]
    if not idx:
        return torch.full((), MAR_EMPTY, device=device)
    sel = torch.tensor(idx, dtype=torch.long).to(device)
    return multiscale_loss([t.index_select(0, sel) for t in scales(out)],
                           [t.index_select(0, sel) for t in label_scales], weights)


def batch_score(main: dict, labels: torch.Tensor) -> torch.Tensor:
    """Pixel accuracy over the non-void pixels (`Segmentation::batch_score`)."""
    pred = main["logits"].argmax(1)
    valid = (labels > 0).float()
    correct = (pred == labels - 1).float() * valid
    return correct.sum() / valid.sum().clamp_min(1.0)


# ---------------------------------------------------------------------------------------------
# One training step (core/src/train.rs::train_batch)


#: ImageNet normalisation of the RGB scenes (`core/src/data/rgbd.rs::IMAGENET_MEAN/STD`).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Depth statistics of the Rust bench scenes (`app/src/bench/train_seg.rs::BenchScenes`).
DEPTH_MEAN, DEPTH_STD = 128.0, 74.0


def bench_scene(i: int, height: int, width: int, classes: int):
    """Scene `i` of the Rust `bench train --preset seg-…` data (`BenchScenes::scene`), prepared
    as `rgbd::normalize` does: rgb bytes `(q·7 + i) mod 255` over the interleaved (h, w, c)
    values, divided by 255 and ImageNet-normalised; depth `1 + (p·7 + 13) mod 255` normalised
    with mean 128, std 74; labels `(p + i) mod (classes + 1)` (0 = void, every class present)."""
    n = height * width
    q = torch.arange(3 * n, dtype=torch.int64)
    rgb = ((q * 7 + i) % 255).to(torch.float32).div(255.0).reshape(height, width, 3)
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    rgb = ((rgb - mean) / std).permute(2, 0, 1)
    p = torch.arange(n, dtype=torch.int64)
    depth = (1.0 + ((p * 7 + 13) % 255).to(torch.float32) - DEPTH_MEAN) / DEPTH_STD
    labels = (p + i) % (classes + 1)
    return rgb, depth.reshape(1, height, width), labels.reshape(height, width)


def downsample_labels(labels: torch.Tensor, oh: int, ow: int) -> torch.Tensor:
    """Nearest-neighbour downsampling of [B, h, w] labels: source index ⌊i·in/out⌋."""
    h, w = labels.shape[1:]
    ys = torch.clamp(torch.arange(oh) * h // oh, max=h - 1)
    xs = torch.clamp(torch.arange(ow) * w // ow, max=w - 1)
    return labels[:, ys][:, :, xs].contiguous()


class HostBatch:
    """A fixed batch on the host (the scenes 0..B−1 of `bench_scene`), uploaded at every step
    (unless --resident-inputs): rgb, depth, the labels at full size, 1/8, 1/16 and 1/32, and the
    class weights (all 1)."""

    def __init__(self, batch: int, height: int, width: int, classes: int):
        self.batch = batch
        rgb, depth, labels = zip(*(bench_scene(i, height, width, classes)
                                   for i in range(batch)))
        self.rgb = torch.stack(rgb).contiguous()
        self.depth = torch.stack(depth).contiguous()
        full = torch.stack(labels)
        self.labels = [full] + [downsample_labels(full, height // s, width // s)
                                for s in (8, 16, 32)]
        self.weights = torch.ones(classes)

    def upload(self, device: torch.device, resident: tuple | None):
        if resident is not None:
            return resident
        to = lambda t: t.to(device, copy=True)  # noqa: E731
        return to(self.rgb), to(self.depth), [to(t) for t in self.labels], to(self.weights)


def mask_tensor(sets, device) -> torch.Tensor:
    return torch.tensor(sets, dtype=torch.float32).to(device)


class Step:
    """The timed unit of one method: everything `train_batch` does for one batch."""

    def __init__(self, method: str, args, host: HostBatch, device: torch.device):
        torch.manual_seed(args.seed)
        self.method = method
        self.device = device
        self.host = host
        self.alpha, self.beta = args.alpha, args.beta
        self.rng = random.Random(args.seed)
        self.resident = host.upload(device, None) if args.resident_inputs else None
        size = (args.height, args.width)
        # SF-MD trains the deployment network alone; MMANet's student carries the reg decoder.
        self.student = EsaNet(args.preset, args.classes, size, reg_decoder=(method == "mmanet"),
                              context=args.context).to(device).train()
        self.teacher = None
        if method == "mmanet":
            self.teacher = EsaNet(args.preset, args.classes, size, context=args.context)
            self.teacher = self.teacher.to(device)
            # `teacher_norm = official` is batch statistics for segmentation (the teacher is
            # never put in eval mode, runs under no_grad); `running` is eval mode
            self.teacher.train(args.teacher_norm != "running")
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        self.optim = torch.optim.SGD(
            self.student.parameters(), lr=LR, momentum=MOMENTUM, dampening=0.0,
            nesterov=True, weight_decay=WEIGHT_DECAY,
        )
        self.last_values: list[float] = []
        self.names: list[str] = []

    def __call__(self) -> None:
        b = self.host.batch
        # load batch: host → device
        rgb, depth, labels, weights = self.host.upload(self.device, self.resident)
        # per-sample combinations, uniform over the 3 (host RNG), as a [B, 2] mask
        sets = [ALL_COMBINATIONS[self.rng.randrange(3)] for _ in range(b)]
        mask = mask_tensor(sets, self.device)
        # the regularization decoder runs only when the batch holds a depth-only sample
        with_reg = self.student.reg_decoder is not None and WEAK in sets
        main, cache, reg = self.student(rgb, depth, mask, with_reg)
        ce = multiscale_loss(scales(main), labels, weights)
        names, terms, total = ["ce"], [ce], ce
        if self.teacher is not None:
            # MAD: frozen teacher on the complete modalities, no autodiff
            with torch.no_grad():
                full = mask_tensor([(1, 1)] * b, self.device)
                t_main, t_cache, _ = self.teacher(rgb, depth, full, False)
            mad = dense_mad_levels(cache, t_cache, t_main["features"][2])
            total = total + mad * self.alpha
            names.append("mad")
            terms.append(mad)
            # MAR: the regularization decoder's loss on the depth-only samples
            mar = regularization_loss(main, reg, sets, labels, weights, self.device)
            total = total + mar * self.beta
            names.append("mar")
            terms.append(mar)
        correct = batch_score(main, labels[0])
        # one readback for every number of the step
        values = torch.stack([*terms, total, correct]).detach().cpu().tolist()
        if not math.isfinite(values[-2]):
            raise FloatingPointError(f"the loss became {values[-2]}: {dict(zip(names, values))}")
        self.optim.zero_grad(set_to_none=True)
        total.backward()
        self.optim.step()
        self.names = names + ["total", "pixel accuracy"]
        self.last_values = values


class DeployForward:
    """The deployment network (no regularization decoder) in eval mode without autodiff on
    the complete modalities: host inputs uploaded, forward, arg-max label map read back."""

    def __init__(self, args, host: HostBatch, device: torch.device):
        torch.manual_seed(args.seed)
        self.net = EsaNet(args.preset, args.classes, (args.height, args.width),
                          context=args.context).to(device).eval()
        self.host = host
        self.device = device
        self.shape = (host.batch, args.height, args.width)
        self.resident = host.upload(device, None) if args.resident_inputs else None
        self.full = [(1, 1)] * host.batch
        self.last_values: list[float] = []
        self.names: list[str] = []

    @torch.no_grad()
    def __call__(self) -> None:
        rgb, depth, _, _ = self.host.upload(self.device, self.resident)
        mask = mask_tensor(self.full, self.device)
        main, _, _ = self.net(rgb, depth, mask, False)
        pred = main["logits"].argmax(1).cpu()
        if tuple(pred.shape) != self.shape:
            raise FloatingPointError(f"label map of shape {tuple(pred.shape)} read back")
        self.names = ["label[0,0,0]"]
        self.last_values = [float(pred[0, 0, 0])]


class MadAlone:
    """`mmanet bench mad`'s segmentation case: dense MAD forward + backward to the student rows,
    the gradient's sum read back. relu(N(0,1)) rows, an N(0,2) teacher map, made on the device."""

    def __init__(self, device: torch.device, seed: int):
        rows, dim, classes = MAD_SHAPE
        g = torch.Generator(device=device).manual_seed(seed)
        normal = lambda *shape, std=1.0: torch.randn(  # noqa: E731
            *shape, generator=g, device=device) * std
        self.student = normal(rows, dim).clamp_min(0.0)
        self.teacher = normal(rows, dim).clamp_min(0.0)
        self.map = normal(rows, classes, std=2.0)
        self.names: list[str] = []
        self.last_values: list[float] = []

    def __call__(self) -> None:
        s = self.student.detach().requires_grad_(True)
        loss = dense_mad_loss(s, self.teacher, self.map)
        (grad,) = torch.autograd.grad(loss, s)
        probe = grad.sum().item()
        if not math.isfinite(probe):
            raise FloatingPointError("non-finite gradient")
        self.names = ["mad", "grad sum"]
        self.last_values = [loss.item(), probe]


# ---------------------------------------------------------------------------------------------
# Checks


def param_counts(preset: str, classes: int = PAPER_CLASSES, context: str = "ppm") -> dict:
    size = (480, 640)  # parameters do not depend on it
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        teacher = EsaNet(preset, classes, size, reg_decoder=False, context=context)
        student = EsaNet(preset, classes, size, reg_decoder=True, context=context)
    return {"teacher": num_params(teacher), "student": num_params(student),
            "reg_decoder": num_params(student.reg_decoder)}


def check_params(classes: int, context: str) -> int:
    """Teacher / student / regularization decoder counts for paper, small and tiny (40 classes,
    PPM for the paper check; `classes` and `context` for the other presets)."""
    rc = 0
    for p in ("paper", "small", "tiny"):
        k, ctx = (PAPER_CLASSES, "ppm") if p == "paper" else (classes, context)
        c = param_counts(p, k, ctx)
        line = (f"{p} ({k} classes, {ctx}): teacher {c['teacher']:,} | student "
                f"{c['student']:,} (regularization decoder {c['reg_decoder']:,})")
        if p == "paper":
            ok = (c["teacher"] == PAPER_TEACHER_PARAMS and c["student"] == PAPER_STUDENT_PARAMS
                  and c["reg_decoder"] == PAPER_REG_DECODER_PARAMS)
            line += ("  OK" if ok else
                     f"  MISMATCH (expected teacher {PAPER_TEACHER_PARAMS:,}, "
                     f"student {PAPER_STUDENT_PARAMS:,})")
            rc = 0 if ok else 1
        print(line)
    return rc


def check_golden(directory: str) -> int:
    """Dense MAD against the spec's golden vectors (float64), the network's shapes against
    `arch_probe_seg.json` (on the meta device: no computation), and the fused weighted CE against
    the Rust op-for-op form."""
    rc = 0

    def close(name, got, want, tol=1e-10, ref="golden"):
        nonlocal rc
        got_t = torch.as_tensor(got, dtype=torch.float64)
        want_t = torch.as_tensor(want, dtype=torch.float64)
        err = ((got_t - want_t).abs() / want_t.abs().clamp_min(1.0)).max().item()
        ok = got_t.shape == want_t.shape and err <= tol
        rc |= 0 if ok else 1
        shown = (f"{got_t.item():.12g} vs {ref} {want_t.item():.12g}" if got_t.numel() == 1
                 else f"{tuple(got_t.shape)}, max rel. error {err:.2e}")
        print(f"{name}: {shown}  {'OK' if ok else 'MISMATCH'}")

    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    for name in ("mad_seg_c5.json", "mad_seg_odd.json"):
        d = json.load(open(os.path.join(directory, name)))
        i, o = d["inputs"], d["outputs"]
        xs, xt, lt = t(i["x_s_rows"]), t(i["x_t_rows"]), t(i["logit_t_rows"])
        close(f"{name} rows from the maps", torch.cat([
            pixel_rows(t(i["fm_s_map"])), pixel_rows(t(i["fm_t_map"])),
            pixel_rows(t(i["pred_t_map"]))], 1), torch.cat([xs, xt, lt], 1), tol=0.0)
        close(f"{name} block_row_sums", dense_block_row_sums(xs, xt), o["block_row_sums"])
        close(f"{name} weight", teacher_weights(lt), o["weight"])
        close(f"{name} loss_official", dense_mad_loss(xs, xt, lt).item(), o["loss_official"])

    probe = json.load(open(os.path.join(directory, "arch_probe_seg.json")))
    for role, reg in (("teacher", False), ("auxi", True)):
        want = probe[role]
        with torch.device("meta"):
            net = EsaNet("paper", PAPER_CLASSES, (480, 640), reg_decoder=reg).train()
            rgb, depth = torch.empty(2, 3, 480, 640), torch.empty(2, 1, 480, 640)
            main, cache, out_reg = net(rgb, depth, torch.ones(2, 2), with_reg=reg)
        got = [list(x.shape) for x in [*scales(main), *main["features"]]]
        cache_got = [list(cache[k].shape) for k in ("context", "skip3", "skip2", "skip1")]
        ok = (got == want["decoder_tuple_shapes"] and cache_got == want["fuse_cache_shapes"]
              and num_params(net) == want["n_params"]
              and (not reg or [list(x.shape) for x in [*scales(out_reg), *out_reg["features"]]]
                   == want["decoder_tuple_shapes"]))
        rc |= 0 if ok else 1
        print(f"arch_probe_seg.json {role}: 7-tuple {got}, fuse cache {cache_got}, "
              f"{num_params(net):,} parameters  {'OK' if ok else 'MISMATCH'}")

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 5, 7, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 7, (3, 5, 7), generator=g)
    weights = torch.rand(6, generator=g, dtype=torch.float64) + 0.5
    close("self-check: fused weighted CE vs the Rust op-for-op form",
          weighted_cross_entropy(logits, labels, weights).item(),
          weighted_cross_entropy_rust(logits, labels, weights).item(), tol=1e-12, ref="Rust form")
    return rc


# ---------------------------------------------------------------------------------------------
# Main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    ap.add_argument("--method", default="sf-md,mmanet",
                    help="comma-separated: sf-md, mmanet (default both)")
    ap.add_argument("--batch", type=int, default=8)
    # the Rust `bench train` defaults; the network needs multiples of 32 (240 × 320 is not
    # possible: `esanet.rs::check_input_size`, the decoder doubles 1/32 back up to the skips)
    ap.add_argument("--height", type=int, default=192, help="input height (multiple of 32)")
    ap.add_argument("--width", type=int, default=256, help="input width (multiple of 32)")
    ap.add_argument("--classes", type=int, default=40, help="classes, void excluded")
    ap.add_argument("--context", choices=sorted(CONTEXT_BINS), default="ppm",
                    help="context module: ppm (NYUv2, default) or appm (Cityscapes)")
    ap.add_argument("--alpha", type=float, default=ALPHA,
                    help=f"MAD weight (default {ALPHA}: NYUv2's, as the Rust seg bench)")
    ap.add_argument("--beta", type=float, default=BETA,
                    help=f"MAR weight (default {BETA}: NYUv2's, as the Rust seg bench)")
    ap.add_argument("--teacher-norm", choices=("official", "batch", "running"),
                    default="official",
                    help="frozen teacher's BatchNorm: official = batch statistics for "
                         "segmentation (train mode under no_grad), running = eval mode")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu, cuda or cuda:N")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-deploy", action="store_true", help="skip the deployment-forward row")
    ap.add_argument("--mad", action="store_true",
                    help="add a row for dense MAD forward + backward alone at `mmanet bench "
                         "mad`'s segmentation shape (9600 × 512, 512-channel map)")
    ap.add_argument("--json", metavar="PATH",
                    help="also write the rows as JSON ({\"rows\": [...]}, keyed by `what`)")
    ap.add_argument("--resident-inputs", action="store_true",
                    help="upload the batch once instead of at every step")
    ap.add_argument("--cudnn-benchmark", action="store_true",
                    help="torch.backends.cudnn.benchmark = True (off: PyTorch's default)")
    ap.add_argument("--no-tf32", action="store_true",
                    help="disable cuDNN TF32 convolutions (PyTorch enables them by default)")
    ap.add_argument("--show-losses", action="store_true",
                    help="print the last step's loss values to stderr")
    ap.add_argument("--check-params", action="store_true",
                    help="print teacher/student/regularization-decoder parameter counts of "
                         "paper, small and tiny; exit 1 unless paper (40 classes, PPM) gives "
                         f"{PAPER_TEACHER_PARAMS:,} / {PAPER_STUDENT_PARAMS:,}")
    ap.add_argument("--check-golden", metavar="DIR", nargs="?",
                    const=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                       "tests", "golden"),
                    help="check dense MAD and the network's shapes against the golden vectors "
                         "and exit")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(args.threads)
        except RuntimeError:
            pass
    if args.check_params:
        return check_params(args.classes, args.context)
    if args.check_golden:
        return check_golden(args.check_golden)

    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    bad = [m for m in methods if m not in ("sf-md", "mmanet")]
    if bad:
        ap.error(f"unknown method(s) {bad}: use sf-md, mmanet")
    if args.batch < 1 or args.iters < 1 or args.warmup < 0:
        ap.error("--batch and --iters must be ≥ 1, --warmup ≥ 0")
    if args.height < 32 or args.width < 32 or args.height % 32 or args.width % 32:
        ap.error("--height and --width must be positive multiples of 32")
    if args.classes < 2:
        ap.error("--classes must be ≥ 2")
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            print("error: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
            return 2
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
        if args.no_tf32:
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False

    side = f"PyTorch {torch.__version__.split('+')[0]} eager"
    if device.type == "cuda" and args.cudnn_benchmark:
        side += " (cudnn.benchmark)"
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"cpu, {torch.get_num_threads()} threads"
    b, h, w = args.batch, args.height, args.width
    print(f"# device: {what}; inputs rgb [{b}, 3, {h}, {w}], depth [{b}, 1, {h}, {w}], "
          f"{args.classes} classes, {args.context}; warmup {args.warmup}, iters {args.iters}"
          + ("" if device.type != "cuda" else
             f"; cudnn tf32 {torch.backends.cudnn.allow_tf32}, "
             f"matmul tf32 {torch.backends.cuda.matmul.allow_tf32}"),
          file=sys.stderr)

    preset_label = f"seg-{args.preset}"
    host = HostBatch(b, h, w, args.classes)
    counts = param_counts(args.preset, args.classes, args.context)
    # (label, batch, parameters, constructor)
    units = [(LABELS[m], b, counts["student" if m == "mmanet" else "teacher"],
              lambda m=m: Step(m, args, host, device))
             for m in methods]
    if not args.no_deploy:
        units.append((LABELS["deploy"], b, counts["teacher"],
                      lambda: DeployForward(args, host, device)))
    if args.mad:
        units.append((LABELS["mad"], MAD_SHAPE[0], 0, lambda: MadAlone(device, args.seed)))

    print("| side | preset | method | batch | median ms/step | samples/s | peak memory |")
    print("|---|---|---|---:|---:|---:|---|")
    rc = 0
    rows = []
    for name, batch, params, make in units:
        unit = None
        try:
            unit = make()
            secs, peak, reserved = time_unit(unit, device, args.warmup, args.iters)
            print(f"| {side} | {preset_label} | {name} | {batch} | {secs * 1e3:.3f} | "
                  f"{batch / secs:.1f} | {fmt_bytes(peak)} |", flush=True)
            rows.append({"side": side, "preset": preset_label, "what": name,
                         "parameters": params, "batch": batch, "median_ms": secs * 1e3,
                         "samples_per_s": batch / secs, "peak_bytes": peak,
                         "reserved_bytes": reserved,
                         "last_values": dict(zip(unit.names, unit.last_values))})
            if args.show_losses:
                vals = ", ".join(f"{n} {v:.6g}" for n, v in zip(unit.names, unit.last_values))
                print(f"# {name}: {vals}", file=sys.stderr)
        except (RuntimeError, FloatingPointError) as e:  # OOM, non-finite loss
            rc = 1
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"| {side} | {preset_label} | {name} | {batch} | failed: {msg} | — | — |",
                  flush=True)
        del unit
        free(device)
    if args.json:
        meta = {"device": what, "height": h, "width": w, "classes": args.classes,
                "context": args.context, "alpha": args.alpha, "beta": args.beta,
                "teacher_norm": args.teacher_norm, "warmup": args.warmup, "iters": args.iters,
                "resident_inputs": args.resident_inputs, "torch": torch.__version__}
        if device.type == "cuda":
            meta.update(cudnn_benchmark=torch.backends.cudnn.benchmark,
                        cudnn_tf32=torch.backends.cudnn.allow_tf32,
                        matmul_tf32=torch.backends.cuda.matmul.allow_tf32)
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
