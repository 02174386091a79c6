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
# MAD alone runs MAD_WARMUP untimed and MAD_ITERS timed times on both sides (default 5 and 30:
# one run takes a few ms, so WARMUP=1 ITERS=3 would make that row a reading of noise).
# ROUNDS=N (default 1) runs everything N times, alternating which side goes first, and the table
# gives each row's median time per side, the median of the per-round ratios and each round's
# ratio: on a shared machine one reading of a ratio moves by ± 0.2, so quote ROUNDS=3 numbers.
# Results go to $OUT (default bench-out/): <device>-<preset>-{burn,torch}-r<round>.json,
# <device>-burn-mad-r<round>.md, table.md.
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
ROUNDS=${ROUNDS:-1}
MAD_WARMUP=${MAD_WARMUP:-5}
MAD_ITERS=${MAD_ITERS:-30}
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

burn_step() { # preset round
    local PRESET=$1 R=$2
    echo "== $PRESET: mmanet (Burn, $DEVICE), round $R"
    case "$PRESET" in
    seg-*)
        "$BIN" bench train --device "$DEVICE" --preset "$PRESET" --batch "$SEG_BATCH" \
            --height "$SEG_HEIGHT" --width "$SEG_WIDTH" --method sf-md,mmanet \
            --warmup "$WARMUP" --iters "$ITERS" --json "$OUT/$DEVICE-$PRESET-burn-r$R.json" \
            "${BURN_ARGS[@]}"
        ;;
    *)
        "$BIN" bench train --device "$DEVICE" --preset "$PRESET" --batch "$BATCH" --size 112 \
            --method sf-md,mmanet --warmup "$WARMUP" --iters "$ITERS" \
            --json "$OUT/$DEVICE-$PRESET-burn-r$R.json" "${BURN_ARGS[@]}"
        ;;
    esac
}
torch_step() { # preset round
    local PRESET=$1 R=$2
    echo "== $PRESET: PyTorch eager ($DEVICE), round $R"
    case "$PRESET" in
    seg-*)
        python3 bench/esanet_torch.py --device "$DEVICE" --preset "${PRESET#seg-}" \
            --batch "$SEG_BATCH" --height "$SEG_HEIGHT" --width "$SEG_WIDTH" \
            --method sf-md,mmanet --warmup "$WARMUP" --iters "$ITERS" \
            --json "$OUT/$DEVICE-$PRESET-torch-r$R.json" "${TORCH_ARGS[@]}"
        ;;
    *)
        python3 bench/mmanet_torch.py --device "$DEVICE" --preset "$PRESET" --batch "$BATCH" \
            --size 112 --method sf-md,mmanet --mad --warmup "$WARMUP" --iters "$ITERS" \
            --mad-warmup "$MAD_WARMUP" --mad-iters "$MAD_ITERS" \
            --json "$OUT/$DEVICE-$PRESET-torch-r$R.json" "${TORCH_ARGS[@]}"
        ;;
    esac
}
for R in $(seq 1 "$ROUNDS"); do
    for PRESET in $PRESETS; do
        # odd rounds time mmanet first, even rounds PyTorch first
        if (( R % 2 )); then
            burn_step "$PRESET" "$R"
            torch_step "$PRESET" "$R"
        else
            torch_step "$PRESET" "$R"
            burn_step "$PRESET" "$R"
        fi
    done
    echo "== MAD alone: mmanet (Burn, $DEVICE), round $R"
    "$BIN" bench mad --device "$DEVICE" --shape cls --warmup "$MAD_WARMUP" --iters "$MAD_ITERS" \
        "${BURN_ARGS[@]}" | tee "$OUT/$DEVICE-burn-mad-r$R.md"
done

if [ "$DEVICE" = cuda ]; then
    # where the time goes: cubecl's kernel profile of a few MMANet steps (slower while logging)
    echo "== profile: $OUT/cubecl-profile.log"
    CUBECL_DEBUG_LOG="$OUT/cubecl-profile.log" CUBECL_DEBUG_OPTION=profile-medium \
        "$BIN" bench train --device cuda --preset paper --batch "$BATCH" --method mmanet \
        --warmup 2 --iters 3 > "$OUT/profiled-run.md" || true
fi

echo "== side by side"
python3 - "$OUT" "$DEVICE" "$PRESETS" "$THREADS" "$ROUNDS" <<'EOF' | tee "$OUT/table.md"
import json, statistics, sys
out, device, presets = sys.argv[1], sys.argv[2], sys.argv[3].split()
threads, rounds = int(sys.argv[4]), int(sys.argv[5])

def mad_ms_of(path):
    """MAD's time on the path training uses (`--mad-impl auto`): the kernel where there is one."""
    mad_ms = None
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0] == "classification" and cells[3] != "path":
            try:
                ms = float(cells[4])
            except ValueError:
                continue
            if cells[3] != "tensor ops" or mad_ms is None:
                mad_ms = ms
    return mad_ms

# (preset, step) -> [(PyTorch ms, mmanet ms) per round]
pairs = {}
for r in range(1, rounds + 1):
    torch_mad = None
    for preset in presets:
        def rows(side):
            path = f"{out}/{device}-{preset}-{side}-r{r}.json"
            return {x["what"]: x for x in json.load(open(path))["rows"]}
        burn, torch = rows("burn"), rows("torch")
        torch_mad = torch_mad or torch.get("MAD forward + backward")
        for what in ["SF-MD", "MMANet", "deployment forward"]:
            if what in burn and what in torch:
                key = (preset, f"{what}, batch {burn[what]['batch']}")
                pairs.setdefault(key, []).append(
                    (torch[what]["median_ms"], burn[what]["median_ms"]))
    mad_ms = mad_ms_of(f"{out}/{device}-burn-mad-r{r}.md")
    if mad_ms is not None and torch_mad is not None:
        key = ("—", "MAD forward + backward (64 × 8192)")
        pairs.setdefault(key, []).append((torch_mad["median_ms"], mad_ms))

where = f"{device}, {threads} threads" if device == "cpu" else device
if rounds > 1:
    where += f", median of {rounds} rounds"
print(f"| preset | step ({where}) | PyTorch ms | mmanet ms "
      "| mmanet speed vs PyTorch | ratio per round |")
print("|---|---|---:|---:|---:|---|")
for (preset, what), readings in pairs.items():
    t = statistics.median(p[0] for p in readings)
    b = statistics.median(p[1] for p in readings)
    ratios = [p[0] / p[1] for p in readings]
    per_round = " / ".join(f"{x:.2f}×" for x in ratios)
    print(f"| {preset} | {what} | {t:.2f} | {b:.2f} | {statistics.median(ratios):.2f}× "
          f"| {per_round} |")
EOF
