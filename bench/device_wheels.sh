#!/usr/bin/env bash
# Fills .whl/ with the wheels a lent GPU machine's image lacks (it has torch, numpy, pandas, Pillow, einops,
# scikit-image, PyYAML, pytest and nvidia-ml-py, but not Kornia or pypng), for its Python 3.12, at requirements.lock's
# versions. Run it here, where pip can download; then carry .whl with the run (bench/device_check.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
version() { sed -n "s/^$1==\([^ ]*\).*/\1/p" requirements.lock; }
python=.venv/bin/python
[ -x "$python" ] || python=python3
mkdir -p .whl
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  "kornia==$(version kornia)" "kornia-rs==$(version kornia-rs)" "pypng==$(version pypng)"
ls -l .whl
