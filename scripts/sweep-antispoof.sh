#!/usr/bin/env bash
# Where MMANet helps on the synthetic anti-spoofing benchmark, and where it does not: for each
# RGB cue strength (depth and IR fixed) and each MMANet weighting (α, β), SF-MD and MMANet over
# SEEDS seeds (`mmanet experiment ablation`), then one table (scripts/sweep_antispoof_table.py) of
# MMANet − SF-MD in ACER, paired by seed (same initialisation, batch order and modality draws),
# mean ± std, on average over all seven combinations and on each member of the weak set most
# seeds mined; and the weak sets mined.
#
#   scripts/sweep-antispoof.sh                       # defaults below; hours on 2 cores
#   SEEDS=3 RGB="0.15 0.35" AB="30,0.5" scripts/sweep-antispoof.sh
#
# Settings (environment): SEEDS (5), RGB (cue strengths, "0.1 0.25 0.4 0.6"), AB (α,β pairs,
# "30,0.5 3,0.1": the official anti-spoofing weights and the ones tuned on mfeat), EPOCHS (both
# stages; the config's 15 when empty), DEVICE (auto), OUT (runs/sweep-antispoof),
# MMANET (the binary; default: built with cargo in the README's profile).
# Per strength one run folder `rgb-<s>`: the teacher and SF-MD are trained once and reused for
# every (α, β); each weighting's tables are kept as `sweep-a<α>-b<β>-*.json`. Interrupted, or
# more strengths wanted? Rerun: a (strength, weighting) finished with the same SEEDS and EPOCHS
# is kept, finished stages are reused (the interrupted one starts over).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-5}
RGB=${RGB:-"0.1 0.25 0.4 0.6"}
AB=${AB:-"30,0.5 3,0.1"}
EPOCHS=${EPOCHS:-}
DEVICE=${DEVICE:-auto}
OUT=${OUT:-runs/sweep-antispoof}
if [ -z "${MMANET:-}" ]; then
    cargo build --release -p mmanet-app --quiet
    MMANET=${CARGO_TARGET_DIR:-target}/release/mmanet
fi
EPOCH_SET=()
if [ -n "$EPOCHS" ]; then
    EPOCH_SET=(--set "teacher.epochs=$EPOCHS" --set "student.epochs=$EPOCHS")
fi

for s in $RGB; do
    for ab in $AB; do
        a=${ab%,*}
        b=${ab#*,}
        stem="$OUT/rgb-$s/sweep-a$a-b$b-"
        settings="seeds $SEEDS, epochs ${EPOCHS:-of the config}"
        if [ -f "${stem}settings.txt" ] && [ "$(cat "${stem}settings.txt")" = "$settings" ]; then
            echo "== rgb_strength $s, α $a, β $b: finished before ($settings), kept"
            continue
        fi
        echo "== rgb_strength $s, α $a, β $b, $SEEDS seeds"
        "$MMANET" experiment ablation --config configs/synthetic-antispoof.toml \
            --seeds "$SEEDS" --device "$DEVICE" --output "$OUT" \
            --set "name=\"rgb-$s\"" --set 'methods=["sf-md","mmanet"]' \
            --set "data.synthetic.rgb_strength=$s" \
            --set "mmanet.alpha=$a" --set "mmanet.beta=$b" "${EPOCH_SET[@]}" > /dev/null
        for f in ablation-paired-acer.json ablation-acer.json ablation-mining.json; do
            cp "$OUT/rgb-$s/$f" "$stem$f"
        done
        echo "$settings" > "${stem}settings.txt"
    done
done

python3 scripts/sweep_antispoof_table.py "$OUT" "$RGB" "$AB" | tee "$OUT/sweep.md"
echo "tables: $OUT/sweep.md; every run's files under $OUT/rgb-*/"
