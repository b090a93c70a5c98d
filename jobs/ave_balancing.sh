#!/bin/bash
# The modality-balancing evidence of docs/modality_balancing.md, end to end on a CPU:
# a synthetic AVE-layout set (audio strong but ambiguous between class pairs, video exact but weak),
# then audio-only, AV without balancing and AV with OGM-GE + auxiliary losses, 3 seeds each, the
# same budget for all; then the table and the curves.
#
#   bash jobs/ave_balancing.sh [OUT=/tmp/qkf-ave]        # ~1 h of one CPU core
set -euo pipefail
OUT=${1:-/tmp/qkf-ave}
QKF=${QKF:-qkf}
PY=${PY:-python}
[ -f "${OUT}/cache/index.json" ] || {
    ${QKF} data synth ave --out "${OUT}/raw" --clips 1000 --seed 0
    ${QKF} data prepare ave --raw "${OUT}/raw" --out "${OUT}/cache" --clip-seconds 3 \
        --image-size 32 --n-mels 32 --audio-width 16 --time-steps 4 --no-progress
}
COMMON=(--data "${OUT}/cache" --size tiny --epochs 20 --batch-size 16 --lr 2e-3 --warmup-epochs 2
        --workers 0 --patience 0 --checkpoint-every 0 --threads 1 --progress lines --out "${OUT}/runs"
        --overwrite --set run.bn_recalibration=8)
for SEED in 0 1 2; do
    ${QKF} train ave --modality audio "${COMMON[@]}" --seed "${SEED}" --name "audio_s${SEED}"
    ${QKF} train ave --modality av "${COMMON[@]}" --seed "${SEED}" --name "av_plain_s${SEED}" \
        --no-ogm-ge --aux-weight 0
    ${QKF} train ave --modality av "${COMMON[@]}" --seed "${SEED}" --name "av_bal_s${SEED}" \
        --ogm-ge --ogm-alpha 0.8 --ogm-start 0 --ogm-end 50 --aux-weight 0.5 --set balance.target=gradient
done
${PY} jobs/balancing_report.py "${OUT}/runs" --png docs/modality_balancing.png
