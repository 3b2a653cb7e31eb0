"""Haze: the atmospheric scattering model ``I = J t + A (1 - t)``, ``t = exp(-beta d)``, over a random smooth
depth map (or a given one); restored classically by the dark channel prior."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import kornia
import numpy as np
import torch
from scipy import ndimage

from pip_model.data.degradations.base import Family, Params, Ranges, on, per_image, uniform


@dataclass(frozen=True)
class HazeRanges(Ranges):
    """Attributes:
        beta: scattering coefficient; transmission is ``exp(-beta * depth)``.
        airlight: atmospheric light A.
    """

    family: ClassVar[str] = "haze"
    beta: tuple[float, float] = (0.5, 2.5)
    airlight: tuple[float, float] = (0.8, 1.0)


def sample(generator: torch.Generator, ranges: HazeRanges, fixed: Mapping[str, float]) -> Params:
    return {"beta": uniform(generator, ranges.beta), "airlight": uniform(generator, ranges.airlight)}


def plasma_depth(batch: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """A smooth random depth field in [0, 1], on the CPU: a top-to-bottom ramp (far sky) plus fractal plasma.

    Shape:
        -> (B, 1, H, W)
    """

    def draw(shape: Sequence[int], device: torch.device | None = None,
             dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.rand(tuple(shape), generator=generator, device=device, dtype=dtype)

    plasma = kornia.contrib.diamond_square(
        (batch, 1, height, width), roughness=0.6, random_fn=draw, normalize_range=(0.0, 1.0)
    )
    ramp = torch.linspace(1.0, 0.0, height)[None, None, :, None]
    return 0.5 * ramp + 0.5 * plasma


def field(generator: torch.Generator, height: int, width: int) -> torch.Tensor:
    """One image's depth map (:func:`plasma_depth`).

    Shape:
        -> (1, 1, H, W)
    """
    return plasma_depth(1, height, width, generator)


def add_haze(images: torch.Tensor, params: Mapping[str, torch.Tensor], depth: torch.Tensor) -> torch.Tensor:
    """Atmospheric scattering ``I = J t + A (1 - t)`` with ``t = exp(-beta d)``.

    Shape:
        (B, 3, H, W), depth (B, 1, H, W) -> (B, 3, H, W)
    """
    transmission = torch.exp(-per_image(params["beta"], images) * on(depth, images))
    airlight = per_image(params["airlight"], images)
    return (images * transmission + airlight * (1 - transmission)).clamp(0, 1)


def _box(image: np.ndarray, radius: int) -> np.ndarray:
    return ndimage.uniform_filter(image, size=2 * radius + 1, mode="reflect")


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int = 8, eps: float = 1e-3) -> np.ndarray:
    """Edge-preserving smoothing of ``source`` following a grey ``guide`` (He et al.)."""
    mean_guide, mean_source = _box(guide, radius), _box(source, radius)
    covariance = _box(guide * source, radius) - mean_guide * mean_source
    variance = _box(guide * guide, radius) - mean_guide**2
    a = covariance / (variance + eps)
    b = mean_source - a * mean_guide
    return _box(a, radius) * guide + _box(b, radius)


def dehaze(image: np.ndarray, patch: int = 7, omega: float = 0.95, floor: float = 0.1) -> np.ndarray:
    """Dark channel prior: estimate airlight and transmission, refine it, invert the haze model."""
    dark = ndimage.minimum_filter(image.min(axis=-1), size=patch, mode="nearest")
    brightest = dark.ravel().argsort()[-max(1, dark.size // 1000) :]
    airlight = image.reshape(-1, 3)[brightest].mean(axis=0).clip(0.05, 1.0)
    normalised_dark = ndimage.minimum_filter((image / airlight).min(axis=-1), size=patch, mode="nearest")
    transmission = guided_filter(image.mean(axis=-1), 1 - omega * normalised_dark)
    transmission = np.maximum(transmission, floor)[..., None]
    return np.clip((image - airlight) / transmission + airlight, 0, 1)


FAMILY = Family(name="haze", tasks={"dehaze": {}}, ranges=HazeRanges, sample=sample, field=field, apply=add_haze,
                restore=dehaze, depth_field=True, summary="atmospheric scattering over a random depth map")
