"""Resuming a run: the random states saved with a checkpoint and the check that the saved recipe is this one."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

import torch

from pip_model.engine.recipes import RESUME_NEUTRAL, TrainConfig
from pip_model.networks.checkpoints import safe_load


def _rng_state() -> dict[str, Any]:
    # Batches and degradations come from their own (seed, step) generators; the CUDA generators are never used, and
    # saving one state per visible GPU would stop a resume on a machine with fewer GPUs.
    return {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))


def resume_mismatch(saved: Mapping[str, Any] | None, config: TrainConfig) -> list[str]:
    """The settings (``name old -> new``) that stop a checkpoint written with ``saved`` from resuming ``config``."""
    current = asdict(config)
    saved = saved or {}
    # A setting newer than the checkpoint was then at its default, which is what the run did.
    defaults = {field.name: field.default for field in fields(TrainConfig) if field.default is not MISSING}
    return [f"{name} {saved.get(name, defaults.get(name))!r} -> {value!r}" for name, value in current.items()
            if name not in RESUME_NEUTRAL and saved.get(name, defaults.get(name)) != value]


def resumable_state(checkpoint_path: Path, config: TrainConfig, seed: int) -> tuple[dict[str, Any] | None, list[str]]:
    """The checkpoint's content if it resumes ``config`` under ``seed`` (else None), and the settings that stop it.

    Its ``run_id`` is the MLflow run the interrupted training logged to, which the resumed one continues.
    """
    if not checkpoint_path.is_file():
        return None, []
    state = safe_load(checkpoint_path)
    mismatch = resume_mismatch(state.get("config"), config)
    if state.get("seed") != seed:
        mismatch.append(f"base.seed {state.get('seed')!r} -> {seed!r}")
    return (None if mismatch else state), mismatch

