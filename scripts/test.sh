#!/usr/bin/env bash
# Sets up .venv and runs the test suite (fast, CPU-only tests; add -m slow for the slow ones,
# PYTEST_WORKERS=0 to run in one process). `--unit` runs only the unit tests: no test marked integration (those
# start a subprocess, a server or dvc), under a minute on two free cores; any other argument goes to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false \
  GRADIO_ANALYTICS_ENABLED=False
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export PREFECT_HOME="$scratch/prefect" MLFLOW_TRACKING_URI="sqlite:///$scratch/mlflow.db"
# The reference tests are the only independent check that pip_restormer is the published network: say loudly when
# they cannot run (PIP_REQUIRE_REFERENCE=1 turns their absence into a failure, as CI does).
if ! .venv/bin/python -c "import sys, tests.helpers.reference_weights as r; sys.exit(r.reference_dir() is None)"; then
  echo "test.sh: the reference tests (tests/test_reference.py) will be SKIPPED: no pip_restormer_state_dict.tsv in" \
       "\$PIP_REFERENCE_DIR, ../shared/reference or shared/reference. Point PIP_REFERENCE_DIR at the reference files" \
       "to check that pip_restormer matches the published network." >&2
fi
# Two pytest workers, one test module each at a time (module fixtures such as the pipeline repository stay whole);
# one math thread per process, so the workers and the stages they start do not fight over the two cores.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
