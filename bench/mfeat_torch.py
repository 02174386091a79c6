#!/usr/bin/env python3
"""PyTorch reference for the whole `mmanet demo` process on mfeat, and a side-by-side driver.

Written from the project's Rust code and `configs/mfeat-demo.toml`, not from the official MMANet
code. One process does what `mmanet demo` does on the bundled UCI mfeat digits (pix 240, fou 76,
mor 6 features; 10 classes; CC BY 4.0, see core/data/mfeat/README.md):

  load the three CSV views, stratified 60/20/20 split, z-score with training statistics;
  teacher (complete views), then every student method of `--methods` (default: the demo's
  `sf,sf-md,mmanet`) for `--epochs` epochs each (default 30), as `core/src/train.rs` does:
  per-sample modality dropout on the encoder outputs, SGD Nesterov (lr 0.05, momentum 0.9,
  weight decay 5e-4) on the `paper` schedule (2 warm-up epochs, ×0.1 after epoch 20), batch 64,
  one readback of the step's numbers, validation on the stage's combinations after every epoch
  (batch 256), best-epoch selection after epoch 5, a checkpoint per epoch written atomically;
  MMANet: frozen teacher (running BN statistics), MAD (official column weighting, α 3) on the
  trunk features, MAR (official loss, β 0.1) on the weak set mined on the validation split after
  epochs 2, 3, 4 (official: label histograms, KL after a second softmax, summed bank, candidates
  of n−1 views), both terms on after epoch 5; finally every model on the test split, 7 rows.

The accuracies are not expected to equal mmanet's digit for digit (other initialisation and
random streams); the process is the same work, so its wall time and peak memory compare.

Examples
  python bench/mfeat_torch.py                                 # the PyTorch process alone
  python bench/mfeat_torch.py --compare target/release/mmanet --repeats 3
      # both whole processes, alternating, fresh output folders: median wall time, peak RSS
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "core", "data", "mfeat")
VIEWS = ("pix", "fou", "mor")
#: The 7 non-empty combinations over (pix, fou, mor), in the table's order.
COMBINATIONS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)]
FULL = (1, 1, 1)
# configs/mfeat-demo.toml
HIDDEN, EMBED, TRUNK = 128, 64, 128
BATCH, EVAL_BATCH = 64, 256
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 5e-4
LR_WARMUP, MILESTONES, GAMMA = 2, (20,), 0.1
SELECT_AFTER = 5
ALPHA, BETA = 3.0, 0.1
MMANET_WARMUP, MINING_EPOCHS = 5, (2, 3, 4)
NORM_EPS, ENTROPY_SUM_EPS = 1e-12, 1e-12


def load_views(directory: str):
    """The three views and the labels; errors name the file and line."""
    views, labels = [], None
    for v in VIEWS:
        path = os.path.join(directory, f"mfeat-{v}.csv")
        rows, ys = [], []
        try:
            with open(path, newline="") as f:
                reader = csv.reader(f)
                next(reader, None)  # header
                for line, row in enumerate(reader, start=2):
                    try:
                        *x, y = row
                        rows.append([float(t) for t in x])
                        ys.append(int(float(y)))
                    except ValueError as e:
                        raise SystemExit(f"error: {path}:{line}: {e}") from None
        except OSError as e:
            raise SystemExit(f"error: cannot read {path}: {e}") from None
        if labels is not None and ys != labels:
            raise SystemExit(f"error: {path}: labels differ from mfeat-{VIEWS[0]}.csv")
        labels = ys
        views.append(rows)
    return views, labels


def stratified_split(labels, seed: int, fractions=(0.6, 0.2, 0.2)):
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    train, val, test = [], [], []
    for c in sorted(by_class):
        idx = by_class[c]
        rng.shuffle(idx)
        n_train = round(len(idx) * fractions[0])
        n_val = round(len(idx) * fractions[1])
        train += idx[:n_train]
        val += idx[n_train:n_train + n_val]
        test += idx[n_train + n_val:]
    return train, val, test


def lr_at(epoch: int) -> float:
    """The `paper` schedule (core/src/schedule.rs)."""
    if epoch < LR_WARMUP:
        return LR * (epoch + 1) / LR_WARMUP
    return LR * GAMMA ** sum(1 for m in MILESTONES if epoch >= m)


def build(torch, nn, F, dims, classes, reg_head: bool):
    class MlpEncoder(nn.Module):
        """Linear → BN → ReLU → Linear → ReLU (core/src/model/mod.rs)."""

        def __init__(self, dim):
            super().__init__()
            self.fc1, self.bn1 = nn.Linear(dim, HIDDEN), nn.BatchNorm1d(HIDDEN)
            self.fc2 = nn.Linear(HIDDEN, EMBED)

        def forward(self, x):
            return F.relu(self.fc2(F.relu(self.bn1(self.fc1(x)))))

    class MlpTrunk(nn.Module):
        """Linear → BN → ReLU (the features MAD distils) → Linear (logits)."""

        def __init__(self, cin):
            super().__init__()
            self.fc1, self.bn1 = nn.Linear(cin, TRUNK), nn.BatchNorm1d(TRUNK)
            self.fc2 = nn.Linear(TRUNK, classes)

        def forward(self, x):
            f = F.relu(self.bn1(self.fc1(x)))
            return self.fc2(f), f

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoders = nn.ModuleList([MlpEncoder(d) for d in dims])
            self.trunk = MlpTrunk(EMBED * len(dims))
            self.reg_head = MlpTrunk(EMBED * len(dims)) if reg_head else None

        def forward(self, xs, mask):
            fused = torch.cat([e(x) * mask[:, m:m + 1] for m, (e, x) in
                               enumerate(zip(self.encoders, xs))], 1)
            logits, features = self.trunk(fused)
            reg = self.reg_head(fused)[0] if self.reg_head is not None else None
            return logits, features, reg

    return Net()


def run(args) -> int:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    views, labels = load_views(args.data)
    train_idx, val_idx, test_idx = stratified_split(labels, 0)
    if not train_idx or not val_idx or not test_idx:
        raise SystemExit("error: an empty split")
    classes = max(labels) + 1
    xs = [torch.tensor(v, dtype=torch.float32) for v in views]
    tr = torch.tensor(train_idx)
    for i, x in enumerate(xs):  # z-score with the training split's statistics
        mean, std = x[tr].mean(0), x[tr].std(0, unbiased=False)
        xs[i] = (x - mean) / torch.where(std > 0, std, torch.ones_like(std))
    y = torch.tensor(labels)
    dims = [x.shape[1] for x in xs]
    out_dir = args.output or tempfile.mkdtemp(prefix="mfeat-torch-")
    os.makedirs(out_dir, exist_ok=True)

    def masks(sets):
        return torch.tensor(sets, dtype=torch.float32)

    @torch.no_grad()
    def predict(net, idx, combo):
        net.eval()
        preds = []
        for s in range(0, len(idx), EVAL_BATCH):
            b = torch.tensor(idx[s:s + EVAL_BATCH])
            logits = net([x[b] for x in xs], masks([combo] * len(b)))[0]
            preds.append(logits.argmax(1))
        return torch.cat(preds)

    def accuracy(net, idx, combo):
        return (predict(net, idx, combo) == y[torch.tensor(idx)]).float().mean().item()

    def relation(f):
        g = f @ f.t()
        return g / g.square().sum(1, keepdim=True).clamp_min(NORM_EPS ** 2).sqrt()

    def mad_official(fs, ft, tl):
        logp = F.log_softmax(tl, 1)
        h = -(logp.exp() * logp).sum(1)
        w = h / h.sum().clamp_min(ENTROPY_SUM_EPS)
        return ((relation(fs) - relation(ft)).square() * w.reshape(1, -1)).sum()

    def kl_official(q, r):
        a, b = torch.softmax(torch.tensor(q), 0), torch.softmax(torch.tensor(r), 0)
        return float((a * (a.log() - b.log()))[a > 0].sum())

    def histogram(net, combo):
        p = predict(net, val_idx, combo)
        return (torch.bincount(p, minlength=classes).double() / len(p)).tolist()

    def train_stage(name, seed, dropout, teacher=None):
        torch.manual_seed(seed)
        rng = random.Random(seed)
        mmanet = teacher is not None
        net = build(torch, nn, F, dims, classes, reg_head=mmanet)
        opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True,
                              weight_decay=WEIGHT_DECAY)
        combos = dropout if isinstance(dropout, list) else [dropout]
        candidates = [c for c in COMBINATIONS if sum(c) == len(VIEWS) - 1]
        bank, weak = [0.0] * len(candidates), None
        best, best_score = None, -1.0
        for epoch in range(args.epochs):
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch)
            order = list(train_idx)
            rng.shuffle(order)
            net.train()
            for s in range(0, len(order), BATCH):
                b = torch.tensor(order[s:s + BATCH])
                inputs, target = [x[b] for x in xs], y[b]
                sets = [combos[rng.randrange(len(combos))] for _ in range(len(b))]
                logits, features, reg = net(inputs, masks(sets))
                ce = F.cross_entropy(logits, target)
                terms, total = [ce], ce
                if mmanet and epoch > MMANET_WARMUP:
                    with torch.no_grad():
                        t_logits, t_features, _ = teacher(inputs, masks([FULL] * len(b)))
                    mad = mad_official(features, t_features, t_logits)
                    total = total + ALPHA * mad
                    terms.append(mad)
                    if weak:
                        ce_reg = F.cross_entropy(reg, target, reduction="none")
                        n_k = sum(sum(1 for p in sets if p == w) for w in weak)
                        mar = n_k * ce_reg.sum() / len(b)
                        total = total + BETA * mar
                        terms.append(mar)
                correct = (logits.argmax(1) == target).float().mean()
                values = torch.stack([*terms, total, correct]).detach().tolist()
                if not math.isfinite(values[-2]):
                    raise SystemExit(f"error: {name}: the loss became {values[-2]} at epoch {epoch}")
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
            score = statistics.mean(accuracy(net, val_idx, c) for c in combos)
            if epoch >= SELECT_AFTER and score > best_score:
                best, best_score = copy.deepcopy(net.state_dict()), score
            if mmanet and epoch in MINING_EPOCHS:
                full = histogram(net, FULL)
                for k, c in enumerate(candidates):
                    bank[k] += kl_official(histogram(net, c), full)
            if mmanet and epoch == MMANET_WARMUP:
                k = max(range(len(bank)), key=lambda i: (bank[i], -i))
                weak = [candidates[k]] + [tuple(int(j == i) for j in range(len(VIEWS)))
                                          for i in range(len(VIEWS)) if candidates[k][i]]
            path = os.path.join(out_dir, f"{name.replace('/', '-')}.ckpt")
            torch.save({"epoch": epoch, "model": net.state_dict(), "optim": opt.state_dict(),
                        "best": best}, path + ".tmp")
            os.replace(path + ".tmp", path)
        if best is not None:
            net.load_state_dict(best)
        if net.reg_head is not None:
            net.reg_head = None  # the deployment network
        net.eval()
        return net

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in ("sf", "sf-md", "mmanet")]
    if bad:
        raise SystemExit(f"error: --methods: unknown {bad} (use sf, sf-md, mmanet)")
    teacher = train_stage("teacher", 0, FULL)
    for p in teacher.parameters():
        p.requires_grad_(False)
    table = {"Teacher": [accuracy(teacher, test_idx, c) for c in COMBINATIONS]}
    for m in methods:
        if m == "sf":
            table["SF"] = [accuracy(train_stage(f"sf/{c}", 1, c), test_idx, c)
                           for c in COMBINATIONS]
        elif m == "sf-md":
            net = train_stage("sf-md", 1, [c for c in COMBINATIONS])
            table["SF-MD"] = [accuracy(net, test_idx, c) for c in COMBINATIONS]
        else:
            net = train_stage("mmanet", 1, [c for c in COMBINATIONS], teacher=teacher)
            table["MMANet"] = [accuracy(net, test_idx, c) for c in COMBINATIONS]
    names = ["+".join(v for v, b in zip(VIEWS, c) if b) for c in COMBINATIONS]
    print("| method | " + " | ".join(names) + " | average |")
    print("|---|" + "---:|" * (len(names) + 1))
    for method, accs in table.items():
        row = " | ".join(f"{100 * a:.2f}" for a in accs)
        print(f"| {method} | {row} | {100 * statistics.mean(accs):.2f} |")
    print(f"# PyTorch {torch.__version__.split('+')[0]}, {torch.get_num_threads()} threads, "
          f"{args.epochs} epochs per stage, {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak resident memory (bytes) of one child process."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} exited with {proc.returncode}:\n{err[-2000:]}")
    return wall, usage.ru_maxrss * 1024  # Linux: kilobytes


def compare(args) -> int:
    if not os.access(args.compare, os.X_OK):
        raise SystemExit(f"error: --compare {args.compare}: not an executable (cargo build "
                         "--release first)")
    rows = {"mmanet": [], "PyTorch": []}
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            mm = [args.compare, "demo", "--output", a, "--epochs", str(args.epochs)]
            mm += ["--set", f"methods={toml_list(args.methods)}"]
            if args.threads:
                mm += ["--threads", str(args.threads)]
            py = [sys.executable, os.path.abspath(__file__), "--output", b, "--epochs",
                  str(args.epochs), "--methods", args.methods, "--data", args.data]
            if args.threads:
                py += ["--threads", str(args.threads)]
            # alternate the order so neither side always runs on a warmer machine
            for side, cmd in (("mmanet", mm), ("PyTorch", py))[::1 if r % 2 == 0 else -1]:
                wall, rss = timed(cmd)
                rows[side].append((wall, rss))
                print(f"# run {r + 1}: {side} {wall:.2f} s, {rss / 2**20:.0f} MiB", file=sys.stderr)
    med = {k: statistics.median(w for w, _ in v) for k, v in rows.items()}
    peak = {k: max(m for _, m in v) for k, v in rows.items()}
    print(f"| side | whole process (median of {args.repeats}) | peak RSS |")
    print("|---|---:|---:|")
    for k in rows:
        print(f"| {k} | {med[k]:.2f} s | {peak[k] / 2**20:.0f} MiB |")
    print(f"| mmanet speed vs PyTorch | **{med['PyTorch'] / med['mmanet']:.2f}×** | "
          f"{peak['PyTorch'] / peak['mmanet']:.1f}× less memory |")
    return 0


def toml_list(methods: str) -> str:
    return "[" + ",".join(f'"{m.strip()}"' for m in methods.split(",") if m.strip()) + "]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default="sf,sf-md,mmanet",
                    help="student methods after the teacher (default: the demo's)")
    ap.add_argument("--epochs", type=int, default=30, help="epochs of every stage")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    ap.add_argument("--data", default=DATA, help="folder with mfeat-{pix,fou,mor}.csv")
    ap.add_argument("--output", help="checkpoint folder (default: a new temporary one)")
    ap.add_argument("--compare", metavar="MMANET",
                    help="time `MMANET demo` and this script's process side by side")
    ap.add_argument("--repeats", type=int, default=3, help="with --compare: runs of each side")
    args = ap.parse_args()
    if args.epochs < 7:
        ap.error("--epochs must be ≥ 7 (MMANet's warm-up of 5 epochs and one after it)")
    if args.repeats < 1:
        ap.error("--repeats must be ≥ 1")
    if args.compare:
        return compare(args)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("error: PyTorch is not installed (pip install torch)", file=sys.stderr)
        return 3
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
