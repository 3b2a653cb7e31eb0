"""The labelled sample grids logged while training: fixed degraded crops, the model's outputs, the clean ones."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pip_model.data.degradations import DegradationRanges, degrade, derive_seed
from pip_model.data.images import to_array
from pip_model.evaluation.inference import restore
from pip_model.image_files import labelled_grid
from pip_model.networks.registry import spec_of_model
from pip_model.tasks import task_classes

PREVIEW_SIDE, PREVIEW_ROWS = 96, 6


def preview_pairs(images: Sequence[torch.Tensor], tasks: Sequence[str], *, seed: int,
                  ranges: DegradationRanges | None) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """The fixed samples a training run shows: one task per degradation class (composites after, up to
    PREVIEW_ROWS), each a centre crop of a training photograph degraded with a seed of its own, without the
    colour shuffles and turns of training (nothing here draws from the training's random streams).

    Shape:
        -> (task, degraded (1, 3, S, S), clean (1, 3, S, S)) each, S at most PREVIEW_SIDE
    """
    chosen, seen = [], set()
    for task in tasks:  # denoise_15, _25 and _50 share a class: the first of them stands for it
        if task_classes(task) not in seen:
            seen.add(task_classes(task))
            chosen.append(task)
    rows = []
    for index, task in enumerate(chosen[:PREVIEW_ROWS]):
        image = images[index % len(images)]
        side = min(PREVIEW_SIDE, *image.shape[-2:])
        top, left = (image.shape[-2] - side) // 2, (image.shape[-1] - side) // 2
        clean = image[:, top : top + side, left : left + side][None]
        degraded, _ = degrade(clean, task, seed=derive_seed(seed, "preview", task), ranges=ranges)
        rows.append((task, degraded.clamp(0, 1), clean))
    return rows


@torch.no_grad()
def preview_grid(model: nn.Module, previews: Sequence[tuple[str, torch.Tensor, torch.Tensor]]) -> np.ndarray:
    """degraded | restored | clean, one labelled row per task (its PSNRs beside it), enlarged twice.

    Shape:
        -> (H, W, 3) in [0, 1]
    """
    was_training = model.training
    model.eval()
    spec = spec_of_model(model)
    rows = []
    for task, degraded, clean in previews:
        restored = restore(model, degraded, spec=spec, tasks=[task]).images.float().clamp(0, 1).cpu()
        before, after = (float(-10 * torch.log10(F.mse_loss(x, clean).clamp_min(1e-10))) for x in (degraded, restored))
        rows.append((f"{task} {before:.1f} -> {after:.1f} dB",
                     [to_array(x[0]) for x in (degraded, restored, clean)]))
    model.train(was_training)
    return labelled_grid(rows, ["degraded", "restored", "clean"], zoom=2)

