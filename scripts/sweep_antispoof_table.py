#!/usr/bin/env python3
"""The table of scripts/sweep-antispoof.sh: for each RGB cue strength and (alpha, beta), the weak
set MMANet mined in each seed, SF-MD's average ACER and MMANet - SF-MD in ACER, paired by seed
(mean +- std over the seeds), on each member of the weak set most seeds mined and on average.

    python3 scripts/sweep_antispoof_table.py OUT "0.1 0.25" "30,0.5 3,0.1"

reads OUT/rgb-<s>/sweep-a<alpha>-b<beta>-ablation-{paired-acer,acer,mining}.json (the files
`mmanet experiment ablation` writes, kept per weighting by the sweep) and prints Markdown.
"""
import json
import sys
from collections import Counter


def cell(table, row, col, signed):
    mean, std = table["cells"][row][col]
    text = f"{mean:+.2f} ± {std:.2f}" if signed else f"{mean:.2f} ± {std:.2f}"
    return text.replace("-", "−")


def main(out, strengths, weights):
    print("| RGB cue | α | β | weak set mined | SF-MD ACER, average | "
          "MMANet − SF-MD, average | MMANet − SF-MD on the weak set |")
    print("|---:|---:|---:|---|---:|---:|---|")
    for s in strengths:
        for ab in weights:
            a, b = ab.split(",")
            stem = f"{out}/rgb-{s}/sweep-a{a}-b{b}-"
            with open(stem + "ablation-paired-acer.json") as f:
                paired = json.load(f)
            with open(stem + "ablation-acer.json") as f:
                plain = json.load(f)
            with open(stem + "ablation-mining.json") as f:
                mined = json.load(f)["weak_sets_per_seed"]
            col = paired["methods"].index("MMANet")
            base = plain["methods"].index("SF-MD")
            # each seed's weak set (MMANet's), as "pair, single, single"
            sets = [", ".join(seed[0][1]) if seed and seed[0][1] else "—" for seed in mined]
            ranked = Counter(sets).most_common()
            top, count = ranked[0]
            others = "".join(f"; {o} in {n}" for o, n in ranked[1:])
            seeds = f"{top} ({count} of {len(sets)} seeds{others})"
            members = []
            for member in top.split(", "):
                if member in paired["rows"]:
                    r = paired["rows"].index(member)
                    members.append(f"{member} {cell(paired, r, col, True)}")
            avg = len(plain["rows"]) - 1
            print(f"| {s} | {a} | {b} | {seeds} | {cell(plain, avg, base, False)} | "
                  f"{cell(paired, avg, col, True)} | {'; '.join(members) or '—'} |")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2].split(), sys.argv[3].split())
