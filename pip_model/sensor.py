"""The degradation sensor: a small CNN that tells which degradation an image has.

Its probabilities can be passed straight into a PIP model's ``degradation`` argument,
which lets PIP run blind.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pip_model.tasks import NUM_CLASSES


class DegradationSensor(nn.Module):
    """Strided conv stages, then mean- and std-pooling, then a linear classifier.

    Std-pooling keeps the strength of high-frequency responses (noise, rain streaks),
    which plain mean-pooling averages away.

    Args:
        in_channels: channels of the input images.
        widths: channels of each stage; every stage halves the resolution.
        num_classes: number of degradation classes.

    Shape:
        (B, in_channels, H, W) -> (B, num_classes) probabilities
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
        """Unnormalised class scores, for training with cross-entropy.

        Shape:
            (B, in_channels, H, W) -> (B, num_classes)
        """
        features = self.features(images).flatten(2)
        pooled = torch.cat([features.mean(dim=-1), features.std(dim=-1, correction=0)], dim=1)
        return self.classifier(pooled)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.logits(images), dim=-1)
