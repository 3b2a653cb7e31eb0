"""PIP: Prompt-In-Prompt learning for universal image restoration.

The public surface: the model registry, the published-checkpoint loaders, the degradations, the
task/class mapping and the prompt regulariser. Names are imported on first use, so a
submodule that needs no torch (``pip_model.image_files``, used by the `scan` stage on every
`dvc repro`) loads in a fraction of a second.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

from pip_model import cpu_kernels

# The math libraries pick their kernels by CPU model, so the same training gave other bits on another CPU: pin them
# to one level before torch runs its first kernel (pip_model/cpu_kernels.py; a variable set by hand wins).
cpu_kernels.pin()

_EXPORTS = {
    "CLASSES": "pip_model.tasks",
    "COMPOSITE_TASKS": "pip_model.tasks",
    "PAPER_CLASSES": "pip_model.tasks",
    "TASKS": "pip_model.tasks",
    "TASK_TO_CLASS": "pip_model.tasks",
    "PIPConfig": "pip_model.networks.pip",
    "build_model": "pip_model.networks.registry",
    "degrade": "pip_model.data.degradations",
    "list_models": "pip_model.networks.registry",
    "load_published": "pip_model.networks.reference",
    "load_reference": "pip_model.networks.reference",
    "prompt_regularization": "pip_model.engine.losses",
    "task_class": "pip_model.tasks",
    "task_prompt": "pip_model.tasks",
}

__all__ = sorted(_EXPORTS)

# Modules that moved into the sub-packages, under their old names: a model registered in MLflow before the move is a
# pickle that names its classes by these, and user code may import them. Each old name is the same module object.
MOVED_MODULES = {
    **{f"pip_model.{name}": f"pip_model.networks.{name}" for name in (
        "backbone", "checkpoints", "layers", "nafnet", "pip", "reference", "registry", "restormer", "sensor")},
    **{f"pip_model.{name}": f"pip_model.apps.{name}" for name in ("colours", "report", "restore", "seeds", "serving")},
    "pip_model.classical": "pip_model.evaluation.classical",
    "pip_model.corpus": "pip_model.data.corpus",
    "pip_model.datasets": "pip_model.data.datasets",
    "pip_model.degradations": "pip_model.data.degradations",
    "pip_model.losses": "pip_model.engine.losses",
}


class _MovedModuleLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return importlib.import_module(MOVED_MODULES[spec.name])

    def exec_module(self, module: Any) -> None:
        """The module ran under its new name already."""


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, _MovedModuleLoader())


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModuleFinder())


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pip_model' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
