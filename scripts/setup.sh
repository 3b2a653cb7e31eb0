#!/usr/bin/env bash
# Creates .venv (if missing) and installs exactly requirements.lock (versions and hashes) into it, then the project
# itself; a second run with an unchanged lock installs nothing. scripts/lock.sh updates the lock.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.requirements.lock.sha256
wanted=$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  # This machine's pip configuration warns about every package it looks up locally; keep the real messages.
  { .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
      -r requirements.lock \
    && .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .; } 2>&1 \
    | { grep -v "^WARNING: Location '.*' is ignored" || true; }
  .venv/bin/python -m pip check >/dev/null || { .venv/bin/python -m pip check; exit 1; }
  echo "$wanted" > "$stamp"
fi
