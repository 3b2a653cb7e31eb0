"""Noise: additive white Gaussian noise of a fixed level per task (the paper's sigma 15, 25 and 50 on the 0-255
scale), clipped to [0, 1]; restored classically by non-local means with an estimated sigma."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from skimage import restoration

from pip_model.data.degradations.base import Family, Params, Ranges, normal_field, on, per_image


@dataclass(frozen=True)
class NoiseRanges(Ranges):
    """None: each task fixes its sigma."""

    family: ClassVar[str] = "noise"


def sample(generator: torch.Generator, ranges: NoiseRanges, fixed: Mapping[str, float]) -> Params:
    return {"sigma": torch.full((1,), fixed["sigma"])}


def add_gaussian_noise(images: torch.Tensor, params: Mapping[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
    """Additive white Gaussian noise of standard deviation ``sigma``/255 (``noise`` is standard normal), clipped.

    Shape:
        (B, 3, H, W) -> (B, 3, H, W)
    """
    return (images + on(noise, images) * per_image(params["sigma"], images) / 255.0).clamp(0, 1)


def denoise(image: np.ndarray) -> np.ndarray:
    """Non-local means, its strength set from a wavelet estimate of the noise sigma."""
    sigma = float(restoration.estimate_sigma(image, channel_axis=-1, average_sigmas=True))
    return restoration.denoise_nl_means(image, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5,
                                        patch_distance=6, channel_axis=-1)


FAMILY = Family(
    name="noise", tasks={"denoise_15": {"sigma": 15.0}, "denoise_25": {"sigma": 25.0}, "denoise_50": {"sigma": 50.0}},
    ranges=NoiseRanges, sample=sample, field=normal_field, apply=add_gaussian_noise, restore=denoise,
    expert_parameters=lambda fixed: {"sigma": fixed["sigma"] / 255},
    summary="additive white Gaussian noise, sigma 15/25/50 of 255")
