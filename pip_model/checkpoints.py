"""Saving and loading model files and training checkpoints, atomically and weights-only."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pip_model.registry import build_model

MODEL_FORMAT = "pip_model/1"


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            torch.save(obj, file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def safe_load(path: str | os.PathLike) -> Any:
    """``torch.load(..., weights_only=True)`` onto the CPU, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or unsafe files
        raise ValueError(f"{path}: not a readable weights-only checkpoint: {error}") from error


def save_model_file(path: str | os.PathLike, model: nn.Module, *, model_name: str, **metadata: Any) -> None:
    """Writes a trained model: registry name, weights and plain metadata (run id, step...)."""
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    atomic_save({"format": MODEL_FORMAT, "model_name": model_name, "state_dict": state, **metadata}, path)


def load_model_file(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuilds a model written by :func:`save_model_file`; returns it in eval mode with its metadata."""
    content = safe_load(path)
    if not isinstance(content, dict) or content.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not a model file of this project (expected format {MODEL_FORMAT!r})")
    model = build_model(content["model_name"])
    model.load_state_dict(content["state_dict"])
    metadata = {key: value for key, value in content.items() if key != "state_dict"}
    return model.eval(), metadata
