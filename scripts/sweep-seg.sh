#!/usr/bin/env bash
# When does MMANet beat SF-MD on RGB-D segmentation? For each setting of the schedule and the
# data (epochs, number of scenes, cue strengths) and each MMANet weighting (α, β, warm-up),
# SF-MD and MMANet over SEEDS seeds on the synthetic scenes (`mmanet experiment ablation`,
# configs/scenes-ablation.toml), then one table (scripts/sweep_seg_table.py) of MMANet − SF-MD
# in mIoU, paired by seed (same initialisation, batch order and modality draws), mean ± std,
# on average and on the weak combination the seeds mined, with each run's wall time.
#
#   scripts/sweep-seg.sh                                   # the defaults below
#   SEEDS=3 EPOCHS="16 64" AWB="4,0.2,7 1,0.2,7" scripts/sweep-seg.sh
#   SCENES="96 240" CUES="100,100 50,100" scripts/sweep-seg.sh
#
# Settings (environment):
#   SEEDS   seeds per run (3)
#   EPOCHS  both stages' epochs ("16")
#   SCENES  scenes generated ("240"); validation and test keep 48 scenes each, the rest trains
#           (240 → 144 training scenes, 96 → 0: use ≥ 104)
#   CUES    colour-only and depth-only cue strengths in percent, "rgb,depth" ("100,100")
#   AWB     MMANet weightings "α,β,warm-up" ("4,0.2,7": NYUv2's α and β, the demo's warm-up);
#           MAR mines in the three epochs before the warm-up ends, as the config does, and
#           both stages select their model from the first epoch with MAD and MAR on
#   DIAGNOSTICS  1: the students train with `gradient_diagnostics` (each term's gradient on the
#           deployment network, per epoch; scripts/diagnostics_table.py); the same models, about
#           a fifth slower (default 0)
#   DEVICE  auto; OUT runs/sweep-seg; MMANET the binary (default: built with cargo, release)
# Per data and schedule setting one run folder `e<epochs>-n<scenes>-c<rgb>_<depth>`: the teacher
# and SF-MD are trained once there and reused for every weighting, whose tables are kept as
# `sweep-a<α>-b<β>-w<warm-up>-*`. Interrupted, or more settings wanted? Rerun: a finished
# (setting, weighting) with the same SEEDS is kept, finished stages are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-3}
EPOCHS=${EPOCHS:-16}
SCENES=${SCENES:-240}
CUES=${CUES:-100,100}
AWB=${AWB:-4,0.2,7}
DEVICE=${DEVICE:-auto}
OUT=${OUT:-runs/sweep-seg}
EXTRA=()
if [ "${DIAGNOSTICS:-0}" = 1 ]; then
    EXTRA=(--set student.gradient_diagnostics=true)
fi
if [ -z "${MMANET:-}" ]; then
    cargo build --release -p mmanet-app --quiet
    MMANET=${CARGO_TARGET_DIR:-target}/release/mmanet
fi
HELD_OUT=48 # validation and test scenes, each

for e in $EPOCHS; do
    for n in $SCENES; do
        if [ "$n" -lt $((2 * HELD_OUT + 8)) ]; then
            echo "sweep-seg: SCENES $n leaves fewer than 8 training scenes (48 validate, 48 test)" >&2
            exit 1
        fi
        held=$(python3 -c "print($HELD_OUT / $n)")
        train=$(python3 -c "print(1 - 2 * $HELD_OUT / $n)")
        for c in $CUES; do
            rgb=${c%,*}
            depth=${c#*,}
            group="e$e-n$n-c${rgb}_$depth"
            for awb in $AWB; do
                IFS=, read -r a b w <<<"$awb"
                if [ "$w" -lt 3 ] || [ "$w" -ge $((e - 1)) ]; then
                    echo "sweep-seg: warm-up $w must be ≥ 3 and leave an epoch of the $e with MAD and MAR on" >&2
                    exit 1
                fi
                mining="[$((w - 3)),$((w - 2)),$((w - 1))]"
                stem="$OUT/$group/sweep-a$a-b$b-w$w-"
                settings="seeds $SEEDS"
                if [ -f "${stem}settings.txt" ] && [ "$(cat "${stem}settings.txt")" = "$settings" ]; then
                    echo "== $group, α $a, β $b, warm-up $w: finished before ($settings), kept"
                    continue
                fi
                echo "== $group, α $a, β $b, warm-up $w, $SEEDS seeds"
                mkdir -p "$OUT/$group"
                started=$SECONDS
                "$MMANET" experiment ablation --config configs/scenes-ablation.toml \
                    --seeds "$SEEDS" --device "$DEVICE" --output "$OUT" \
                    --set "name=\"$group\"" --set 'methods=["sf-md","mmanet"]' \
                    --set "teacher.epochs=$e" --set "student.epochs=$e" \
                    --set "teacher.select_after_epoch=$((w + 1))" \
                    --set "student.select_after_epoch=$((w + 1))" \
                    --set "data.scenes.scenes=$n" --set "data.split.train=$train" \
                    --set "data.split.val=$held" --set "data.split.test=$held" \
                    --set "data.scenes.rgb_cue_percent=$rgb" \
                    --set "data.scenes.depth_cue_percent=$depth" \
                    --set "mmanet.alpha=$a" --set "mmanet.beta=$b" \
                    --set "mmanet.warmup_epochs=$w" --set "mmanet.mining_epochs=$mining" \
                    "${EXTRA[@]}" >"${stem}log.txt" 2>&1 || {
                    tail -n 20 "${stem}log.txt" >&2
                    exit 1
                }
                for f in ablation-paired-miou.json ablation-miou.json ablation-mining.json; do
                    cp "$OUT/$group/$f" "$stem$f"
                done
                # each seed's MMANet and SF-MD histories and reports (the folder is the next
                # weighting's, and may hold more seeds, from an earlier sweep with more)
                for ((k = 0; k < SEEDS; k++)); do
                    seed_dir="$OUT/$group/seed-$k"
                    cp "$seed_dir/mmanet/meta.json" "${stem}seed-$k-mmanet-meta.json"
                    cp "$seed_dir/sf-md/meta.json" "${stem}seed-$k-sf-md-meta.json"
                    cp "$seed_dir/reports.json" "${stem}seed-$k-reports.json"
                done
                echo "$((SECONDS - started))" >"${stem}seconds.txt"
                echo "$settings" >"${stem}settings.txt"
            done
        done
    done
done

python3 scripts/sweep_seg_table.py "$OUT" | tee "$OUT/sweep.md"
echo "tables: $OUT/sweep.md; every run's files under $OUT/e*/"
