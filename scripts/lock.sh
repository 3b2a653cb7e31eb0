#!/usr/bin/env bash
# Re-resolves requirements.lock (exact versions and hashes of everything setup.sh installs) from pyproject.toml,
# with pip-tools in a throwaway environment. Run it after changing a dependency, then `dvc repro` and commit both
# requirements.lock and dvc.lock: the lock is what makes a fresh clone's data and models match dvc.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3.11 -m venv "$tools"
"$tools/bin/pip" install --quiet pip-tools
# Machine-specific index and wheel locations stay in pip's own configuration, out of the lock.
"$tools/bin/pip-compile" --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
  --no-emit-find-links --extra dev --extra scale --output-file requirements.lock pyproject.toml "$@"
