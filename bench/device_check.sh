#!/usr/bin/env bash
# The GPU check in one call (see bench/device_check.py): pytest -m gpu, bench/gpu.py for pip_restormer and promptir,
# and a 300-step paper-config training on stand-ins, within --budget-s (default 480 s), into $OUT (or --out DIR).
#   bash bench/device_check.sh              # on a CUDA machine
#   bash bench/device_check.sh --cpu --out /tmp/check   # dry run on the CPU
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
if [ ! -x "$python" ]; then
  bash scripts/setup.sh
fi
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export PREFECT_HOME="$scratch/prefect" MLFLOW_TRACKING_URI="sqlite:///$scratch/mlflow.db"
exec "$python" bench/device_check.py "$@"
