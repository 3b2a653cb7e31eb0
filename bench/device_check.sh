#!/usr/bin/env bash
# The GPU check in one call (see bench/device_check.py): pytest -m gpu, bench/gpu.py for pip_restormer and promptir,
# and a 300-step paper-config training on stand-ins, within --budget-s (default 480 s), into $OUT (or --out DIR).
#   bash bench/device_check.sh                            # on a CUDA machine
#   bash bench/device_check.sh --cpu --out /tmp/check     # dry run on the CPU
# The interpreter: $PYTHON if set; else .venv's; else, on a machine whose python3 has a CUDA torch (a lent GPU
# machine, which can install nothing), that python3 with the wheels of .whl/ (bench/device_wheels.sh fills it:
# the packages that image lacks); else scripts/setup.sh makes .venv first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then
  python=$PYTHON
elif [ -x .venv/bin/python ]; then
  python=.venv/bin/python
elif python3 -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  python=python3
  if compgen -G ".whl/*.whl" >/dev/null; then
    site=$(mktemp -d)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  fi
else
  bash scripts/setup.sh
  python=.venv/bin/python
fi
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
export PYTHONUNBUFFERED=1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export PREFECT_HOME="$scratch/prefect" MLFLOW_TRACKING_URI="sqlite:///$scratch/mlflow.db"
exec "$python" bench/device_check.py "$@"
