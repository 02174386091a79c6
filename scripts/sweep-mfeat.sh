#!/usr/bin/env bash
# The hyper-parameter and mode study behind the README's MMANet section: each variant runs the
# ablation (SF-MD, +MAD, MMANet) over 5 seeds on mfeat and prints the average row and the
# per-combination change MMANet − SF-MD. Takes a few minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
out="${1:-runs/sweep}"
seeds="${SEEDS:-5}"
run() {
  local name="$1"; shift
  ./target/release/mmanet experiment ablation --config configs/mfeat-ablation.toml --seeds "$seeds" \
    --device cpu --output "$out/$name" --set 'methods=["sf-md","mad","mmanet"]' "$@" >/dev/null
  python3 - "$out/$name/mfeat-ablation/ablation.json" "$name" <<'PY'
import json, sys
t = json.load(open(sys.argv[1])); m = t["methods"]
sf, mm = m.index("SF-MD"), m.index("MMANet")
cells = t["cells"]
delta = " ".join(f"{r}:{cells[i][mm][0]-cells[i][sf][0]:+.2f}" for i, r in enumerate(t["rows"][:-1]))
avg = cells[-1]
print(f"{sys.argv[2]:<28} SF-MD {avg[sf][0]:.2f}  +MAD {avg[m.index('+MAD')][0]:.2f}  MMANet {avg[mm][0]:.2f}  | {delta}")
PY
}
run official
run mar-loss-paper     --set mmanet.mar_loss='"paper"'
run mad-paper          --set mmanet.mad='"paper"'
run mining-paper       --set mmanet.mining='"paper"'
run all-paper          --set mmanet.mar_loss='"paper"' --set mmanet.mad='"paper"' --set mmanet.mining='"paper"' --set mmanet.candidates='"paper"'
run beta-0.1           --set mmanet.beta=0.1
run beta-2             --set mmanet.beta=2.0
run alpha-3            --set mmanet.alpha=3.0
run alpha-100          --set mmanet.alpha=100.0
run alpha-3-beta-0.1   --set mmanet.alpha=3.0 --set mmanet.beta=0.1
