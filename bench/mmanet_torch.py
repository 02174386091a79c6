#!/usr/bin/env python3
"""PyTorch reference benchmark for MMANet's classification training step.

Written from the project's own Rust model (`core/src/model/{mod,resnet}.rs`), its losses
(`core/src/losses/{mad,mar}.rs`, `core/src/task/classification.rs`), its training step
(`core/src/train.rs::train_batch`) and the method spec (`docs/MMANET-spec.md` §1). It is not derived from
the official MMANet code. It times the same step `mmanet bench train` times and prints a table in
the same shape:

    | side | preset | method | batch | median ms/step | samples/s | peak memory |

Rows (labels as the Rust `bench train` rows)
  SF-MD   (--method sf-md) per-sample modality dropout (uniform over the 7 non-empty
          combinations), student forward with the masks (no regularization head: the Rust SF-MD
          stage builds none), mean CE, one readback of [ce, total, accuracy], backward, SGD step.
  MMANet  (--method mmanet) as SF-MD, on the student with the regularization head, plus the
          frozen teacher (running BN statistics, as the Rust `teacher_norm = official` gives for
          classification) on the complete modalities, MAD (official column weighting, α = 30)
          between the layer4 features, and MAR (official loss form, β = 0.5) on the weak set of
          the mined pair rgb+ir (--weak-set); one readback of [ce, mad, mar, total, accuracy],
          backward, SGD step.
  deployment forward  (unless --no-deploy) the deployment network (no regularization head) in
          eval mode on the complete modalities: host inputs uploaded, softmax read back (.cpu()).
  MAD forward + backward  (--mad) `mmanet bench mad`'s classification case.

Examples
  python bench/mmanet_torch.py --check-params
  python bench/mmanet_torch.py --preset tiny --batch 8 --size 32 --warmup 1 --iters 2 --threads 1
  python bench/mmanet_torch.py --preset paper --batch 64 --device cuda --warmup 5 --iters 20 \
      --mad --json torch.json
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import statistics
import sys
import time
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

# ---------------------------------------------------------------------------------------------
# Constants (the Rust defaults)

#: [stem+layer1, layer2, layer3, layer4] widths (`ImagePreset::widths`).
PRESETS = {
    "paper": (64, 128, 256, 512),
    "small": (16, 32, 64, 128),
    "tiny": (8, 16, 32, 64),
}
MODALITIES = ("rgb", "depth", "ir")
CHANNELS = 3
CLASSES = 2
#: The 7 non-empty combinations over (rgb, depth, ir), in the spec's order R, D, I, RD, RI, DI, RDI.
ALL_COMBINATIONS = [
    (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1),
]
#: Weak sets for MAR, all from the mined pair rgb+ir. `official` (the default, and what
#: `mmanet bench train` uses) is what a trained MMANet uses: `weak_set_of` the pair, i.e. the
#: pair followed by its single modalities. `pair` is rgb+ir alone.
WEAK_SETS = {
    "pair": [(1, 0, 1)],
    "official": [(1, 0, 1), (1, 0, 0), (0, 0, 1)],
}
#: Row labels, the same as the Rust `bench train` rows and `scripts/gpu-bench.sh` keys.
LABELS = {"sf-md": "SF-MD", "mmanet": "MMANet", "deploy": "deployment forward",
          "mad": "MAD forward + backward"}
#: `mmanet bench mad`'s classification shape: B = 64 rows, D = 512·4·4, 2 classes.
MAD_SHAPE = (64, 8192, 2)
ALPHA = 30.0  # MmanetConfig::alpha default (MAD weight)
BETA = 0.5  # MmanetConfig::beta default (MAR weight)
LR = 0.01
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
NORM_EPS = 1e-12  # mad.rs NORM_EPS (torch F.normalize eps)
ENTROPY_SUM_EPS = 1e-12  # mad.rs ENTROPY_SUM_EPS
PAPER_TEACHER_PARAMS = 13_182_554
PAPER_STUDENT_PARAMS = 24_332_380
PAPER_REG_HEAD_PARAMS = 11_149_826

# ---------------------------------------------------------------------------------------------
# Network (core/src/model/resnet.rs, core/src/model/mod.rs)


def conv(cin: int, cout: int, k: int, stride: int) -> nn.Conv2d:
    """k×k conv, padding k/2, no bias, kaiming_normal(fan_out, relu) init."""
    c = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)
    nn.init.kaiming_normal_(c.weight, mode="fan_out", nonlinearity="relu")
    return c


class BasicBlock(nn.Module):
    """conv3×3(stride) → BN → ReLU → conv3×3 → BN, + identity or (1×1/stride conv + BN), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = conv(cin, cout, 3, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = conv(cout, cout, 3, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + identity)


def res_layer(cin: int, cout: int, stride: int) -> nn.Sequential:
    """Two BasicBlocks, the first with `stride`."""
    return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))


class SqueezeExcite(nn.Module):
    """x ⊙ σ(W₂·ReLU(W₁·GAP(x) + b₁) + b₂), hidden = max(C / 16, 1), both linears with bias."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        s = F.adaptive_avg_pool2d(x, 1).flatten(1)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s.reshape(b, c, 1, 1)


class ConvEncoder(nn.Module):
    """Per-modality encoder: conv3×3/s2 → BN → ReLU → maxpool 3×3/s2/p1 → layer1 → layer2 → SE."""

    def __init__(self, in_channels: int, w0: int, w1: int):
        super().__init__()
        self.stem = conv(in_channels, w0, 3, 2)
        self.stem_bn = nn.BatchNorm2d(w0)
        self.layer1 = res_layer(w0, w0, 1)
        self.layer2 = res_layer(w0, w1, 2)
        self.se = SqueezeExcite(w1, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem(x)))
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        return self.se(self.layer2(self.layer1(x)))


class ConvTrunk(nn.Module):
    """layer3 (stride 2) → layer4 (stride 2) → GAP → Linear. Returns (logits, layer4 flattened)."""

    def __init__(self, cin: int, w2: int, w3: int, classes: int):
        super().__init__()
        self.layer3 = res_layer(cin, w2, 2)
        self.layer4 = res_layer(w2, w3, 2)
        self.fc = nn.Linear(w3, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        l4 = self.layer4(self.layer3(x))
        pooled = F.adaptive_avg_pool2d(l4, 1).flatten(1)
        return self.fc(pooled), l4.flatten(1)


class MultimodalNet(nn.Module):
    """One encoder per modality, encoder outputs zeroed per sample by the mask, channel
    concatenation, the deployment trunk, and (student of MMANet only) a regularization head: an
    independent trunk reading the same masked fusion, evaluated once."""

    def __init__(self, preset: str, n_modalities: int = 3, in_channels: int = CHANNELS,
                 classes: int = CLASSES, reg_head: bool = False):
        super().__init__()
        w0, w1, w2, w3 = PRESETS[preset]
        self.encoders = nn.ModuleList(
            [ConvEncoder(in_channels, w0, w1) for _ in range(n_modalities)]
        )
        self.trunk = ConvTrunk(w1 * n_modalities, w2, w3, classes)
        self.reg_head = ConvTrunk(w1 * n_modalities, w2, w3, classes) if reg_head else None

    def encode_fuse(self, inputs: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        b = mask.shape[0]
        maps = []
        for m, (enc, x) in enumerate(zip(self.encoders, inputs)):
            keep = mask[:, m:m + 1].reshape(b, 1, 1, 1)
            maps.append(enc(x) * keep)
        return torch.cat(maps, 1)

    def forward(self, inputs: list[torch.Tensor], mask: torch.Tensor):
        fused = self.encode_fuse(inputs, mask)
        logits, features = self.trunk(fused)
        reg_logits = self.reg_head(fused)[0] if self.reg_head is not None else None
        return logits, features, reg_logits


def num_params(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# Losses (core/src/losses/mad.rs, core/src/losses/mar.rs)


def relation(features: torch.Tensor) -> torch.Tensor:
    """rownorm(F Fᵀ), the norm as sqrt(max(Σ x², eps²)) like `row_normalize`."""
    g = features @ features.t()
    norm = g.square().sum(1, keepdim=True).clamp_min(NORM_EPS * NORM_EPS).sqrt()
    return g / norm


def teacher_weights(teacher_logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the teacher's softmax (via log_softmax), over its batch sum; no gradient."""
    logp = F.log_softmax(teacher_logits.detach(), 1)
    h = -(logp.exp() * logp).sum(1)
    return h / h.sum().clamp_min(ENTROPY_SUM_EPS)


def mad_official(student: torch.Tensor, teacher: torch.Tensor,
                 teacher_logits: torch.Tensor) -> torch.Tensor:
    """MAD, `MadReduction::Official`: Σ_ij (A_s − A_t)²_ij · w_j (column weighting)."""
    b = student.shape[0]
    disc = (relation(student) - relation(teacher.detach())).square()
    return (disc * teacher_weights(teacher_logits).reshape(1, b)).sum()


def weak_masks(sets: list[tuple[int, ...]], weak: list[tuple[int, ...]]) -> list[list[float]]:
    """Per weak-set entry k, the 0/1 row [P_i = W_k] over the batch (`weak_masks`)."""
    return [[1.0 if p == w else 0.0 for p in sets] for w in weak]


def mar_official(ce_per_sample: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """MAR, `MarLossMode::Official`: Σ_k (Σ_i m_k,i)·(Σ_j ℓ_j)/B (the released code's
    broadcasting). `masks` is the [K, B] weak-mask tensor."""
    b = ce_per_sample.shape[0]
    n_k = masks.sum(1)
    return (n_k * ce_per_sample.sum() / b).sum()


# ---------------------------------------------------------------------------------------------
# One training step (core/src/train.rs::train_batch)


class HostBatch:
    """A fixed random batch kept on the host, uploaded at every step as the Rust trainer's
    `load_batch` does (unless --resident-inputs)."""

    def __init__(self, batch: int, size: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.inputs = [
            torch.rand(batch, CHANNELS, size, size, generator=g) * 2.0 - 1.0
            for _ in MODALITIES
        ]
        self.labels = torch.randint(0, CLASSES, (batch,), generator=g)
        self.batch = batch

    def upload(self, device: torch.device, resident: tuple | None):
        if resident is not None:
            return resident
        inputs = [x.to(device, copy=True) for x in self.inputs]
        return inputs, self.labels.to(device, copy=True)


def mask_tensor(sets, device) -> torch.Tensor:
    return torch.tensor(sets, dtype=torch.float32).to(device)


class Step:
    """The timed unit of one method: everything `train_batch` does for one batch."""

    def __init__(self, method: str, preset: str, host: HostBatch, device: torch.device,
                 seed: int, resident: bool, weak_set: list[tuple[int, ...]]):
        torch.manual_seed(seed)
        self.method = method
        self.weak_set = weak_set
        self.device = device
        self.host = host
        self.rng = random.Random(seed)
        self.resident = host.upload(device, None) if resident else None
        # SF-MD trains the deployment network alone; MMANet's student carries the reg head.
        self.student = MultimodalNet(preset, reg_head=(method == "mmanet")).to(device).train()
        self.teacher = None
        if method == "mmanet":
            self.teacher = MultimodalNet(preset, reg_head=False).to(device).eval()
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
        inputs, labels = self.host.upload(self.device, self.resident)
        # per-sample combinations, uniform over the 7 (host RNG), as a [B, 3] mask
        sets = [ALL_COMBINATIONS[self.rng.randrange(7)] for _ in range(b)]
        mask = mask_tensor(sets, self.device)
        logits, features, reg_logits = self.student(inputs, mask)
        ce = F.cross_entropy(logits, labels)
        names, terms, total = ["ce"], [ce], ce
        if self.teacher is not None:
            # MAD: frozen teacher (running BN stats, no autodiff) on the complete modalities
            with torch.no_grad():
                full = mask_tensor([(1, 1, 1)] * b, self.device)
                t_logits, t_features, _ = self.teacher(inputs, full)
            mad = mad_official(features, t_features, t_logits)
            total = total + mad * ALPHA
            names.append("mad")
            terms.append(mad)
            # MAR: regularization-head CE on the weak set of the mined pair rgb+ir
            ce_reg = F.cross_entropy(reg_logits, labels, reduction="none")
            wm = torch.tensor(weak_masks(sets, self.weak_set), dtype=torch.float32)
            wm = wm.to(self.device)
            mar = mar_official(ce_reg, wm)
            total = total + mar * BETA
            names.append("mar")
            terms.append(mar)
        correct = (logits.argmax(1) == labels).float().mean()
        # one readback for every number of the step
        values = torch.stack([*terms, total, correct]).detach().cpu().tolist()
        if not math.isfinite(values[-2]):
            raise FloatingPointError(f"the loss became {values[-2]}: {dict(zip(names, values))}")
        self.optim.zero_grad(set_to_none=True)
        total.backward()
        self.optim.step()
        self.names = names + ["total", "accuracy"]
        self.last_values = values


class DeployForward:
    """`mmanet bench predict`'s unit: host inputs uploaded, forward on the complete
    modalities in eval mode without autodiff, softmax read back."""

    def __init__(self, preset: str, host: HostBatch, device: torch.device, seed: int,
                 resident: bool):
        torch.manual_seed(seed)
        self.net = MultimodalNet(preset, reg_head=False).to(device).eval()
        self.host = host
        self.device = device
        self.resident = host.upload(device, None) if resident else None
        self.full = [(1, 1, 1)] * host.batch
        self.last_values: list[float] = []
        self.names: list[str] = []

    @torch.no_grad()
    def __call__(self) -> None:
        inputs, _ = self.host.upload(self.device, self.resident)
        mask = mask_tensor(self.full, self.device)
        p = torch.softmax(self.net(inputs, mask)[0], 1).cpu()
        if p.shape != (self.host.batch, CLASSES) or not torch.isfinite(p).all():
            raise FloatingPointError("non-finite or short softmax read back")
        self.names = ["p0[0]"]
        self.last_values = [float(p[0, 0])]


class MadAlone:
    """`mmanet bench mad`'s classification case: MAD (official) forward + backward to the
    student features, the gradient's sum read back. Inputs: relu(N(0,1)) features, N(0,2)
    teacher logits, made once on the device."""

    def __init__(self, device: torch.device, seed: int):
        rows, dim, classes = MAD_SHAPE
        g = torch.Generator(device=device).manual_seed(seed)
        normal = lambda *shape, std=1.0: torch.randn(  # noqa: E731
            *shape, generator=g, device=device) * std
        self.student = normal(rows, dim).clamp_min(0.0)
        self.teacher = normal(rows, dim).clamp_min(0.0)
        self.logits = normal(rows, classes, std=2.0)
        self.names: list[str] = []
        self.last_values: list[float] = []

    def __call__(self) -> None:
        s = self.student.detach().requires_grad_(True)
        loss = mad_official(s, self.teacher, self.logits)
        (grad,) = torch.autograd.grad(loss, s)
        probe = grad.sum().item()
        if not math.isfinite(probe):
            raise FloatingPointError("non-finite gradient")
        self.names = ["mad", "grad sum"]
        self.last_values = [loss.item(), probe]


# ---------------------------------------------------------------------------------------------
# Timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_unit(unit, device: torch.device, warmup: int, iters: int):
    """Median seconds of `iters` calls after `warmup` untimed ones, and the peak memory."""
    for _ in range(warmup):
        unit()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        unit()
        sync(device)
        times.append(time.perf_counter() - t)
    cuda = device.type == "cuda"
    peak = torch.cuda.max_memory_allocated(device) if cuda else None
    reserved = torch.cuda.max_memory_reserved(device) if cuda else None
    return statistics.median(times), peak, reserved


def print_profile(name: str, unit, device: torch.device, steps: int) -> None:
    """`steps` more calls of `unit` under torch.profiler; its operators by self time, to stderr."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        for _ in range(steps):
            unit()
        sync(device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"# profile of {name}, {steps} steps:", file=sys.stderr)
    print(prof.key_averages().table(sort_by=sort, row_limit=30), file=sys.stderr)


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "—"
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# Checks


def param_counts(preset: str) -> dict[str, int]:
    teacher = MultimodalNet(preset, reg_head=False)
    student = MultimodalNet(preset, reg_head=True)
    return {
        "teacher": num_params(teacher),
        "student": num_params(student),
        "reg_head": num_params(student.reg_head),
    }


def check_params(preset: str) -> int:
    rc = 0
    presets = ["paper"] + ([preset] if preset != "paper" else [])
    for p in presets:
        c = param_counts(p)
        line = (f"{p}: teacher {c['teacher']:,} | student {c['student']:,} "
                f"(regularization head {c['reg_head']:,})")
        if p == "paper":
            ok = (c["teacher"] == PAPER_TEACHER_PARAMS and c["student"] == PAPER_STUDENT_PARAMS
                  and c["reg_head"] == PAPER_REG_HEAD_PARAMS)
            line += ("  OK" if ok else
                     f"  MISMATCH (expected teacher {PAPER_TEACHER_PARAMS:,}, "
                     f"student {PAPER_STUDENT_PARAMS:,}, head {PAPER_REG_HEAD_PARAMS:,})")
            rc = 0 if ok else 1
        print(line)
    return rc


def check_golden(directory: str) -> int:
    """The loss functions above against the spec's golden vectors (float64)."""
    rc = 0

    def close(name, got, want, tol=1e-10):
        nonlocal rc
        ok = abs(got - want) <= tol * max(1.0, abs(want))
        rc |= 0 if ok else 1
        print(f"{name}: {got:.12g} vs golden {want:.12g}  {'OK' if ok else 'MISMATCH'}")

    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    for name in ("mad_cls_c2.json", "mad_cls_c5.json", "mad_cls_c2_flat16.json"):
        d = json.load(open(os.path.join(directory, name)))
        i, o = d["inputs"], d["outputs"]
        fs, ft = t(i["fm_s"]), t(i["fm_t"])
        got = mad_official(fs.flatten(1), ft.flatten(1), t(i["logit_t"])).item()
        close(f"{name} loss_official", got, o["loss_official"])
    for name in ("mar_cls_c2.json", "mar_cls_c2_b.json", "mar_cls_c5.json"):
        d = json.load(open(os.path.join(directory, name)))
        i, o = d["inputs"], d["outputs"]
        sets = [tuple(int(v) for v in row) for row in i["train_p"]]
        weak = [tuple(int(v) for v in row) for row in o["mining"]["weak_set"]]
        y = torch.tensor(i["train_y"], dtype=torch.long)
        ce_reg = F.cross_entropy(t(i["train_reg_logits"]), y, reduction="none")
        mar = mar_official(ce_reg, t(weak_masks(sets, weak))).item()
        close(f"{name} mar_official", mar, o["mar"]["mar_official"])
        mad = mad_official(t(i["train_fm_s"]).flatten(1), t(i["train_fm_t"]).flatten(1),
                           t(i["train_logit_t"])).item()
        ce = F.cross_entropy(t(i["train_main_logits"]), y).item()
        total = ce + d.get("beta_mar", BETA) * mar + d.get("alpha_mad", ALPHA) * mad
        close(f"{name} total_official", total, o["total_official"])
    return rc


# ---------------------------------------------------------------------------------------------
# Main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    ap.add_argument("--method", default="sf-md,mmanet",
                    help="comma-separated: sf-md, mmanet (default both)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=112, help="image side S of each 3×S×S modality")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu, cuda or cuda:N")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-deploy", action="store_true", help="skip the deployment-forward row")
    ap.add_argument("--mad", action="store_true",
                    help="add a row for MAD forward + backward alone at `mmanet bench mad`'s "
                         "classification shape (64 × 8192, 2 classes)")
    ap.add_argument("--mad-warmup", type=int, default=None,
                    help="untimed runs of the MAD-alone row (default: --warmup)")
    ap.add_argument("--mad-iters", type=int, default=None,
                    help="timed runs of the MAD-alone row (default: --iters); a run takes a few "
                         "ms, so a median of 3 is mostly noise")
    ap.add_argument("--weak-set", choices=sorted(WEAK_SETS), default="official",
                    help="MAR weak set: `official` = [rgb+ir, rgb, ir] as a trained MMANet and "
                         "`mmanet bench train` (default), `pair` = [rgb+ir] alone")
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
    ap.add_argument("--profile", type=int, metavar="STEPS", default=0,
                    help="after timing, run STEPS more steps of each row under torch.profiler "
                         "and print its operators by self time (stderr)")
    ap.add_argument("--check-params", action="store_true",
                    help="print teacher/student parameter counts; exit 1 unless the paper "
                         f"preset gives {PAPER_TEACHER_PARAMS:,} / {PAPER_STUDENT_PARAMS:,}")
    ap.add_argument("--check-golden", metavar="DIR", nargs="?",
                    const=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                       "tests", "golden"),
                    help="check MAD/MAR/total against the spec's golden vectors and exit")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(args.threads)
        except RuntimeError:
            pass
    if args.check_params:
        return check_params(args.preset)
    if args.check_golden:
        return check_golden(args.check_golden)

    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    bad = [m for m in methods if m not in ("sf-md", "mmanet")]
    if bad:
        ap.error(f"unknown method(s) {bad}: use sf-md, mmanet")
    if args.batch < 1 or args.iters < 1 or args.warmup < 0:
        ap.error("--batch and --iters must be ≥ 1, --warmup ≥ 0")
    if args.size < 8:
        ap.error("--size must be ≥ 8")
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
    print(f"# device: {what}; inputs 3 × [{args.batch}, 3, {args.size}, {args.size}]; "
          f"warmup {args.warmup}, iters {args.iters}"
          + ("" if device.type != "cuda" else
             f"; cudnn tf32 {torch.backends.cudnn.allow_tf32}, "
             f"matmul tf32 {torch.backends.cuda.matmul.allow_tf32}"),
          file=sys.stderr)

    host = HostBatch(args.batch, args.size, args.seed)
    weak = WEAK_SETS[args.weak_set]
    counts = param_counts(args.preset)
    # (label, batch, parameters, constructor, warm-up runs, timed runs)
    steps = (args.warmup, args.iters)
    units = [(LABELS[m], args.batch, counts["student" if m == "mmanet" else "teacher"],
              lambda m=m: Step(m, args.preset, host, device, args.seed, args.resident_inputs,
                               weak), *steps)
             for m in methods]
    if not args.no_deploy:
        units.append((LABELS["deploy"], args.batch, counts["teacher"],
                      lambda: DeployForward(args.preset, host, device, args.seed,
                                            args.resident_inputs), *steps))
    if args.mad:
        mad_steps = (args.warmup if args.mad_warmup is None else args.mad_warmup,
                     args.iters if args.mad_iters is None else args.mad_iters)
        units.append((LABELS["mad"], MAD_SHAPE[0], 0, lambda: MadAlone(device, args.seed),
                      *mad_steps))

    print("| side | preset | method | batch | median ms/step | samples/s | peak memory |")
    print("|---|---|---|---:|---:|---:|---|")
    rc = 0
    rows = []
    for name, batch, params, make, warmup, iters in units:
        unit = None
        try:
            unit = make()
            secs, peak, reserved = time_unit(unit, device, warmup, iters)
            if args.profile:
                print_profile(name, unit, device, args.profile)
            print(f"| {side} | {args.preset} | {name} | {batch} | {secs * 1e3:.3f} | "
                  f"{batch / secs:.1f} | {fmt_bytes(peak)} |", flush=True)
            rows.append({"side": side, "preset": args.preset, "what": name,
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
            print(f"| {side} | {args.preset} | {name} | {batch} | failed: {msg} | — | — |",
                  flush=True)
        del unit
        free(device)
    if args.json:
        meta = {"device": what, "size": args.size, "warmup": args.warmup, "iters": args.iters,
                "weak_set": args.weak_set, "resident_inputs": args.resident_inputs,
                "torch": torch.__version__}
        if device.type == "cuda":
            meta.update(cudnn_benchmark=torch.backends.cudnn.benchmark,
                        cudnn_tf32=torch.backends.cudnn.allow_tf32,
                        matmul_tf32=torch.backends.cuda.matmul.allow_tf32)
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
