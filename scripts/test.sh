#!/usr/bin/env bash
# Sets up .venv and runs the test suite (fast, CPU-only tests; add -m slow for the slow ones).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export PREFECT_HOME="$scratch/prefect" MLFLOW_TRACKING_URI="sqlite:///$scratch/mlflow.db"
.venv/bin/python -m pytest "$@"
