#!/usr/bin/env python3
"""The table of scripts/sweep-seg.sh: for each data and schedule setting (a run folder
`e<epochs>-n<scenes>-c<rgb>_<depth>`) and each MMANet weighting (alpha, beta, warm-up), the weak
combination MMANet mined in each seed, SF-MD's average test mIoU and MMANet - SF-MD in mIoU,
paired by seed (mean +- std over the seeds), on average and on the weak combination most seeds
mined; a difference larger than two standard deviations is marked. Also the epoch each model
was selected at (mean over seeds; near the last epoch means validation mIoU was still rising)
and SF-MD's mean validation mIoU over the last 8 epochs against the 8 before them (flat once
the schedule is long enough)
what the students' gradient diagnostics say (DIAGNOSTICS=1: how hard MAD and MAR pull on the
deployment network relative to the task loss, and MAD's discrepancy on the weak combination at
the end), and what the weighting's run cost (the first weighting of a setting also trains its teacher
and SF-MD).

    python3 scripts/sweep_seg_table.py OUT

reads OUT/<setting>/sweep-a<alpha>-b<beta>-w<warm-up>-{ablation-paired-miou,ablation-miou,
ablation-mining}.json, -seed-<k>-{mmanet-meta,sf-md-meta,reports}.json and -seconds.txt (for
the seeds the weighting ran; sweeps before the SF-MD copies: OUT/<setting>/seed-<k>/sf-md/
meta.json), and prints Markdown.
"""
import glob
import json
import os
import re
import sys
from collections import Counter


def cell(table, row, col, signed):
    mean, std = table["cells"][row][col]
    text = f"{mean:+.2f} ± {std:.2f}" if signed else f"{mean:.2f} ± {std:.2f}"
    if signed and abs(mean) > 2 * std and std > 0:
        text = f"**{text}**"
    return text.replace("-", "−")


def seed_files(pattern, seeds):
    """The files of seeds 0 … seeds−1 matching `pattern` (`…seed-*-…`, the `*` standing for
    the seed's number), in seed order: a folder can hold more seeds than the weighting ran
    with, left by an earlier sweep with more seeds."""
    found = {}
    for path in glob.glob(pattern):
        k = re.search(r"seed-(\d+)-[^/]*$", path)
        if k and int(k.group(1)) < seeds:
            found[int(k.group(1))] = path
    return [found[k] for k in sorted(found)]


def best_epoch(meta_files):
    """Mean selected epoch (1-based) over the given stages' meta.json, and their epoch count."""
    picked, total = [], None
    for path in meta_files:
        with open(path) as f:
            meta = json.load(f)
        picked.append(meta["best_epoch"] + 1)
        total = len(meta["history"])
    if not picked:
        return "—"
    return f"{sum(picked) / len(picked):.0f} of {total}"


def seeds_up(report_files, label):
    """", up in k of n seeds": in how many seeds MMANet beat SF-MD on the combination `label`
    (from the per-seed reports the sweep keeps; empty when there are none)."""
    up = n = 0
    for path in report_files:
        with open(path) as f:
            reports = {r["method"]: r for r in json.load(f)}
        rows = {m: {row["label"]: row["seg"]["miou"] for row in reports[m]["rows"]}
                for m in ("MMANet", "SF-MD")}
        n += 1
        up += rows["MMANet"][label] > rows["SF-MD"][label]
    return f", up in {up} of {n}" if n else ""


def flattening(meta_files):
    """Mean validation mIoU (%) over the last 8 epochs and over the 8 before them, averaged over
    the given stages (seeds): near equal once the schedule is long enough."""
    last, before = [], []
    for path in meta_files:
        with open(path) as f:
            scores = [e["val_score"] for e in json.load(f)["history"]]
        if len(scores) >= 16:
            last.append(sum(scores[-8:]) / 8)
            before.append(sum(scores[-16:-8]) / 8)
    if not last:
        return "—"
    a, b = 100 * sum(last) / len(last), 100 * sum(before) / len(before)
    return f"{b:.1f} → {a:.1f}"


def pulls(meta_files, weak_label, names=("rgb", "depth")):
    """From the students' gradient diagnostics (when the sweep ran with DIAGNOSTICS=1): MAD's
    and MAR's gradient norm relative to the task loss's and their cosine to it, each the mean
    over the epochs with the term on and over the seeds, and MAD's relation discrepancy on the
    weak combination at the last epoch (mean over seeds)."""
    terms = {}
    last_mad = []
    for path in meta_files:
        with open(path) as f:
            history = json.load(f)["history"]
        for e in history:
            d = e.get("diagnostics")
            if not d:
                continue
            for g in d["gradients"][1:]:
                terms.setdefault(g["term"], []).append((g["ratio_to_task"], g["cosine_to_task"]))
        d = history[-1].get("diagnostics") if history else None
        if d:
            for v in d["values"]:
                label = "+".join(n for i, n in enumerate(names) if v["combination"] >> i & 1)
                if v["term"] == "mad" and label == weak_label:
                    last_mad.append(v["value"])
    if not terms:
        return "—", "—"
    parts = []
    for term, pairs in terms.items():
        ratio = sum(p[0] for p in pairs) / len(pairs)
        cos = sum(p[1] for p in pairs) / len(pairs)
        parts.append(f"{term} {ratio:.2f}, {cos:+.2f}")
    mad = f"{sum(last_mad) / len(last_mad):.3f}" if last_mad else "—"
    return "; ".join(parts).replace("-", "−"), mad


def main(out):
    print("| epochs | scenes (train) | cues rgb/depth % | α | β | warm-up | weak mined | "
          "SF-MD mIoU, average | MMANet − SF-MD, average | MMANet − SF-MD, weak | "
          "selected epoch SF-MD / MMANet | SF-MD val mIoU, epochs −16…−9 → last 8 | gradient on the deployment network, ‖∇‖/‖∇ce‖ and cos | "
          "MAD on the weak combination, last epoch | run time |")
    print("|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---|---|---|---:|---:|")
    settings = sorted(
        (d for d in os.listdir(out) if re.fullmatch(r"e\d+-n\d+-c\d+_\d+", d)),
        key=lambda d: tuple(int(x) for x in re.findall(r"\d+", d)),
    )
    for setting in settings:
        e, n, rgb, depth = re.findall(r"\d+", setting)
        held = 48
        stems = sorted(
            glob.glob(f"{out}/{setting}/sweep-a*-settings.txt"),
            key=lambda p: tuple(float(x) for x in re.findall(r"[abw]([\d.]+)", os.path.basename(p))),
        )
        for done in stems:
            stem = done[: -len("settings.txt")]
            a, b, w = re.match(r".*sweep-a([\d.]+)-b([\d.]+)-w(\d+)-$", stem).groups()
            with open(stem + "ablation-paired-miou.json") as f:
                paired = json.load(f)
            with open(stem + "ablation-miou.json") as f:
                plain = json.load(f)
            with open(stem + "ablation-mining.json") as f:
                mined = json.load(f)["weak_sets_per_seed"]
            with open(stem + "seconds.txt") as f:
                seconds = int(f.read())
            col = paired["methods"].index("MMANet")
            seeds = paired["runs"][col]
            # SF-MD's stages as this weighting's run left them (the sweep keeps a copy per
            # weighting; older sweeps only have the setting's folder, shared by its weightings)
            sf_md_metas = seed_files(stem + "seed-*-sf-md-meta.json", seeds) or [
                f"{out}/{setting}/seed-{k}/sf-md/meta.json" for k in range(seeds)
                if os.path.exists(f"{out}/{setting}/seed-{k}/sf-md/meta.json")
            ]
            sf_md = best_epoch(sf_md_metas)
            flat = flattening(sf_md_metas)
            base = plain["methods"].index("SF-MD")
            sets = [", ".join(seed[0][1]) if seed and seed[0][1] else "—" for seed in mined]
            ranked = Counter(sets).most_common()
            top, count = ranked[0]
            weak = f"{top} ({count} of {len(sets)})"
            weak_cells = []
            for member in top.split(", "):
                if member in paired["rows"]:
                    text = cell(paired, paired["rows"].index(member), col, True)
                    weak_cells.append(text + seeds_up(seed_files(stem + "seed-*-reports.json", seeds), member))
            avg = len(plain["rows"]) - 1
            metas = seed_files(stem + "seed-*-mmanet-meta.json", seeds)
            mmanet = best_epoch(metas)
            pull, mad = pulls(metas, top)
            print(f"| {e} | {n} ({int(n) - 2 * held}) | {rgb}/{depth} | {a} | {b} | {w} | {weak} | "
                  f"{cell(plain, avg, base, False)} | {cell(paired, avg, col, True)} | "
                  f"{'; '.join(weak_cells) or '—'} | {sf_md} / {mmanet} | {flat} | {pull} | {mad} | "
                  f"{seconds // 60} min {seconds % 60:02d} s |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
