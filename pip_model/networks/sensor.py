"""The degradation sensor: a small CNN that tells which degradations an image has.

It scores every class on its own (a sigmoid each, not a softmax over exclusive classes),
so an image that is both rainy and hazy scores high on both. :meth:`DegradationSensor.prompt`
turns the scores into prompt weights for a PIP model's ``degradation`` argument, which lets
PIP run blind: one sure class gives a near one-hot prompt, two sure classes their mixture, and
doubt between classes a blend rather than a wrong guess.
"""

from __future__ import annotations

import torch
from torch import nn

from pip_model.tasks import PAPER_CLASSES

# A class scoring at least this is present and weighs fully in the prompt; a fainter one weighs its score over
# this, to the power PROMPT_SHARPNESS (see DegradationSensor.prompt).
PRESENT_SCORE = 0.6
# With every class under this, nothing is found: the image has nothing to restore and is left as it is.
ABSENT_SCORE = 0.3
SENSED_SIDE = 512
PROMPT_SHARPNESS = 8.0
# Brightness quantiles the classifier sees, and the most pixels they are taken from (a strided subsample).
EXPOSURE_QUANTILES = (0.1, 0.5, 0.9, 0.99)
EXPOSURE_SAMPLES = 1 << 16


def exposure_statistics(images: torch.Tensor) -> torch.Tensor:
    """Each image's exposure: the mean and spread of every channel and quantiles of its brightness.

    The conv features are normalised per image, which keeps their patterns but loses how bright the image is,
    and that is what tells a dark photograph from a normally exposed one that is only noisy.

    Shape:
        (B, C, H, W) -> (B, 2 * C + len(EXPOSURE_QUANTILES))
    """
    brightness = images.mean(dim=1).flatten(1)
    stride = max(1, brightness.shape[1] // EXPOSURE_SAMPLES)  # quantile's cost grows with the pixels
    levels = torch.tensor(EXPOSURE_QUANTILES, dtype=images.dtype, device=images.device)
    quantiles = torch.quantile(brightness[:, ::stride], levels, dim=1).T
    return torch.cat([images.mean(dim=(2, 3)), images.std(dim=(2, 3), correction=0), quantiles], dim=1)


class DegradationSensor(nn.Module):
    """Strided conv stages, then mean- and std-pooling, then a linear classifier that also sees the image's
    exposure (:func:`exposure_statistics`).

    Std-pooling keeps the strength of high-frequency responses (noise, rain streaks),
    which plain mean-pooling averages away.

    Args:
        in_channels: channels of the input images.
        widths: channels of each stage; every stage halves the resolution.
        num_classes: number of degradation classes.

    Shape:
        (B, in_channels, H, W) -> (B, num_classes) scores in [0, 1], one per class
    """

    def __init__(
        self, *, in_channels: int = 3, widths: tuple[int, ...] = (32, 64, 128, 256), num_classes: int = len(PAPER_CLASSES)
    ) -> None:
        super().__init__()
        stages, channels = [], in_channels
        for width in widths:
            stages += [
                nn.Conv2d(channels, width, kernel_size=3, padding=1),
                nn.GELU(),
                nn.Conv2d(width, width, kernel_size=3, stride=2, padding=1),
                nn.GroupNorm(1, width),
                nn.GELU(),
            ]
            channels = width
        self.features = nn.Sequential(*stages)
        self.classifier = nn.Linear(2 * channels + 2 * in_channels + len(EXPOSURE_QUANTILES), num_classes)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Unnormalised class scores, for training with one binary cross-entropy per class.

        Shape:
            (B, in_channels, H, W) -> (B, num_classes)
        """
        features = self.features(images).flatten(2)
        pooled = [features.mean(dim=-1), features.std(dim=-1, correction=0), exposure_statistics(images)]
        return self.classifier(torch.cat(pooled, dim=1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(images))

    def prompt(self, images: torch.Tensor, *, present: float = PRESENT_SCORE, sharpness: float = PROMPT_SHARPNESS,
               absent: float = ABSENT_SCORE, max_side: int = SENSED_SIDE) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-class scores and the prompt weights they make: every class scoring at least ``present`` weighs
        1, a fainter one ``(score / present) ** sharpness``, and the weights are normalised to sum to 1. An image
        whose every score is under ``absent`` gets no weight at all (:func:`nothing_found`): it is left as it is.

        Images larger than ``max_side`` are scored at that size (area-downscaled): a degradation shows at that
        scale, and the cost stays bounded whatever the image's size.

        The classes found share the prompt equally, which is a composite's true mixture; a doubtful class gets a
        small share (at 0.3, 1/256 of a found one), since a wrong prompt can cost 20 dB.

        Shape:
            (B, in_channels, H, W) -> (B, num_classes), (B, num_classes)
        """
        if max(images.shape[-2:]) > max_side:
            images = nn.functional.interpolate(images, scale_factor=max_side / max(images.shape[-2:]), mode="area")
        scores = self(images)
        weights = (scores / present).clamp(max=1) ** sharpness
        weights = weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        return scores, torch.where((scores.amax(dim=-1) < absent)[:, None], torch.zeros_like(weights), weights)


def nothing_found(weights: torch.Tensor) -> torch.Tensor:
    """Which images the sensor found nothing to restore in (their prompt weights are all zero).

    Shape:
        (B, num_classes) -> (B,) bool
    """
    return weights.sum(dim=-1) == 0

