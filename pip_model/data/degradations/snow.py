"""Snow: flakes falling at three depths, composited white over the image (``I = J (1 - S) + S``, the form of the
CDD-11 synthesis); restored classically by a morphological opening where the image stands out, white, above it.

Each depth layer draws its own flakes from one uniform field: farther layers hold more flakes (twice the density per
layer), smaller ones (0.6 of the size per layer) and fainter ones (``attenuation`` per layer), so the near layer
shows a few large flakes and the far ones a fine speckle. Every flake is a Gaussian spot drawn out into a streak by
its fall during the exposure (a motion kernel along one angle).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import kornia
import numpy as np
import torch
from scipy import ndimage

from pip_model.data.degradations.base import (
    Family,
    Params,
    Ranges,
    equal_runs,
    motion_kernels,
    odd_integer,
    on,
    per_image,
    uniform,
)

LAYERS = 3  # depths, near to far
_FARTHER_DENSITY, _FARTHER_SIZE = 2.0, 0.6  # per layer of depth


@dataclass(frozen=True)
class SnowRanges(Ranges):
    """Attributes:
        density: fraction of pixels that seed a flake in the nearest layer.
        size: Gaussian sigma of a near flake, in pixels.
        streak: length of a flake's fall during the exposure, in pixels (odd lengths are drawn).
        angle: the fall's angle in degrees from vertical (wind).
        attenuation: opacity kept per layer of depth (far flakes are fainter).
        opacity: opacity of the near flakes.
    """

    family: ClassVar[str] = "snow"
    density: tuple[float, float] = (0.0008, 0.002)
    size: tuple[float, float] = (0.8, 1.6)
    streak: tuple[int, int] = (3, 9)
    angle: tuple[float, float] = (-30.0, 30.0)
    attenuation: tuple[float, float] = (0.5, 0.8)
    opacity: tuple[float, float] = (0.8, 1.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require_start("streak", 3, "start at 3 or more")
        if self.size[0] <= 0:
            raise ValueError(f"degrade.ranges.snow.size must be positive, got {list(self.size)}")


def sample(generator: torch.Generator, ranges: SnowRanges, fixed: Mapping[str, float]) -> Params:
    return {"density": uniform(generator, ranges.density), "size": uniform(generator, ranges.size),
            "streak": odd_integer(generator, ranges.streak), "angle": uniform(generator, ranges.angle),
            "attenuation": uniform(generator, ranges.attenuation), "opacity": uniform(generator, ranges.opacity)}


def field(generator: torch.Generator, height: int, width: int) -> torch.Tensor:
    """Uniform values, one plane per depth layer: a flake sits where a value is below the layer's density.

    Shape:
        -> (1, LAYERS, H, W)
    """
    return torch.rand(1, LAYERS, height, width, generator=generator)


def snow_mask(params: Mapping[str, torch.Tensor], field: torch.Tensor) -> torch.Tensor:
    """The opacity of the snow over each pixel, all layers together.

    Shape:
        field (B, LAYERS, H, W) -> (B, 1, H, W), values in [0, 1]
    """
    batch, layers, height, width = field.shape
    depth = torch.arange(layers, device=field.device, dtype=field.dtype)
    density = per_image(params["density"], field) * _FARTHER_DENSITY ** depth[None, :, None, None]
    seeds = (field < density).to(field.dtype)
    # A flake: a Gaussian spot of the layer's size, scaled to peak at 1 (a blurred single seed peaks at 1/(2 pi s^2)).
    # Each image's kernel is cut at 3 of its own near sigma, whatever its batch holds.
    sizes = params["size"].cpu()[:, None] * _FARTHER_SIZE ** torch.arange(layers, dtype=torch.float32)  # (B, LAYERS)
    radii = [math.ceil(3 * float(size)) for size in sizes[:, 0]]
    spots = torch.cat([
        kornia.filters.gaussian_blur2d(seeds[start:stop].reshape(-1, 1, height, width), (2 * radius + 1,) * 2,
                                       sizes[start:stop].reshape(-1, 1).expand(-1, 2), border_type="constant")
        for start, stop, radius in equal_runs(radii)]).reshape(batch, layers, height, width)
    spots = spots * on(2 * math.pi * sizes**2, field)[:, :, None, None]
    angles = on(params["angle"], field)
    kernels = motion_kernels(params["streak"], 90.0 - angles, torch.zeros_like(angles))
    kernels = kernels / kernels.amax(dim=(-2, -1), keepdim=True)  # a streak as bright as its flake
    flakes = kornia.filters.filter2d(spots, kernels, border_type="constant").clamp(0, 1)
    fading = per_image(params["attenuation"], field) ** depth[None, :, None, None]
    opacity = per_image(params["opacity"], field) * fading
    clear = (1 - opacity * flakes).prod(dim=1, keepdim=True)
    return 1 - clear


def add_snow(images: torch.Tensor, params: Mapping[str, torch.Tensor], field: torch.Tensor) -> torch.Tensor:
    """White flakes over the image: ``I = J (1 - S) + S`` with ``S`` the snow's opacity (:func:`snow_mask`).

    Shape:
        (B, 3, H, W), field (B, LAYERS, H, W) -> (B, 3, H, W)
    """
    mask = snow_mask(params, on(field, images))
    return (images * (1 - mask) + mask).clamp(0, 1)


def desnow(image: np.ndarray, size: int = 5, threshold: float = 0.1) -> np.ndarray:
    """A grey opening (erosion, then dilation) removes bright specks smaller than ``size``; it replaces the image
    where every channel stands above it by more than ``threshold`` (white flakes raise all three; a bright coloured
    detail does not), and one pixel around, so edges and texture elsewhere stay."""
    opened = ndimage.grey_opening(image, size=(size, size, 1), mode="reflect")
    flakes = ndimage.binary_dilation((image - opened).min(axis=-1) > threshold)
    return np.where(flakes[..., None], opened, image)


FAMILY = Family(name="snow", tasks={"desnow": {}}, ranges=SnowRanges, sample=sample, field=field, apply=add_snow,
                restore=desnow, integers=("streak",),
                summary="white flakes at three depths, drawn out along their fall")
