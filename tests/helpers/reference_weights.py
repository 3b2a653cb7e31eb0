"""Regenerates the deterministic test weights of the published PIP-Restormer and PromptIR.

``../shared/reference/README.md`` (and ``promptir/README.md`` there) describe how each tensor
of the published models was filled before their outputs were recorded; this module follows
that recipe, which is the same for both but for the names of their prompt tensors.
"""

from __future__ import annotations

import math
import os
import zlib
from pathlib import Path

import torch


def reference_dir() -> Path | None:
    """Folder of the reference files: $PIP_REFERENCE_DIR, or ``shared/reference`` beside the checkout."""
    candidates = [os.environ.get("PIP_REFERENCE_DIR")]
    root = Path(__file__).resolve().parents[2]
    candidates += [root.parent / "shared" / "reference", root / "shared" / "reference"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "pip_restormer_state_dict.tsv").is_file():
            return Path(candidate)
    return None


def reference_layout(folder: Path, table: str = "pip_restormer_state_dict.tsv") -> list[tuple[str, tuple[int, ...]]]:
    """Key and shape of every published tensor, in the published order (``table`` names the model's file)."""
    rows = (folder / table).read_text().splitlines()[1:]
    layout = []
    for row in rows:
        name, shape = row.split("\t")[:2]
        layout.append((name, tuple(int(n) for n in shape.split("x"))))
    return layout


def reference_tensor(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The value the README's recipe gives to one published tensor."""
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    z = torch.randn(shape, generator=generator, dtype=torch.float32)
    last = name.split(".")[-1]
    if last in ("detask_prompt_param", "low_prompt_param", "prompt_param"):
        return z
    if last == "temperature":
        return 1 + 0.1 * z
    if last in ("attn1", "attn2", "attn3", "attn4"):
        return 0.2 + 0.05 * z
    if len(shape) >= 2:
        return z / math.sqrt(math.prod(shape[1:]))
    if last == "weight":
        return 1 + 0.1 * z
    return 0.1 * z


def reference_state_dict(folder: Path, table: str = "pip_restormer_state_dict.tsv") -> dict[str, torch.Tensor]:
    return {name: reference_tensor(name, shape) for name, shape in reference_layout(folder, table)}


PROMPTIR_TABLE = "promptir/promptir_state_dict.tsv"


def promptir_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """The published PromptIR's test weights (``promptir/`` of the reference folder)."""
    return reference_state_dict(folder, PROMPTIR_TABLE)


def lightning_checkpoint(state: dict[str, torch.Tensor]) -> dict:
    """``state`` as a released PyTorch Lightning file holds a network: under ``state_dict``, each key prefixed with
    the LightningModule's attribute ``net.``, beside the trainer's own entries."""
    first = next(iter(state.values()))
    return {
        "epoch": 119, "global_step": 534_120, "pytorch-lightning_version": "2.0.1",
        "state_dict": {f"net.{key}": value for key, value in state.items()},
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 120, "completed": 119}}}},
        "callbacks": {"ModelCheckpoint{'monitor': None}": {"dirpath": "train_ckpt", "best_model_score": None}},
        "optimizer_states": [{"state": {0: {"step": torch.tensor(534_120.0), "exp_avg": torch.zeros_like(first),
                                            "exp_avg_sq": torch.zeros_like(first)}},
                              "param_groups": [{"lr": 2e-4, "betas": (0.9, 0.999), "weight_decay": 0.01,
                                                "params": [0]}]}],
        "lr_schedulers": [{"warmup_epochs": 15, "max_epochs": 150, "base_lrs": [2e-4], "last_epoch": 119}],
    }
