#!/bin/bash
# The modality-balancing evidence of docs/modality_balancing.md, end to end on a CPU (about 1 h of
# one core; or two copies with OUT shared and CONDITIONS split between them):
# a synthetic AVE-layout set (the `ave` preset with audio that names the class but is missing in 45 %
# of clips, video faint but present in 85 %: audio is learned first; 1,400 clips, 15 % val, 15 % test),
# then every condition with seeds 0, 1, 2
# and the same budget (tiny models, T = 4, 40 epochs, batch 16, AdamW 2e-3, 2 warm-up epochs, cosine,
# augmentation on), the best epoch chosen on validation accuracy, test evaluated once with it; then
# the table and the curves. Finished runs are kept, killed ones resume (--resume).
#
#   bash jobs/ave_balancing.sh [OUT=/tmp/qkf-balancing]
#   CONDITIONS="audio av_plain" bash jobs/ave_balancing.sh /tmp/qkf-balancing   # a subset
set -euo pipefail
OUT=${1:-/tmp/qkf-balancing}
QKF=${QKF:-qkf}
PY=${PY:-python}
CONDITIONS=${CONDITIONS:-"audio video av_plain av_bal"}  # also: av_aux av_ogm (ablations)

declare -A FLAGS=(
    [audio]="--modality audio"
    [video]="--modality video"
    [av_plain]="--modality av --no-ogm-ge --aux-weight 0"
    [av_bal]="--modality av --ogm-ge --ogm-alpha 0.3 --aux-weight 0.5"  # the AVE recipe's balancing
    [av_aux]="--modality av --no-ogm-ge --aux-weight 0.5"
    [av_ogm]="--modality av --ogm-ge --ogm-alpha 0.3 --aux-weight 0"
)

if [ ! -f "${OUT}/cache/index.json" ]; then
    ${QKF} data synth ave --out "${OUT}/raw" --clips 1400 --seed 0 --set audio_pairs=false \
        --set audio_noise=0.5 --set audio_missing=0.45 --set video_missing=0.15 --set video_contrast=0.45 \
        --set val_fraction=0.15 --set test_fraction=0.15
    ${QKF} data prepare ave --raw "${OUT}/raw" --out "${OUT}/cache" --clip-seconds 3 --image-size 32 \
        --n-mels 32 --audio-width 16 --time-steps 4 --no-progress
fi
for seed in 0 1 2; do
    for condition in ${CONDITIONS}; do
        [ -f "${OUT}/runs/${condition}_s${seed}/results.json" ] && continue
        # shellcheck disable=SC2086
        ${QKF} train ave ${FLAGS[${condition}]} --data "${OUT}/cache" --out "${OUT}/runs" \
            --name "${condition}_s${seed}" --seed "${seed}" --size tiny --epochs 40 --batch-size 16 \
            --lr 2e-3 --warmup-epochs 2 --workers 0 --patience 0 --checkpoint-every 0 --threads 1 \
            --progress lines --set run.bn_recalibration=8 --resume
    done
done
${PY} jobs/balancing_report.py "${OUT}/runs" --png "${OUT}/curves.png"
