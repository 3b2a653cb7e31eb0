"""PIP: Prompt-In-Prompt learning for universal image restoration.

The public surface: the model registry, the reference loader, the degradations, the
task/class mapping and the prompt regulariser. Names are imported on first use, so a
submodule that needs no torch (``pip_model.image_files``, used by the `scan` stage on every
`dvc repro`) loads in a fraction of a second.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# Intel's MKL picks its float kernels by CPU model, so the same code gave other pixels on an Intel machine than on
# an AMD one (where MKL takes its generic path): COMPATIBLE is that generic path everywhere, which makes the
# benchmark and training bit-identical across x86 machines at no measured cost (bench/reproducible.py). Set before
# torch first calls MKL; a user who sets MKL_CBWR keeps theirs.
os.environ.setdefault("MKL_CBWR", "COMPATIBLE")

_EXPORTS = {
    "DEGRADATION_CLASSES": "pip_model.tasks",
    "NUM_CLASSES": "pip_model.tasks",
    "TASKS": "pip_model.tasks",
    "TASK_TO_CLASS": "pip_model.tasks",
    "PIPConfig": "pip_model.pip",
    "build_model": "pip_model.registry",
    "degrade": "pip_model.degradations",
    "list_models": "pip_model.registry",
    "load_reference": "pip_model.reference",
    "prompt_regularization": "pip_model.losses",
    "task_class": "pip_model.tasks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pip_model' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
