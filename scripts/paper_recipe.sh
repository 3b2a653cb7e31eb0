#!/usr/bin/env bash
# The paper-scale recipe as one DVC experiment (for a GPU machine):
#   bash scripts/paper_recipe.sh [DATASETS_DIR]
# DATASETS_DIR is prepare.datasets_root: the paper's datasets in their published layouts (BSD400, WED, BSD68,
# Rain100L, OTS, SOTS, GoPro, LOL...; see the README), each found by its folder name. Extra arguments after the
# folder go to `dvc exp run`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" DVC_NO_ANALYTICS=1
data=${1:-}
[ $# -gt 0 ] && shift
dvc exp run -n paper-recipe \
  -S "train.models=[pip_restormer,restormer]" \
  -S train.steps=150000 -S train.batch_size=8 -S train.patch=128 \
  -S train.lr=0.0002 -S train.weight_decay=0.01 -S train.warmup_steps=5000 -S train.min_lr_ratio=0.01 \
  -S train.loss=smooth_l1 -S 'train.task_weights={}' -S train.prompt_regularizer=cosine -S train.checkpoint_every=2000 \
  -S train.log_every=100 -S train.sample_every=2000 -S train.compile=true \
  -S train.workers=6 -S 'train.real_pairs={derain: 1.0, dehaze: 1.0, deblur: 1.0, lowlight: 1.0}' \
  -S degrade.benchmark_crop=256 -S degrade.crops_per_image=4 -S evaluate.tile=512 -S evaluate.metrics=paper \
  -S base.device=cuda -S "prepare.datasets_root=$data" "$@"
