"""Restoring an image of any size in overlapping tiles blended with linear ramps, so seams do not show."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import torch
from torch import nn

from pip_model.networks.layers import ranks_scores
from pip_model.networks.registry import Steering, call_model, steering_for


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _blend_weights(length: int, overlap: int, fade_in: bool, fade_out: bool) -> torch.Tensor:
    """Ones, with linear ramps over the overlaps shared with a neighbouring tile."""
    weights = torch.ones(length)
    if overlap:
        ramp = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
        if fade_in:
            weights[:overlap] = ramp
        if fade_out:
            weights[-overlap:] = ramp.flip(0)
    return weights


def tile_windows(height: int, width: int, tile: int, overlap: int) -> Iterator[tuple[int, int]]:
    """Top-left corners of the tiles covering an image (the last ones flush with the edges)."""
    stride = tile - overlap
    for top in _starts(height, tile, stride):
        for left in _starts(width, tile, stride):
            yield top, left


def for_inference(model: nn.Module, *, channels_last: bool = True) -> nn.Module:
    """``model`` in eval mode, with its weights channels-last where that computes the same function (in place).

    :func:`restore_tiled` feeds a channels-last model channels-last tiles. On this project's 2-core CPU that made a
    256x256 inference of ``promptir`` 1.3x faster and the tiny models' 128x128 crops 3-7% faster; see
    ``bench/model_step.py --memory-format``. A model that ranks scores (PIP's top-m attention,
    :func:`~pip_model.networks.layers.ranks_scores`) stays in the default layout: channels-last convolutions round
    otherwise (7e-7 on the top-m scores), which sent a published near-tie (8e-8 apart) the other way and moved
    ``pip_restormer``'s output by 1.5e-2 at 2 threads; in the default layout its scores are the published code's,
    bit for bit.

    Args:
        model: a restorer.
        channels_last: False keeps every model in the default layout.
    """
    model.eval()
    return model.to(memory_format=torch.channels_last) if channels_last and not ranks_scores(model) else model


def layout_of(model: nn.Module) -> str:
    """The memory format a model restores in, for a log line: ``channels-last`` or ``default``."""
    return "channels-last" if memory_format_of(model) == torch.channels_last else "default"


def memory_format_of(model: nn.Module) -> torch.memory_format:
    """``torch.channels_last`` when the model's convolution weights are laid out so, else the default format."""
    for parameter in model.parameters():
        # A 1x1 kernel is contiguous in both formats and says nothing; the first larger one decides.
        if parameter.dim() == 4 and parameter.shape[-2:] != (1, 1):
            layout_is_last = parameter.is_contiguous(memory_format=torch.channels_last)
            return torch.channels_last if layout_is_last and not parameter.is_contiguous() else torch.contiguous_format
    return torch.contiguous_format


@torch.no_grad()
def restore_tiled(
    model: nn.Module, image: torch.Tensor, steering: Steering, *, tile: int, overlap: int,
    on_tile: Callable[[int, int], None] | None = None, tile_batch: int = 4, deadline: float | None = None,
) -> torch.Tensor:
    """Restores one image tile by tile on the model's device, blending overlaps with linear ramps.

    Peak memory grows with ``tile`` and ``tile_batch``, not with the image: only the output
    and weight sums are image-sized. Tiles run ``tile_batch`` at a time and are blended on the
    model's device; the result comes back to the image's device once. Tiles go in the memory format of the model's
    weights (see :func:`for_inference`); the result is in the default one.

    Args:
        model: a restorer.
        image: the degraded image, (1, 3, H, W), on any device.
        steering: what the model's call takes besides the image (:func:`~pip_model.networks.registry.call_model`):
            None, prompt weights (1, C) over the model's classes, or named task parameters, for one image.
        tile: tile side; images no larger are restored in one pass, and every image when it is 0.
        overlap: pixels shared by neighbouring tiles.
        on_tile: called with (done, total) after each batch of tiles, for progress.
        tile_batch: tiles restored in one forward pass.
        deadline: a ``time.monotonic()`` past which no further batch of tiles starts.

    Raises:
        TimeoutError: the deadline passed (the work stops there, within one batch of tiles).

    Shape:
        (1, 3, H, W) -> (1, 3, H, W)
    """
    height, width = image.shape[-2:]
    device = next(model.parameters()).device
    layout = memory_format_of(model)
    source = image.to(device).contiguous(memory_format=layout)
    if tile <= 0 or (height <= tile and width <= tile):
        return call_model(model, source, steering).to(image.device).contiguous()
    output = torch.zeros(1, 3, height, width, device=device)
    weights = torch.zeros(1, 1, height, width, device=device)
    windows = list(tile_windows(height, width, tile, overlap))
    for first in range(0, len(windows), tile_batch):
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"stopped after {first} of {len(windows)} tiles: past the deadline")
        group = windows[first : first + tile_batch]
        patches = torch.cat([source[..., top : top + tile, left : left + tile] for top, left in group]).contiguous(
            memory_format=layout)
        restored = call_model(model, patches, steering_for(steering, len(group)))
        ph, pw = patches.shape[-2:]  # every tile has the same size: the last ones sit flush with the edges
        for (top, left), patch in zip(group, restored):
            rows = _blend_weights(ph, overlap, fade_in=top > 0, fade_out=top + ph < height)
            columns = _blend_weights(pw, overlap, fade_in=left > 0, fade_out=left + pw < width)
            weight = (rows[:, None] * columns[None, :]).to(device)[None, None]
            output[..., top : top + ph, left : left + pw] += patch * weight
            weights[..., top : top + ph, left : left + pw] += weight
        if on_tile is not None:
            on_tile(first + len(group), len(windows))
    return (output / weights).to(image.device)

