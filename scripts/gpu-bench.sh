#!/usr/bin/env bash
# The MMANet training step, mmanet (Burn) side by side with the PyTorch reference
# (bench/mmanet_torch.py), in one run on one machine: for each preset at batch 64 on three
# 3×112×112 inputs — the SF-MD step, the MMANet step, the deployment forward pass, and MAD
# forward + backward alone — one table with the ratio.
#
# On an NVIDIA GPU (the default, DEVICE=cuda): build the binary where the sources are (no GPU or
# CUDA toolkit needed to build),
#   cargo build --release -p mmanet-app --features cuda
# then on the GPU machine, from the repository root (PyTorch with CUDA installed):
#   scripts/gpu-bench.sh [path/to/mmanet]          # default: target/release/mmanet
# The binary may be gzipped (mmanet.gz: about a quarter of the size, for copying it over).
# On the CPU (Burn's flex backend against PyTorch on the same THREADS, default every core;
# `pip install torch`):
#   DEVICE=cpu PRESETS="small paper seg-small seg-paper" WARMUP=1 ITERS=3 scripts/gpu-bench.sh
# The `seg-…` presets time the segmentation network (ESANet, RGB-D) against
# bench/esanet_torch.py, at SEG_BATCH scenes (default 8) of SEG_HEIGHT×SEG_WIDTH (192×256).
# With GOLDEN_TEST=path to the golden-case test binary built with the feature
# (cargo test --release -p mmanet-tests --features cuda --test cuda_golden --no-run), the MAD and
# MAR golden cases run on the GPU first.
# Results go to $OUT (default bench-out/): <device>-<preset>-{burn,torch}.json, table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/mmanet}
DEVICE=${DEVICE:-cuda}
PRESETS=${PRESETS:-paper}
BATCH=${BATCH:-64}
WARMUP=${WARMUP:-5}
ITERS=${ITERS:-20}
OUT=${OUT:-bench-out}
THREADS=${THREADS:-$(nproc)}
SEG_BATCH=${SEG_BATCH:-8}
SEG_HEIGHT=${SEG_HEIGHT:-192}
SEG_WIDTH=${SEG_WIDTH:-256}
mkdir -p "$OUT"
if [[ "$BIN" == *.gz ]]; then
    gunzip -c "$BIN" > "$OUT/mmanet" && chmod +x "$OUT/mmanet" && BIN="$OUT/mmanet"
fi
TORCH_ARGS=()
BURN_ARGS=()
if [ "$DEVICE" = cpu ]; then
    # the same threads on both sides
    TORCH_ARGS+=(--threads "$THREADS")
    BURN_ARGS+=(--threads "$THREADS")
fi

echo "== machine"
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    # Burn's CUDA backend loads the driver and NVRTC at run time; PyTorch's wheels carry NVRTC
    NV=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null || true)
    if [ -n "$NV" ]; then
        for lib in "$NV"/*/lib; do LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"; done
        export LD_LIBRARY_PATH
    fi
else
    echo "$(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
fi
python3 -c 'import torch; print("torch", torch.__version__, "threads", torch.get_num_threads())'

if [ -n "${GOLDEN_TEST:-}" ]; then
    echo "== golden MAD/MAR cases on $DEVICE"
    MMANET_GOLDEN_DIR=tests/golden "$GOLDEN_TEST" --nocapture
fi

for PRESET in $PRESETS; do
    echo "== $PRESET: mmanet (Burn, $DEVICE)"
    case "$PRESET" in
    seg-*)
        "$BIN" bench train --device "$DEVICE" --preset "$PRESET" --batch "$SEG_BATCH" \
            --height "$SEG_HEIGHT" --width "$SEG_WIDTH" --method sf-md,mmanet \
            --warmup "$WARMUP" --iters "$ITERS" --json "$OUT/$DEVICE-$PRESET-burn.json" \
            "${BURN_ARGS[@]}"
        echo "== $PRESET: PyTorch eager ($DEVICE)"
        python3 bench/esanet_torch.py --device "$DEVICE" --preset "${PRESET#seg-}" \
            --batch "$SEG_BATCH" --height "$SEG_HEIGHT" --width "$SEG_WIDTH" \
            --method sf-md,mmanet --warmup "$WARMUP" --iters "$ITERS" \
            --json "$OUT/$DEVICE-$PRESET-torch.json" "${TORCH_ARGS[@]}"
        ;;
    *)
        "$BIN" bench train --device "$DEVICE" --preset "$PRESET" --batch "$BATCH" --size 112 \
            --method sf-md,mmanet --warmup "$WARMUP" --iters "$ITERS" \
            --json "$OUT/$DEVICE-$PRESET-burn.json" "${BURN_ARGS[@]}"
        echo "== $PRESET: PyTorch eager ($DEVICE)"
        python3 bench/mmanet_torch.py --device "$DEVICE" --preset "$PRESET" --batch "$BATCH" \
            --size 112 --method sf-md,mmanet --mad --warmup "$WARMUP" --iters "$ITERS" \
            --json "$OUT/$DEVICE-$PRESET-torch.json" "${TORCH_ARGS[@]}"
        ;;
    esac
done
echo "== MAD alone: mmanet (Burn, $DEVICE)"
"$BIN" bench mad --device "$DEVICE" --shape cls --warmup "$WARMUP" --iters "$ITERS" \
    "${BURN_ARGS[@]}" | tee "$OUT/$DEVICE-burn-mad.md"

if [ "$DEVICE" = cuda ]; then
    # where the time goes: cubecl's kernel profile of a few MMANet steps (slower while logging)
    echo "== profile: $OUT/cubecl-profile.log"
    CUBECL_DEBUG_LOG="$OUT/cubecl-profile.log" CUBECL_DEBUG_OPTION=profile-medium \
        "$BIN" bench train --device cuda --preset paper --batch "$BATCH" --method mmanet \
        --warmup 2 --iters 3 > "$OUT/profiled-run.md" || true
fi

echo "== side by side"
python3 - "$OUT" "$DEVICE" "$PRESETS" "$BATCH" "$THREADS" "$SEG_BATCH" <<'EOF' | tee "$OUT/table.md"
import json, sys
out, device, presets, batch = sys.argv[1], sys.argv[2], sys.argv[3].split(), int(sys.argv[4])
threads, seg_batch = int(sys.argv[5]), int(sys.argv[6])
mad_ms = None
for line in open(f"{out}/{device}-burn-mad.md"):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    # the path training uses (`--mad-impl auto`): the kernel where there is one
    if len(cells) >= 5 and cells[0] == "classification" and cells[3] != "path":
        try:
            ms = float(cells[4])
        except ValueError:
            continue
        if cells[3] != "tensor ops" or mad_ms is None:
            mad_ms = ms
where = f"{device}, {threads} threads" if device == "cpu" else device
print(f"| preset | step ({where}) | PyTorch ms | mmanet ms | PyTorch samples/s "
      "| mmanet samples/s | mmanet speed vs PyTorch |")
print("|---|---|---:|---:|---:|---:|---:|")
def row(preset, what, t, b):
    print(f"| {preset} | {what} | {t['median_ms']:.2f} | {b['median_ms']:.2f} | "
          f"{t['samples_per_s']:.1f} | {b['samples_per_s']:.1f} | "
          f"{t['median_ms'] / b['median_ms']:.2f}× |")
torch_mad = None
for preset in presets:
    burn = {r["what"]: r for r in json.load(open(f"{out}/{device}-{preset}-burn.json"))["rows"]}
    torch = {r["what"]: r for r in json.load(open(f"{out}/{device}-{preset}-torch.json"))["rows"]}
    torch_mad = torch_mad or torch.get("MAD forward + backward")
    for what in ["SF-MD", "MMANet", "deployment forward"]:
        if what in burn and what in torch:
            row(preset, f"{what}, batch {burn[what]['batch']}", torch[what], burn[what])
if mad_ms is not None and torch_mad is not None:
    row("—", "MAD forward + backward (64 × 8192)", torch_mad,
        {"median_ms": mad_ms, "samples_per_s": 64e3 / mad_ms})
EOF
