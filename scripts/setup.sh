#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project with its test tools into it.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
[ -x .venv/bin/python ] || "$python" -m venv .venv
# This machine's pip configuration warns about every package it looks up locally; keep the real messages.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,scale]" 2>&1 \
  | { grep -v "^WARNING: Location '.*' is ignored" || true; }
