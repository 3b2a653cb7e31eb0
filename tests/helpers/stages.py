"""The checkout, quiet progress, and the environment a stage script runs in."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Keyword arguments that silence the progress lines of prepare_corpus, build_benchmark and write_offline_pairs.
QUIET = {"progress": lambda message: None}


def stage_environment(folder: Path, **extra: str) -> dict[str, str]:
    """The environment a stage script runs in: this interpreter first on PATH, this checkout importable,
    an MLflow SQLite store in ``folder`` (``extra`` overrides any of it)."""
    env = dict(os.environ)
    # Stage commands call `python`: make it this interpreter, which has pip_model installed.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(DVC_NO_ANALYTICS="1", MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}", PYTHONPATH=str(ROOT))
    env.update(extra)
    return env
