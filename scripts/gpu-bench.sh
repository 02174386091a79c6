#!/usr/bin/env bash
# The MMANet training step on one NVIDIA GPU, mmanet (Burn's CUDA backend) side by side with the
# PyTorch reference (bench/mmanet_torch.py), in one run on one machine: the paper preset at
# batch 64 on three 3×112×112 inputs — the SF-MD step, the MMANet step, the deployment forward
# pass, and MAD forward + backward alone — printed as one table with the ratio.
#
# Build the binary where the sources are (no GPU or CUDA toolkit needed to build):
#   cargo build --release -p mmanet-app --features cuda
# then on the GPU machine, from the repository root (PyTorch with CUDA installed):
#   scripts/gpu-bench.sh [path/to/mmanet]          # default: target/release/mmanet
# The binary may be gzipped (mmanet.gz: about a quarter of the size, for copying it over).
# Results go to $OUT (default bench-out/): burn.json, torch.json, table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/mmanet}
OUT=${OUT:-bench-out}
WARMUP=${WARMUP:-5}
ITERS=${ITERS:-20}
mkdir -p "$OUT"
if [[ "$BIN" == *.gz ]]; then
    gunzip -c "$BIN" > "$OUT/mmanet" && chmod +x "$OUT/mmanet" && BIN="$OUT/mmanet"
fi

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'

# Burn's CUDA backend loads the driver and NVRTC at run time; PyTorch's wheels carry NVRTC
NV=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null || true)
if [ -n "$NV" ]; then
    for lib in "$NV"/*/lib; do LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"; done
    export LD_LIBRARY_PATH
fi

echo "== mmanet (Burn CUDA)"
"$BIN" bench train --device cuda --preset paper --batch 64 --size 112 \
    --method sf-md,mmanet --warmup "$WARMUP" --iters "$ITERS" --json "$OUT/burn.json"
"$BIN" bench mad --device cuda --shape cls --warmup "$WARMUP" --iters "$ITERS" | tee "$OUT/burn-mad.md"

echo "== PyTorch eager"
python3 bench/mmanet_torch.py --device cuda --preset paper --batch 64 --size 112 \
    --method sf-md,mmanet --mad --warmup "$WARMUP" --iters "$ITERS" --json "$OUT/torch.json"

echo "== side by side"
python3 - "$OUT" <<'EOF' | tee "$OUT/table.md"
import json, re, sys
out = sys.argv[1]
burn = {r["what"]: r for r in json.load(open(f"{out}/burn.json"))["rows"]}
torch = {r["what"]: r for r in json.load(open(f"{out}/torch.json"))["rows"]}
# MAD alone from `mmanet bench mad`'s table (tensor ops row, classification shape)
for line in open(f"{out}/burn-mad.md"):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) >= 5 and cells[0] == "classification" and cells[3] == "tensor ops":
        ms = float(cells[4])
        burn["MAD forward + backward"] = {"median_ms": ms, "samples_per_s": 64 / ms * 1e3,
                                          "reserved_bytes": None}
print("| step (paper preset, batch 64) | PyTorch ms | mmanet ms | PyTorch samples/s | mmanet samples/s | mmanet speed vs PyTorch |")
print("|---|---:|---:|---:|---:|---:|")
for what in ["SF-MD", "MMANet", "deployment forward", "MAD forward + backward"]:
    if what not in burn or what not in torch:
        print(f"| {what} | missing | | | | |")
        continue
    b, t = burn[what], torch[what]
    print(f"| {what} | {t['median_ms']:.2f} | {b['median_ms']:.2f} | {t['samples_per_s']:.0f} | "
          f"{b['samples_per_s']:.0f} | {t['median_ms'] / b['median_ms']:.2f}× |")
EOF
