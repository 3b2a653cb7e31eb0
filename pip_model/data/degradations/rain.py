"""Rain: sparse seeds smeared into bright streaks along one angle, widened, screen-blended over the image;
restored classically by a median filter."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import kornia
import numpy as np
import torch
from scipy import ndimage

from pip_model.data.degradations.base import Family, Params, Ranges, motion_kernels, odd_integer, on, per_image, uniform


@dataclass(frozen=True)
class RainRanges(Ranges):
    """Attributes:
        density: fraction of pixels that seed a streak.
        length: streak length in pixels (odd lengths are drawn).
        angle: streak angle in degrees from vertical; positive leans like ``/``.
        width: Gaussian sigma that widens the streaks, in pixels.
        intensity: opacity of the streak layer (screen blend).
    """

    family: ClassVar[str] = "rain"
    density: tuple[float, float] = (0.005, 0.01)
    length: tuple[int, int] = (20, 40)
    angle: tuple[float, float] = (-45.0, 45.0)
    width: tuple[float, float] = (0.5, 1.0)
    intensity: tuple[float, float] = (0.7, 1.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require_start("length", 3, "start at 3 or more")


def sample(generator: torch.Generator, ranges: RainRanges, fixed: Mapping[str, float]) -> Params:
    return {"density": uniform(generator, ranges.density), "length": odd_integer(generator, ranges.length),
            "angle": uniform(generator, ranges.angle), "width": uniform(generator, ranges.width),
            "intensity": uniform(generator, ranges.intensity)}


def field(generator: torch.Generator, height: int, width: int) -> torch.Tensor:
    """Uniform values: where one is below the density a streak starts, as bright as the value says.

    Shape:
        -> (1, 1, H, W)
    """
    return torch.rand(1, 1, height, width, generator=generator)


def add_rain(images: torch.Tensor, params: Mapping[str, torch.Tensor], field: torch.Tensor) -> torch.Tensor:
    """Bright rain streaks: sparse seeds (where the uniform ``field`` is below the density) smeared along one
    angle, widened, screen-blended.

    Shape:
        (B, 3, H, W) -> (B, 3, H, W)
    """
    batch = images.shape[0]
    field = on(field, images)
    density = per_image(params["density"], images)
    # Below the density threshold, field/density is uniform in [0, 1): it doubles as brightness.
    seeds = torch.where(field < density, 0.6 + 0.4 * field / density, torch.zeros_like(field))
    angles = on(params["angle"], images)
    kernels = motion_kernels(params["length"], 90.0 - angles, torch.zeros_like(angles))
    kernels = kernels / kernels.amax(dim=(-2, -1), keepdim=True)  # a streak as bright as its seed
    streaks = kornia.filters.filter2d(seeds, kernels, border_type="constant")
    # Kornia checks a CPU sigma on the host and copies it over asynchronously.
    sigma = params["width"].cpu()[:, None].expand(batch, 2)
    widened = kornia.filters.gaussian_blur2d(streaks, (5, 5), sigma, border_type="constant")
    # Restore the centre-line brightness that the 1-D spread of the blur takes away.
    rain = (widened * math.sqrt(2 * math.pi) * per_image(params["width"], images)).clamp(0, 1)
    return 1 - (1 - images) * (1 - per_image(params["intensity"], images) * rain)


def derain(image: np.ndarray, size: int = 5) -> np.ndarray:
    """A per-channel median filter, which removes thin bright streaks."""
    return ndimage.median_filter(image, size=(size, size, 1), mode="reflect")


FAMILY = Family(name="rain", tasks={"derain": {}}, ranges=RainRanges, sample=sample, field=field, apply=add_rain,
                restore=derain, integers=("length",), summary="bright streaks along one angle, screen-blended")
