#!/usr/bin/env bash
# Train a small Local Expression Diffusion model on your labelled face photos, then evaluate it.
#
#   bash examples/train_small.sh PHOTOS_DIR [OUT_DIR] [extra train_led.py arguments ...]
#
#   TEST_SUBJECTS=01,02 bash examples/train_small.sh ~/data/RaFD runs/rafd-small      # RaFD file names
#   bash examples/train_small.sh ~/data/my_faces runs/mine                             # happy/ sad/ ... sub-folders
#   MAX_STEPS=2000 bash examples/train_small.sh ~/data/RaFD runs/rafd --push_to_hub --hub_model_id me/led-rafd \
#       --hub_private_repo                                                             # RaFD: private only!
#
# Three steps, each skipped or resumed when its output is already there, so the script can be re-run:
#   1. led-prepare-data: photos -> eye / mouth crops (train/ and test/ split by subject) in OUT_DIR/crops
#   2. train_led.py (accelerate launch): a short run -> a LocalExpressionPipeline folder in OUT_DIR/model
#   3. led-evaluate (when installed): a report in OUT_DIR/report
#
# Settings (environment variables):
#   MAX_STEPS     optimisation steps (default 300: about 15 min on 2 CPU cores with UNET=cpu)
#   UNET          UNet preset: tiny, cpu (default, 6.7M parameters) or paper, or a JSON file
#   BATCH_SIZE    crops per step (default 16)
#   TEXT_ENCODER  where the label embeddings come from (default: the table of the bundled model, which holds the
#                 all-mpnet-base-v2 embeddings of the 8 labels, so no text encoder needs installing); or a
#                 sentence-transformers model name / folder, e.g. all-mpnet-base-v2 (scripts/install_text_encoder.py)
#   TEST_SUBJECTS comma-separated subject ids held out for evaluation (default: led-prepare-data picks 5 %)
#   LAUNCHER      how train_led.py is started (default: "accelerate launch --num_processes 1")
#   PYTHON        the Python of the environment where diffusers-led is installed (default: python)
#   EVAL_ARGS     extra led-evaluate arguments (default: a quick report: blend mode, 2 strengths, 8 photos)
#
# Licences: models trained on RaFD must NOT be published openly: if you push to the Hub, add --hub_private_repo
# (train_led.py refuses a public push of RaFD data). CK+ images may not be redistributed and a model trained on them
# is for non-commercial research use only. See docs/training-rafd.md and docs/training-ckplus.md.
set -euo pipefail

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage ;; esac
PHOTOS=$1
shift
OUT=runs/train_small
if [ $# -ge 1 ] && [ "${1#-}" = "$1" ]; then OUT=$1; shift; fi  # OUT_DIR is optional
[ -d "$PHOTOS" ] || { echo "train_small.sh: $PHOTOS is not a folder of photos" >&2; exit 2; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TRAIN_SCRIPT=${TRAIN_SCRIPT:-$HERE/../train_led.py}
PYTHON=${PYTHON:-python}
MAX_STEPS=${MAX_STEPS:-300}
UNET=${UNET:-cpu}
BATCH_SIZE=${BATCH_SIZE:-16}
LAUNCHER=${LAUNCHER:-accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no}
if [ -z "${TEXT_ENCODER:-}" ]; then
    TEXT_ENCODER=$("$PYTHON" -c 'from diffusers_led.pretrained import default_model_path; print(default_model_path())')
fi
mkdir -p "$OUT"

echo "== 1/3 Crops: $PHOTOS -> $OUT/crops"
PREPARE=(led-prepare-data --input_dir "$PHOTOS" --output_dir "$OUT/crops" --quiet)
[ -n "${TEST_SUBJECTS:-}" ] && PREPARE+=(--test_subjects "$TEST_SUBJECTS")
"${PREPARE[@]}"

echo "== 2/3 Training: $MAX_STEPS steps, UNet preset $UNET -> $OUT/model"
# shellcheck disable=SC2086  # LAUNCHER is a command line on purpose
$LAUNCHER "$TRAIN_SCRIPT" \
    --train_data_dir "$OUT/crops" --output_dir "$OUT/model" \
    --unet_config "$UNET" --text_encoder "$TEXT_ENCODER" \
    --max_train_steps "$MAX_STEPS" --train_batch_size "$BATCH_SIZE" \
    --learning_rate 1e-3 --lr_scheduler cosine --loss_type smooth_l1 \
    --use_ema --ema_decay 0.999 --ema_use_warmup --conditioning_dropout_prob 0.1 \
    --random_flip --checkpointing_steps 100 --checkpoints_total_limit 1 --resume_from_checkpoint latest \
    --validation_epochs 1000000 --report_to tensorboard --seed 0 \
    "$@"

echo "== 3/3 Evaluation -> $OUT/report"
if command -v led-evaluate >/dev/null 2>&1; then
    # shellcheck disable=SC2086  # EVAL_ARGS is a list of arguments on purpose
    # --overwrite: a re-run replaces its own earlier report (never other files).
    led-evaluate --model "$OUT/model" --data "$OUT/crops" --out "$OUT/report" --overwrite \
        ${EVAL_ARGS:---modes blend --strengths 0.35,0.5 --max-images 8 --no-realism}
    echo "Report: $OUT/report/report.md"
else
    echo "led-evaluate is not installed (it comes with diffusers-led >= the evaluation release); skipped."
fi
echo "Model: $OUT/model   (try it: python $HERE/edit_one.py --model $OUT/model, or led-demo --model $OUT/model)"
