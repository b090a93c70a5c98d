#!/bin/bash
# The accuracy-against-energy fronts of docs/energy_aware.md, end to end on a CPU: the data set, then
# one `qkf sweep energy` per energy model (MODELS), each with the unconstrained run, the ReLU twin and
# that model's budgets. The unconstrained run and the twin do not price energy, so they are trained
# once (in the first model's folder) and linked into the others. Best epoch chosen on validation, test
# evaluated once; seeds SEEDS. Finished points are kept, killed ones resume; two copies can share OUT.
#
# SET=C: the demo's synthetic CREMA-D generator and cache settings (`qkf demo`: T = 4, 32x32 frames,
#        32 mel bands x 32 columns), 1,000 clips (14 actors) instead of 240, so that one validation
#        clip is about 1 point, not 4; the demo's AV model and recipe, EPOCHS epochs (default 16: 800
#        steps), budgets from epoch START (default 4).
# SET=D: the AVE-like Set D of jobs/ave_balancing.sh with its AVE recipe (no augmentation), EPOCHS
#        epochs (default 80, the balancing study's length), budgets from epoch START (default 20).
#
# Budgets start after a warm-up of START epochs (energy.start_epoch); each model's budgets can be
# replaced with BUDGETS_<model>=... (e.g. BUDGETS_platform_truenorth=40uJ,30uJ).
#
#   SET=C bash jobs/energy_front.sh /tmp/qkf-energy-C
#   SET=D bash jobs/energy_front.sh /tmp/qkf-energy-D
#   SET=D MODELS=platform_truenorth POINTS="2 3" bash jobs/energy_front.sh /tmp/x   # a subset of points
set -euo pipefail
SET=${SET:-D}
OUT=${1:-/tmp/qkf-energy-${SET}}
QKF=${QKF:-qkf}
SEEDS=${SEEDS:-0,1,2}
MODELS=${MODELS:-"h45_fp32_paper platform_truenorth"}

declare -A BUDGETS
case ${SET} in
    C)
        if [ ! -f "${OUT}/cache/index.json" ]; then
            ${QKF} data synth crema --out "${OUT}/raw" --clips 1000 --seed 0 --set actors=14
            ${QKF} data prepare crema --raw "${OUT}/raw" --out "${OUT}/cache" --clip-seconds 2 --time-steps 4 \
                --image-size 32 --n-mels 32 --audio-width 32 --split-seed 0 --workers 1 --no-progress
        fi
        BASE=(crema --modality av --config configs/demo/crema_av.yaml --set model.name=qkf_av_tiny_deploy
              --set "optim.epochs=${EPOCHS:-16}" --set "energy.start_epoch=${START:-4}")
        # docs/energy_aware.md: the floors the data and the architecture fix, 5.46 µJ and 29.5 µJ
        BUDGETS=([h45_fp32_paper]=5.8uJ [platform_truenorth]=50uJ,40uJ)
        ;;
    D)
        if [ ! -f "${OUT}/cache/index.json" ]; then
            ${QKF} data synth ave --out "${OUT}/raw" --seed 0 --set audio_pairs=false --clips 1000 \
                --set audio_noise=0.3 --set audio_missing=0.3 --set video_missing=0.1 --set video_contrast=0.6 \
                --set val_fraction=0.35 --set test_fraction=0.35
            ${QKF} data prepare ave --raw "${OUT}/raw" --out "${OUT}/cache" --clip-seconds 3 --image-size 32 \
                --n-mels 32 --audio-width 16 --time-steps 4 --no-progress
        fi
        BASE=(ave --modality av --set model.size=tiny --set "optim.epochs=${EPOCHS:-80}" --set data.augment=false
              --set data.batch_size=16 --set optim.lr=2e-3 --set optim.warmup_epochs=2 --set run.patience=0
              --set run.bn_recalibration=8 --set "energy.start_epoch=${START:-20}")
        # docs/energy_aware.md: the floors the data and the architecture fix, 4.78 µJ and 25.7 µJ
        BUDGETS=([h45_fp32_paper]=5uJ [platform_truenorth]=42uJ,36uJ,33uJ)
        ;;
    *) echo "error: SET=${SET}: must be C or D" >&2; exit 2 ;;
esac
COMMON=(--data "${OUT}/cache" --seeds "${SEEDS}" --with-relu-twin --set data.workers=0 --set run.threads=1
        --set run.checkpoint_every=0 --set run.progress=lines)

first=""
for model in ${MODELS}; do
    dir="${OUT}/${model}"
    override="BUDGETS_${model}"
    args=(sweep energy "${BASE[@]}" "${COMMON[@]}" --out "${dir}" --energy-model "${model}"
          --budgets "${!override:-${BUDGETS[${model}]}}")
    if [ -z "${first}" ]; then
        first=${dir}
    else  # the reference runs of the first model's folder (they do not depend on the model)
        mkdir -p "${dir}/runs"
        for seed in ${SEEDS//,/ }; do
            for ref in unconstrained relu; do
                link="${dir}/runs/s${seed}_${ref}"
                [ -e "${link}" ] || [ -L "${link}" ] || ln -s "${first}/runs/s${seed}_${ref}" "${link}"
            done
        done
    fi
    if [ -n "${POINTS:-}" ]; then  # these points only (indices of `qkf sweep energy ... --list`)
        for point in ${POINTS}; do ${QKF} "${args[@]}" --point "${point}"; done
    else
        ${QKF} "${args[@]}"
    fi
done
