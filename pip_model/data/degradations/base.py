"""What a degradation family is, and the pieces families share.

A family is one module that defines its parameter ranges (a frozen dataclass of ``(low, high)`` pairs that
``params.yaml: degrade.ranges.<family>`` fills), how one image's parameters and random field are drawn on a CPU
generator, how a batch is degraded from them (Kornia ops, on any device, replayable bit for bit), and the classical
restorer that undoes it. :mod:`pip_model.data.degradations.registry` lists the families; the tasks, the prompt
classes, the collation of recorded parameters and the classical map all come from that list.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import kornia
import numpy as np
import torch
import torch.nn.functional as F

# One image's sampled parameters: name -> (1,) CPU tensor.
Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Ranges:
    """Base of a family's sampling ranges: every field is ``(low, high)`` with ``low <= high``; ``family`` names the
    section of ``params.yaml`` they come from, for errors."""

    family: ClassVar[str] = ""

    def __post_init__(self) -> None:
        section = f"degrade.ranges.{self.family}"
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if len(value) != 2 or not value[0] <= value[1]:
                raise ValueError(f"{section}.{item.name} must be [low, high] with low <= high, got {list(value)}")

    def require_start(self, name: str, minimum: float, what: str) -> None:
        """Refuses a range of ``name`` that starts under ``minimum`` (``what`` says so in the error)."""
        if getattr(self, name)[0] < minimum:
            raise ValueError(f"degrade.ranges.{self.family}.{name} must {what}, got {list(getattr(self, name))}")


@dataclass(frozen=True)
class Family:
    """One kind of degradation, as its module defines it.

    Attributes:
        name: its prompt class (``rain``); the order of the registry gives each class its manifest id.
        tasks: its single tasks -> their fixed parameters (``{"denoise_15": {"sigma": 15.0}, ...}``,
            ``{"derain": {}}``).
        ranges: the dataclass of its sampling ranges (``params.yaml: degrade.ranges.<name>``).
        sample: ``(generator, ranges, fixed) -> params`` for one image, each a (1,) CPU tensor, drawn in a fixed
            order (the order is part of the benchmark's bits).
        field: ``(generator, height, width) -> (1, C, H, W)`` random field of one image, drawn after its
            parameters, or None.
        apply: ``(images, params, field) -> degraded``, batched on the images' device, without host syncs.
        restore: the classical restorer, (H, W, 3) float array in [0, 1] -> the same.
        integers: parameters that are integers (kernel sizes): a replayed record keeps them integer.
        depth_field: its field is a depth map, which a depth given to :func:`degrade` replaces.
        expert_parameters: what a non-blind expert of this family is given besides the image, from the task's fixed
            parameters (the noise sigma on the [0, 1] scale), or None.
        summary: one line for listings and docs.
    """

    name: str
    tasks: Mapping[str, Mapping[str, float]]
    ranges: type[Ranges]
    sample: Callable[[torch.Generator, Any, Mapping[str, float]], Params]
    field: Callable[[torch.Generator, int, int], torch.Tensor | None]
    apply: Callable[[torch.Tensor, Mapping[str, torch.Tensor], torch.Tensor | None], torch.Tensor]
    restore: Callable[[np.ndarray], np.ndarray]
    integers: tuple[str, ...] = ()
    depth_field: bool = False
    expert_parameters: Callable[[Mapping[str, float]], dict[str, float]] | None = None
    summary: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or "_" in self.name:
            raise ValueError(f"a family's name is one word (it names a prompt class), got {self.name!r}")
        if not self.tasks:
            raise ValueError(f"family {self.name} has no task")
        for task in self.tasks:
            if not task.replace("_", "").isalnum():
                raise ValueError(f"family {self.name}: task name {task!r} must be letters, digits and _")
        if self.ranges.family != self.name:
            raise ValueError(f"family {self.name}: its ranges say they are {self.ranges.family!r}'s")


def no_field(generator: torch.Generator, height: int, width: int) -> None:
    """A family whose degradation has no random field (a motion blur, a JPEG codec)."""
    return


def normal_field(generator: torch.Generator, height: int, width: int) -> torch.Tensor:
    """Standard normal values, one per pixel and channel: the field of a noise.

    Shape:
        -> (1, 3, H, W)
    """
    return torch.randn(1, 3, height, width, generator=generator)


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any printable parts (e.g. base seed, image id, task)."""
    return zlib.crc32("/".join(str(part) for part in parts).encode())


def uniform(generator: torch.Generator, bounds: tuple[float, float]) -> torch.Tensor:
    """One value drawn uniformly in ``[low, high)``, as a (1,) float tensor."""
    low, high = bounds
    return low + (high - low) * torch.rand(1, generator=generator)


def odd_integer(generator: torch.Generator, bounds: tuple[int, int]) -> torch.Tensor:
    """One odd integer in ``[low, high]``, as a (1,) long tensor (kernel lengths: odd, so they have a centre)."""
    low = bounds[0] + (bounds[0] + 1) % 2  # first odd value in range
    choices = (bounds[1] - low) // 2 + 1
    return low + 2 * torch.randint(0, max(choices, 1), (1,), generator=generator)


def per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) values as (B, 1, 1, 1) on ``like``'s device and dtype (an asynchronous copy from the CPU)."""
    return values.to(like.device, like.dtype, non_blocking=True)[:, None, None, None]


def on(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``tensor`` on ``like``'s device and dtype, copied asynchronously."""
    return tensor.to(like.device, like.dtype, non_blocking=True)


def equal_runs(values: Sequence[Any]) -> list[tuple[int, int, Any]]:
    """(start, stop, value) of each run of equal neighbours."""
    runs: list[tuple[int, int, Any]] = []
    for index, value in enumerate(values):
        if runs and runs[-1][2] == value:
            runs[-1] = (runs[-1][0], index + 1, value)
        else:
            runs.append((index, index + 1, value))
    return runs


def motion_kernels(sizes: torch.Tensor, angles: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Kornia motion-blur kernels of per-image size, zero-padded to the largest size.

    Args:
        sizes: odd kernel sizes (read on the host: keep them on the CPU to spare a device sync).
        angles: line angles in degrees, counter-clockwise from horizontal.
        directions: Kornia's asymmetry in [-1, 1]; 0 is a uniform line.

    Returns:
        One kernel per image, each summing to 1.

    Shape:
        (B,), (B,), (B,) -> (B, K, K) with K = max(sizes)
    """
    sizes = sizes.tolist()
    largest = max(sizes)
    kernels = []
    for start, stop, size in equal_runs(sizes):  # a few distinct sizes per batch; slices, never a device mask
        kernel = kornia.filters.get_motion_kernel2d(size, angles[start:stop], directions[start:stop], mode="bilinear")
        margin = (largest - size) // 2
        kernels.append(F.pad(kernel, (margin, margin, margin, margin)))
    return torch.cat(kernels)
