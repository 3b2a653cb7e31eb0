"""Saving and loading model files and training checkpoints, atomically and weights-only."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pip_model.image_files import atomic_write
from pip_model.networks.registry import build_model

MODEL_FORMAT = "pip_model/1"


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: never a half-written file."""
    atomic_write(path, lambda file: torch.save(obj, file))


def safe_load(path: str | os.PathLike) -> Any:
    """``torch.load(..., weights_only=True)`` onto the CPU, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or unsafe files
        raise ValueError(f"{path}: not a readable weights-only checkpoint: {_load_problem(error)}") from error


def _load_problem(error: Exception) -> str:
    """torch.load's refusal in one line: the object a weights-only load will not make, or the reason it stopped.

    torch's own message spans lines and suggests ``weights_only=False``, which would run whatever the file says.
    """
    text = str(error)
    if refused := re.search(r"unsupported(?: global:)? GLOBAL (\S+)", text, flags=re.IGNORECASE):
        return (f"it holds {refused[1]}, an object a weights-only load refuses to make (unpickling it could run "
                "code); nothing in it was run")
    reason = text.split("WeightsUnpickler error:", 1)[-1].split("Check the documentation", 1)[0]
    if "weights_only` set to `False`" in reason:  # never pass on torch's advice to run the file
        reason = reason.rsplit("trusted source.", 1)[-1]
    return " ".join(reason.split()) or type(error).__name__


def save_model_file(path: str | os.PathLike, model: nn.Module, *, model_name: str, **metadata: Any) -> None:
    """Writes a trained model: registry name, weights, its prompt classes (a prompted model's, a sensor's) and plain
    metadata (run id, step...)."""
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    classes = getattr(getattr(model, "module", model), "classes", None)  # a DDP-wrapped model's too
    extra = {"classes": list(classes)} if classes else {}
    atomic_save({"format": MODEL_FORMAT, "model_name": model_name, "state_dict": state, **extra, **metadata}, path)


def is_model_content(content: Any) -> bool:
    """Whether the loaded content of a file is one that :func:`save_model_file` wrote."""
    return isinstance(content, dict) and content.get("format") == MODEL_FORMAT


def load_model_file(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuilds a model written by :func:`save_model_file`; returns it in eval mode with its metadata."""
    return model_from_content(safe_load(path), path)


def model_from_content(content: Any, path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """:func:`load_model_file` on content already read from ``path`` (named in errors)."""
    if not is_model_content(content):
        raise ValueError(f"{path}: not a model file of this project (expected format {MODEL_FORMAT!r})")
    if not isinstance(content.get("state_dict"), dict) or not isinstance(content.get("model_name"), str):
        raise ValueError(f"{path}: a model file of this project without its weights or model name (damaged?)")
    classes = content.get("classes")  # a file written before class sets were saved holds the paper's five
    if classes is not None and not (isinstance(classes, list) and all(isinstance(name, str) for name in classes)):
        raise ValueError(f"{path}: its classes are not a list of class names (damaged?): {classes!r}")
    try:
        model = build_model(content["model_name"], classes=classes)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    found = {name: tuple(tensor.shape) for name, tensor in content["state_dict"].items()}
    if found != expected:  # written by another version of the network (e.g. a sensor before exposure statistics)
        differ = sorted(name for name in expected.keys() | found.keys() if expected.get(name) != found.get(name))
        raise ValueError(
            f"{path}: its {content['model_name']} does not fit this version of the network ({differ[0]} is "
            f"{found.get(differ[0])} in the file, {expected.get(differ[0])} here; {len(differ)} of its tensors "
            "differ); retrain it (dvc repro) or use the version that wrote it")
    model.load_state_dict(content["state_dict"])
    metadata = {key: value for key, value in content.items() if key != "state_dict"}
    return model.eval(), metadata
