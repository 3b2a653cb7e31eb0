"""Low light: a gamma and an exposure that darken the scene, then signal-dependent shot noise and read noise;
restored classically by a gamma that brings the mean level up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from pip_model.data.degradations.base import Family, Params, Ranges, normal_field, on, per_image, uniform


@dataclass(frozen=True)
class LowlightRanges(Ranges):
    """Attributes:
        gamma: exponent that darkens mid-tones.
        exposure: scale applied after the gamma.
        shot: shot-noise variance per unit of signal.
        read: read-noise standard deviation.
    """

    family: ClassVar[str] = "lowlight"
    gamma: tuple[float, float] = (1.5, 3.0)
    exposure: tuple[float, float] = (0.2, 0.6)
    shot: tuple[float, float] = (0.001, 0.01)
    read: tuple[float, float] = (0.002, 0.01)


def sample(generator: torch.Generator, ranges: LowlightRanges, fixed: Mapping[str, float]) -> Params:
    return {"gamma": uniform(generator, ranges.gamma), "exposure": uniform(generator, ranges.exposure),
            "shot": uniform(generator, ranges.shot), "read": uniform(generator, ranges.read)}


def darken(images: torch.Tensor, params: Mapping[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
    """Low light: gamma and exposure, then signal-dependent shot noise plus read noise (``noise`` standard normal).

    Shape:
        (B, 3, H, W) -> (B, 3, H, W)
    """
    dark = per_image(params["exposure"], images) * images.clamp(0, 1) ** per_image(params["gamma"], images)
    variance = per_image(params["shot"], images) * dark + per_image(params["read"], images) ** 2
    return (dark + on(noise, images) * variance.sqrt()).clamp(0, 1)


def brighten(image: np.ndarray, target_mean: float = 0.45) -> np.ndarray:
    """Gamma correction whose exponent brings the mean level to ``target_mean``."""
    mean = float(np.clip(image.mean(), 1e-4, 0.99))
    gamma = float(np.clip(np.log(target_mean) / np.log(mean), 0.2, 1.0))
    return np.clip(image, 0, 1) ** gamma


FAMILY = Family(name="lowlight", tasks={"lowlight": {}}, ranges=LowlightRanges, sample=sample, field=normal_field,
                apply=darken, restore=brighten, summary="gamma and exposure darkening, shot and read noise")
