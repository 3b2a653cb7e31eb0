"""Degrading a batch for one task: its families' draws on the CPU, then their Kornia ops on the images' device.

A composite task (``derain_dehaze``, ...) applies its single tasks one after the other; its records hold every
part's parameters under ``<part>.<name>``.

Like Kornia's augmentations, each degradation is split in two: drawing its parameters and random field
(:func:`draw_degradation`) and applying them (:func:`apply_degradation`). :func:`degrade` joins them and returns one
dict per image with every sampled value, so a degradation can be replayed bit for bit
(``degrade(images, task, params=recorded)``).

Everything random is drawn on the CPU, one generator per image seeded by that image's recorded ``image_seed``: the
same seed gives the same parameters and random fields on any device and in any batch, so a benchmark built on a GPU
equals the CPU-built one that ``dvc.lock`` records, and a DDP rank can degrade its own slice of a batch alone.
Applying them runs batched on the images' device, and never reads a device value back on the host; Python loops run
only over the handful of distinct kernel sizes in a batch, never over images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pip_model.data.degradations.base import derive_seed
from pip_model.data.degradations.registry import DegradationRanges, ranges_of
from pip_model.data.degradations.task import Task, parse_task

# Keys of a record that describe it rather than parameterise the degradation.
RECORD_CONTEXT = frozenset({"task", "class_id", "seed", "image_seed", "depth_source"})


@dataclass
class DegradationDraw:
    """Everything random about degrading a batch for one task, drawn on the CPU.

    Attributes:
        params: sampled parameters, (B,) CPU tensors; a composite's are its parts' under ``<part>.<name>``.
        field: the random fields of a single task's family, or None (a family without one, a depth map given
            instead, a composite).
        parts: a composite's draw of each part, in application order; empty for a single task.
    """

    params: dict[str, torch.Tensor]
    field: torch.Tensor | None
    parts: tuple[DegradationDraw, ...] = ()

    @classmethod
    def concat(cls, draws: Sequence[DegradationDraw]) -> DegradationDraw:
        fields = [draw.field for draw in draws]
        return cls({key: torch.cat([draw.params[key] for draw in draws]) for key in draws[0].params},
                   None if fields[0] is None else torch.cat(fields),  # type: ignore[arg-type]
                   tuple(cls.concat(parts) for parts in zip(*(draw.parts for draw in draws))))

    @classmethod
    def composite(cls, task: Task, parts: Sequence[DegradationDraw]) -> DegradationDraw:
        params = {f"{part}.{key}": value for part, draw in zip(task.parts, parts) for key, value in draw.params.items()}
        return cls(params, None, tuple(parts))

    def pin_memory(self) -> DegradationDraw:
        return DegradationDraw({key: value.pin_memory() for key, value in self.params.items()},
                               None if self.field is None else self.field.pin_memory(),
                               tuple(part.pin_memory() for part in self.parts))


def draw_degradation(task: str | Task, *, height: int, width: int, image_seeds: Sequence[int],
                     ranges: DegradationRanges | None = None, with_field: bool = True) -> DegradationDraw:
    """Draws the parameters and random field of each image from its own CPU generator.

    Image ``i`` depends only on ``image_seeds[i]``: not on the device, the batch or its neighbours. Each part of a
    composite task draws from its own seed, derived from the image's and the part's name. ``with_field=False``
    leaves out the field of a family whose field is a depth map (one is given instead).
    """
    task = parse_task(task)
    ranges = ranges or DegradationRanges()
    if task.is_composite:
        return DegradationDraw.composite(task, [
            draw_degradation(part, height=height, width=width, ranges=ranges,
                             image_seeds=[derive_seed(image_seed, part) for image_seed in image_seeds],
                             with_field=with_field)
            for part in task.parts])
    family, fixed = task.families[0], task.fixed[0]
    family_ranges = ranges_of(ranges, family)
    draws = []
    for image_seed in image_seeds:
        generator = torch.Generator().manual_seed(int(image_seed))
        params = family.sample(generator, family_ranges, fixed)
        keep_field = with_field or not family.depth_field
        draws.append(DegradationDraw(params, family.field(generator, height, width) if keep_field else None))
    return DegradationDraw.concat(draws)


def apply_degradation(
    images: torch.Tensor, task: str | Task, draw: DegradationDraw, *, depth: torch.Tensor | None = None
) -> torch.Tensor:
    """Applies a draw on the images' device; deterministic, and free of host-device synchronisation.

    Args:
        images: clean images in [0, 1].
        task: a task name of :data:`pip_model.tasks.ALL_TASKS` (or any composite of single tasks), or its
            :class:`~pip_model.tasks.Task`.
        draw: its parameters and random fields (CPU tensors, or already on the device; kernel sizes are best
            left on the CPU).
        depth: a depth map that replaces the drawn one of a family whose field is a depth map (haze).

    Shape:
        (B, 3, H, W) -> (B, 3, H, W), values in [0, 1]
    """
    task = parse_task(task)
    parts = draw.parts if task.is_composite else (draw,)
    for family, part in zip(task.families, parts, strict=True):
        field = depth if family.depth_field and depth is not None else part.field
        images = family.apply(images, part.params, field)
    return images


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (B, 3, H, W) tensor, got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [0, 1], got {images.dtype}")


def collate_records(records: Sequence[Mapping[str, Any]], task: Task) -> dict[str, torch.Tensor]:
    """Recorded parameters of a batch as (B,) tensors: the families' integer parameters as integers, the rest as
    float32, as they were drawn."""
    if any(record.get("task") != task.name for record in records):
        raise ValueError(f"recorded params belong to other tasks than {task.name!r}")
    integers = {key for key in task.integer_params}
    numeric = [
        key for key, value in records[0].items() if isinstance(value, (int, float)) and key not in RECORD_CONTEXT
    ]
    params = {key: torch.tensor([record[key] for record in records]) for key in numeric}
    for key, values in params.items():
        if key in integers:
            params[key] = values.long()
        elif values.is_floating_point():
            params[key] = values.float()
    return params


def _replace_params(draw: DegradationDraw, task: Task, params: dict[str, torch.Tensor]) -> DegradationDraw:
    """The draw with recorded parameters in place of the sampled ones (its random fields kept)."""
    if not task.is_composite:
        return DegradationDraw(params, draw.field)
    parts = [_replace_params(part_draw, parse_task(part), {key.split(".", 1)[1]: value for key, value in
                                                            params.items() if key.startswith(f"{part}.")})
             for part, part_draw in zip(task.parts, draw.parts)]
    return DegradationDraw.composite(task, parts)


def degrade(
    images: torch.Tensor,
    task: str | Task,
    *,
    seed: int | None = None,
    depth: torch.Tensor | None = None,
    ranges: DegradationRanges | None = None,
    params: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Degrades a batch of clean images for one task.

    Args:
        images: clean images in [0, 1], on any device.
        task: one of :data:`pip_model.tasks.ALL_TASKS`, or any composite of single tasks (``lowlight_desnow``).
        seed: the same seed gives the same draws on any device (image ``i`` draws from its own
            ``image_seed``, derived from ``seed`` and ``i``); None draws one (and records it).
        depth: for a task with haze, a depth map in [0, 1] (B, 1, H, W); otherwise a random smooth field is used.
        ranges: sampling ranges; the families' defaults if None.
        params: the records returned by an earlier call, to replay it exactly (one image alone, too).

    Returns:
        The degraded images and one dict per image with every sampled value, the task,
        its class id (``"1+2"`` for a composite), the seed and the image's own seed.

    Shape:
        (B, 3, H, W) -> (B, 3, H, W), values in [0, 1]

    Examples:
        >>> degraded, records = degrade(torch.full((1, 3, 8, 8), 0.5), "denoise_25", seed=0)
        >>> records[0]["sigma"], degraded.shape
        (25.0, torch.Size([1, 3, 8, 8]))
    """
    _check_images(images)
    task = parse_task(task)  # raises for an unknown name
    batch, _, height, width = images.shape
    if params is None:
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)))
        image_seeds = [derive_seed(seed, "image", index) for index in range(batch)]
    else:
        if len(params) != batch:
            raise ValueError(f"got {len(params)} recorded params for a batch of {batch}")
        seed, image_seeds = params[0].get("seed"), [record["image_seed"] for record in params]
    draw = draw_degradation(task, height=height, width=width, image_seeds=image_seeds, ranges=ranges,
                            with_field=depth is None)
    if params is not None:
        draw = _replace_params(draw, task, collate_records(params, task))
    degraded = apply_degradation(images, task, draw, depth=depth)
    values = {key: tensor.tolist() for key, tensor in draw.params.items()}  # CPU tensors: no device sync
    context: dict[str, Any] = {"task": task.name, "class_id": task.class_id, "seed": seed}
    if any(family.depth_field for family in task.families):
        context["depth_source"] = "given" if depth is not None else "plasma"
    return degraded, [context | {key: column[index] for key, column in values.items()}
                      | {"image_seed": image_seeds[index]} for index in range(batch)]
