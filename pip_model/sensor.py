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

from pip_model.tasks import NUM_CLASSES

# Scores are raised to this power before they are normalised into prompt weights (see DegradationSensor.prompt).
PROMPT_SHARPNESS = 4.0


class DegradationSensor(nn.Module):
    """Strided conv stages, then mean- and std-pooling, then a linear classifier.

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
        self, *, in_channels: int = 3, widths: tuple[int, ...] = (32, 64, 128, 256), num_classes: int = NUM_CLASSES
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
        self.classifier = nn.Linear(2 * channels, num_classes)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Unnormalised class scores, for training with one binary cross-entropy per class.

        Shape:
            (B, in_channels, H, W) -> (B, num_classes)
        """
        features = self.features(images).flatten(2)
        pooled = torch.cat([features.mean(dim=-1), features.std(dim=-1, correction=0)], dim=1)
        return self.classifier(pooled)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(images))

    def prompt(self, images: torch.Tensor, *, sharpness: float = PROMPT_SHARPNESS) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-class scores and the prompt weights they make: the scores raised to ``sharpness`` and normalised
        to sum to 1. At 4 a class scoring 0.99 outweighs one at 0.5 by 15 to 1 (a wrong prompt can cost 14 dB, so
        a faint score must weigh little), while classes with similar scores share the prompt.

        Shape:
            (B, in_channels, H, W) -> (B, num_classes), (B, num_classes)
        """
        scores = self(images)
        powered = scores**sharpness
        return scores, powered / powered.sum(dim=-1, keepdim=True).clamp_min(1e-12)
