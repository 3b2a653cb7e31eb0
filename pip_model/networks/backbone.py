"""The forward contract shared by every restoration backbone.

A backbone is an encoder that returns a bottleneck and one skip feature per level, and a
decoder that consumes them. :class:`SkipBackbone` owns the rest: padding to the size the
network needs, PIP on the skips (when the backbone has it), and cropping back. A new
backbone gets PIP by implementing ``encode``/``decode`` and listing its skip widths.
"""

from __future__ import annotations

import torch
from torch import nn

from pip_model.networks.layers import pad_to_multiple
from pip_model.networks.pip import PIPConfig, PIPSkips, degradation_weights


class SkipBackbone(nn.Module):
    """Base class of the restorers: ``model(images, degradation=None)``.

    Args:
        size_multiple: H and W are padded to a multiple of this inside the network.
        skip_channels: channels of the skip feature at each level (index 0 is level 1).
        pip: where PIP plugs in, or None for the plain backbone.
    """

    def __init__(self, *, size_multiple: int, skip_channels: tuple[int, ...], pip: PIPConfig | None) -> None:
        super().__init__()
        self.size_multiple = size_multiple
        self.pip = PIPSkips(config=pip, feature_channels=skip_channels) if pip is not None else None

    @property
    def uses_prompts(self) -> bool:
        """Whether the model needs a ``degradation`` input."""
        return self.pip is not None

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Returns the bottleneck and the skip features, level 1 first."""
        raise NotImplementedError

    def decode(self, bottleneck: torch.Tensor, skips: list[torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        """Returns the restored images from the bottleneck and (possibly prompted) skips."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor, degradation: torch.Tensor | None = None) -> torch.Tensor:
        """Restores a batch.

        Args:
            images: degraded images, any H and W.
            degradation: for PIP models, a LongTensor (B,) of class ids or a FloatTensor
                (B, num_classes) of prompt weights; ignored by plain models.

        Returns:
            The restored images.

        Shape:
            (B, 3, H, W) -> (B, 3, H, W)
        """
        height, width = images.shape[-2:]
        padded = pad_to_multiple(images, self.size_multiple)
        bottleneck, skips = self.encode(padded)
        if self.pip is not None:
            weights = degradation_weights(
                degradation,
                batch_size=images.shape[0],
                num_classes=self.pip.num_classes,
                device=images.device,
            )
            skips = self.pip(skips, weights)
        return self.decode(bottleneck, skips, padded)[..., :height, :width]
