"""A one-tensor interface for model servers (MLflow's pyfunc passes a single tensor).

The packed input stacks the image with one constant plane per degradation class holding
its prompt weight: channels 0-2 are RGB, channels 3.. the weights. Plain models ignore the
weight planes.
"""

from __future__ import annotations

import torch
from torch import nn

from pip_model.tasks import NUM_CLASSES


class PackedInputModel(nn.Module):
    """Wraps a restorer so that ``forward`` takes one packed tensor.

    Shape:
        (B, 3 + num_classes, H, W) -> (B, 3, H, W)
    """

    def __init__(self, model: nn.Module, *, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.model = model
        self.num_classes = num_classes

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        images, planes = packed[:, :3], packed[:, 3 : 3 + self.num_classes]
        if not getattr(self.model, "uses_prompts", False):
            return self.model(images)
        return self.model(images, planes.mean(dim=(2, 3)))


def pack(images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Builds the packed input from images (B, 3, H, W) and prompt weights (B, num_classes)."""
    planes = weights[:, :, None, None].expand(-1, -1, *images.shape[-2:]).to(images.dtype)
    return torch.cat([images, planes], dim=1)
