#!/usr/bin/env python3
"""What a stage trained with `gradient_diagnostics = true` measured, as one Markdown table per
stage: per epoch, the task loss's gradient norm on the deployment network; for each other
term (MAD, MAR, ...) its weighted gradient's norm relative to the task loss's and the cosine
between the two; each term's value with the whole batch seen through one combination (MAD:
the teacher-student relation discrepancy of that combination); and how many training samples
the regularization network took as the weak combination's.

    python3 scripts/diagnostics_table.py RUN_DIR [STAGE ...]      # default: every stage found
    python3 scripts/diagnostics_table.py runs/sweep-seg/e64-n240-c100_100/seed-0 mmanet

reads RUN_DIR/<stage>/meta.json (the history every stage writes).
"""
import json
import os
import sys


def combination_label(bits, names):
    # a ModalitySet serialises as its bit mask
    return "+".join(n for i, n in enumerate(names) if bits >> i & 1)


def stage_table(path, names):
    with open(path) as f:
        meta = json.load(f)
    history = [e for e in meta["history"] if e.get("diagnostics")]
    if not history:
        return None
    terms = []
    for e in history:
        for g in e["diagnostics"]["gradients"][1:]:
            if g["term"] not in terms:
                terms.append(g["term"])
    combos = []
    for e in history:
        for v in e["diagnostics"]["values"]:
            if v["combination"] not in combos:
                combos.append(v["combination"])
    value_terms = ["ce"] + terms
    head = ["epoch", "‖∇ce‖"]
    head += [f"{t}: ‖∇‖/‖∇ce‖, cos" for t in terms]
    head += [f"{t} on {combination_label(c, names)}" for t in value_terms for c in combos]
    head += ["regularized samples"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for e in history:
        d = e["diagnostics"]
        grads = {g["term"]: g for g in d["gradients"]}
        row = [str(e["epoch"] + 1), f"{grads['ce']['norm']:.3g}"]
        for t in terms:
            g = grads.get(t)
            row.append(f"{g['ratio_to_task']:.3f}, {g['cosine_to_task']:+.3f}" if g else "—")
        values = {(v["term"], v["combination"]): v["value"] for v in d["values"]}
        for t in value_terms:
            for c in combos:
                v = values.get((t, c))
                row.append(f"{v:.4g}" if v is not None else "—")
        counts = ", ".join(f"{t} {n}" for t, n in e.get("regularized_samples", []))
        row.append(counts or "—")
        lines.append("| " + " | ".join(row).replace("-", "−") + " |")
    return "\n".join(lines)


def main(run_dir, stages):
    names = ["rgb", "depth"]
    reports = os.path.join(run_dir, "reports.json")
    if os.path.exists(reports):
        with open(reports) as f:
            first = json.load(f)
        if isinstance(first, list) and first:
            names = first[0].get("modalities", names)
    if not stages:
        stages = sorted(
            d for d in os.listdir(run_dir) if os.path.exists(os.path.join(run_dir, d, "meta.json"))
        )
    for stage in stages:
        table = stage_table(os.path.join(run_dir, stage, "meta.json"), names)
        print(f"### {stage}\n")
        print(table or "(no diagnostics: train with `--set student.gradient_diagnostics=true`)")
        print()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
