"""The forward contract shared by every restoration backbone, ours and a user's.

A backbone is an encoder that returns a bottleneck and one skip feature per level, and a decoder that consumes them
(:class:`EncoderDecoder`). :func:`restore_through_skips` owns the rest: padding to the size the network needs, PIP
on the skips (when there is PIP), and cropping back. Our backbones subclass :class:`SkipBackbone`; any other module
that keeps the protocol gets PIP through :class:`PIPOn`, without being edited.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from pip_model.networks.layers import pad_to_multiple
from pip_model.networks.pip import PIPConfig, PIPSkips, degradation_weights


@runtime_checkable
class EncoderDecoder(Protocol):
    """What a backbone declares so that PIP can plug into its skip connections.

    Attributes:
        skip_channels: channels of the skip feature at each level, level 1 (full resolution) first.
        size_multiple: H and W must be multiples of this (the input is padded to it, the output cropped back).
    """

    skip_channels: tuple[int, ...]
    size_multiple: int

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The bottleneck and the skip features, level 1 first (one per entry of ``skip_channels``)."""
        ...

    def decode(self, bottleneck: torch.Tensor, skips: list[torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        """The restored images from the bottleneck, the (possibly prompted) skips and the padded input."""
        ...


def restore_through_skips(backbone: EncoderDecoder, pip: PIPSkips | None, images: torch.Tensor,
                          degradation: torch.Tensor | None) -> torch.Tensor:
    """Pads, encodes, prompts the skips (with ``pip``), decodes and crops back.

    Shape:
        (B, 3, H, W) -> (B, 3, H, W)
    """
    height, width = images.shape[-2:]
    padded = pad_to_multiple(images, backbone.size_multiple)
    bottleneck, skips = backbone.encode(padded)
    if pip is not None:
        weights = degradation_weights(degradation, batch_size=images.shape[0], num_classes=pip.num_classes,
                                      device=images.device)
        skips = pip(skips, weights)
    return backbone.decode(bottleneck, skips, padded)[..., :height, :width]


class SkipBackbone(nn.Module):
    """Base class of our restorers: ``model(images, degradation=None)``.

    Args:
        size_multiple: H and W are padded to a multiple of this inside the network.
        skip_channels: channels of the skip feature at each level (index 0 is level 1).
        pip: where PIP plugs in, or None for the plain backbone.
    """

    def __init__(self, *, size_multiple: int, skip_channels: tuple[int, ...], pip: PIPConfig | None) -> None:
        super().__init__()
        self.size_multiple = size_multiple
        self.skip_channels = tuple(skip_channels)
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
        return restore_through_skips(self, self.pip, images, degradation)


def protocol_problems(backbone: object) -> list[str]:
    """What ``backbone`` lacks of :class:`EncoderDecoder` (empty when it keeps the protocol)."""
    problems = [f"no {name}()" for name in ("encode", "decode") if not callable(getattr(backbone, name, None))]
    channels, multiple = getattr(backbone, "skip_channels", None), getattr(backbone, "size_multiple", None)
    if not (isinstance(channels, tuple | list) and channels and all(isinstance(c, int) and c > 0 for c in channels)):
        problems.append(f"skip_channels must be a tuple of positive ints, one per level (got {channels!r})")
    if not (isinstance(multiple, int) and multiple >= 1):
        problems.append(f"size_multiple must be an int >= 1 (got {multiple!r})")
    return problems


class PIPOn(nn.Module):
    """Any encoder-decoder (:class:`EncoderDecoder`) with PIP on its skips, or plain (``pip=None``): the two models
    a plugged-in backbone is compared as, called as ours (``model(images, degradation=None)``).

    Args:
        backbone: the user's network, keeping the :class:`EncoderDecoder` protocol.
        pip: where PIP plugs in and how large its prompts are, or None for the plain backbone.

    Raises:
        TypeError: the backbone does not keep the protocol (the message says what it lacks).

    Shape:
        (B, 3, H, W) -> (B, 3, H, W)
    """

    def __init__(self, *, backbone: nn.Module, pip: PIPConfig | None) -> None:
        problems = protocol_problems(backbone)
        if problems:
            raise TypeError(f"{type(backbone).__name__} is not an encoder-decoder PIP can plug into: "
                            f"{'; '.join(problems)} (see pip_model.networks.backbone.EncoderDecoder)")
        super().__init__()
        self.backbone = backbone
        self.pip = PIPSkips(config=pip, feature_channels=tuple(backbone.skip_channels)) if pip is not None else None

    @property
    def uses_prompts(self) -> bool:
        return self.pip is not None

    def forward(self, images: torch.Tensor, degradation: torch.Tensor | None = None) -> torch.Tensor:
        return restore_through_skips(self.backbone, self.pip, images, degradation)
