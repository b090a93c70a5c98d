#!/bin/bash
# The modality-balancing evidence of docs/modality_balancing.md, end to end on a CPU. Every condition
# runs with seeds 0, 1, 2 (SEEDS) and the same budget (tiny models, T = 4, batch 16, AdamW 2e-3, 2 warm-up
# epochs, cosine); the best epoch is chosen on validation accuracy and the test split is evaluated once
# with it; then the table and the curves. Finished runs are kept, killed ones resume (--resume).
#
# SET=D (default): the regime of the literature's failure. Few training clips (298; 351 val, 351 test)
# and no augmentation, so a joint model fits its training set (98-100 %) before its video encoder has
# learned what video alone learns: audio names the class in 70 % of clips, video is fainter but present
# in 90 %. 80 epochs; all 8 conditions take about 2 h of one core (two copies sharing OUT: 1 h).
# SET=A: 1,400 clips (980 train), audio missing in 45 %, augmentation on, 40 epochs (about 1 h).
#
#   bash jobs/ave_balancing.sh [OUT=/tmp/qkf-balancing-D]
#   SET=A bash jobs/ave_balancing.sh /tmp/qkf-balancing-A
#   CONDITIONS="audio av_plain" bash jobs/ave_balancing.sh /tmp/x   # a subset (two copies can share OUT)
#   CONDITIONS="av_plain av_aux" SEEDS="3 4" bash jobs/ave_balancing.sh   # more seeds
set -euo pipefail
SET=${SET:-D}
OUT=${1:-/tmp/qkf-balancing-${SET}}
QKF=${QKF:-qkf}
PY=${PY:-python}
CONDITIONS=${CONDITIONS:-"audio video av_plain av_bal av_aux av_ogm av_bal_long av_bal_a01"}
SEEDS=${SEEDS:-"0 1 2"}

declare -A FLAGS=(
    [audio]="--modality audio"
    [video]="--modality video"
    [av_plain]="--modality av --no-ogm-ge --aux-weight 0"
    [av_bal]="--modality av --ogm-ge --ogm-alpha 0.3 --ogm-end 9 --aux-weight 0.5"  # the AVE recipe
    [av_aux]="--modality av --no-ogm-ge --aux-weight 0.5"
    [av_ogm]="--modality av --ogm-ge --ogm-alpha 0.3 --ogm-end 50 --aux-weight 0"
    [av_bal_long]="--modality av --ogm-ge --ogm-alpha 0.3 --ogm-end 50 --aux-weight 0.5"  # earlier recipe
    [av_bal_a01]="--modality av --ogm-ge --ogm-alpha 0.1 --ogm-end 50 --aux-weight 0.5"
)
case ${SET} in
    D)
        SYNTH="--clips 1000 --set audio_noise=0.3 --set audio_missing=0.3 --set video_missing=0.1
               --set video_contrast=0.6 --set val_fraction=0.35 --set test_fraction=0.35"
        TRAIN="--epochs 80 --no-augment"
        ;;
    A)
        SYNTH="--clips 1400 --set audio_noise=0.5 --set audio_missing=0.45 --set video_missing=0.15
               --set video_contrast=0.45 --set val_fraction=0.15 --set test_fraction=0.15"
        TRAIN="--epochs 40 --augment"
        ;;
    *) echo "error: SET=${SET}: must be A or D" >&2; exit 2 ;;
esac

if [ ! -f "${OUT}/cache/index.json" ]; then
    # shellcheck disable=SC2086
    ${QKF} data synth ave --out "${OUT}/raw" --seed 0 --set audio_pairs=false ${SYNTH}
    ${QKF} data prepare ave --raw "${OUT}/raw" --out "${OUT}/cache" --clip-seconds 3 --image-size 32 \
        --n-mels 32 --audio-width 16 --time-steps 4 --no-progress
fi
for seed in ${SEEDS}; do
    for condition in ${CONDITIONS}; do
        [ -f "${OUT}/runs/${condition}_s${seed}/results.json" ] && continue
        # shellcheck disable=SC2086
        ${QKF} train ave ${FLAGS[${condition}]} ${TRAIN} --data "${OUT}/cache" --out "${OUT}/runs" \
            --name "${condition}_s${seed}" --seed "${seed}" --size tiny --batch-size 16 \
            --lr 2e-3 --warmup-epochs 2 --workers 0 --patience 0 --checkpoint-every 0 --threads 1 \
            --progress lines --set run.bn_recalibration=8 --resume
    done
done
${PY} jobs/balancing_report.py "${OUT}/runs" --png "${OUT}/curves.png" \
    --paired av_plain av_bal --paired av_plain av_aux --paired audio av_bal
