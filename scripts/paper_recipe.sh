#!/usr/bin/env bash
# The paper's experiments as one DVC experiment each (the recipe is for a GPU machine):
#   bash scripts/paper_recipe.sh PROTOCOL DATASETS_DIR [KEY=VALUE ...]
# PROTOCOL is 3task or 5task (params.yaml: protocols). DATASETS_DIR is prepare.datasets_root: the paper's datasets
# in their published layouts (BSD400, WED, BSD68, Rain100L, OTS, SOTS, GoPro, LOL...; see the README), each found by
# its folder name. KEY=VALUE pairs override params last, e.g. train.steps=1000.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" DVC_NO_ANALYTICS=1
exec python -m flows.paper "$@"
