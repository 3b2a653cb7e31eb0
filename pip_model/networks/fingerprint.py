"""What decides a model's training result, as one small JSON per model: the ``models`` stage writes it, and each
train stage depends on its model's file alone.

So a new model (a built-in one, or a plug-in's) adds a file of its own and leaves every other train stage up to
date, and an edit of code no model runs (tracking, previews, the registry's other entries) retrains nothing. The
fingerprint holds the model's architecture (its ``repr`` and every weight's shape), how it is called, the tasks it
covers, and the SHA-256 of the source of every module its classes (and their bases), and the functions and classes those
modules take from the same package, are defined in.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import types
from pathlib import Path
from typing import Any

import torch

from pip_model.networks.registry import build_model, model_spec

_OUTSIDE = ("torch", "builtins", "typing", "collections", "abc")


def _package_of(module_name: str) -> str:
    return module_name.split(".", 1)[0]


def _code_modules(model: torch.nn.Module) -> set[str]:
    """The modules whose code builds or runs ``model``: those of its classes and their bases, the factory's, and
    (transitively) those their module-level functions and classes come from within the same top-level package; the
    registry is left out, as its other entries do not change this model."""
    found = {cls.__module__ for module in model.modules() for cls in type(module).__mro__
             if _package_of(cls.__module__) not in _OUTSIDE}
    found.discard("pip_model.networks.registry")  # every built-in factory is there: its other entries are not ours
    pending = sorted(found)
    while pending:
        module = sys.modules.get(pending.pop())
        if module is None:
            continue
        for value in vars(module).values():
            origin = getattr(value, "__module__", None)
            if (isinstance(value, type | types.FunctionType) and isinstance(origin, str) and origin not in found
                    and _package_of(origin) == _package_of(module.__name__)
                    and origin != "pip_model.networks.registry"):
                found.add(origin)
                pending.append(origin)
    return found


def _source_hash(module_name: str) -> str:
    module = sys.modules[module_name]
    try:
        path = Path(inspect.getsourcefile(module) or "")
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except (TypeError, OSError):
        return "no source"


def model_fingerprint(name: str) -> dict[str, Any]:
    """The registered model ``name``'s fingerprint (built on the meta device: no weights are allocated)."""
    spec = model_spec(name)
    with torch.device("meta"):
        model = build_model(name)
    modules = _code_modules(model)
    return {
        "model": name,
        "origin": spec.origin,
        "call": spec.call,
        "tasks": list(spec.tasks),
        "conditions": list(spec.conditions),
        "architecture": hashlib.sha256(repr(model).encode()).hexdigest(),
        "weights": {key: list(tensor.shape) for key, tensor in model.state_dict().items()},
        "code": {module: _source_hash(module) for module in sorted(modules)},
    }
