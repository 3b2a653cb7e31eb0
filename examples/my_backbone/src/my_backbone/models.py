"""Two models of a user's own: an encoder-decoder PIP plugs into, and a non-blind denoiser that takes the noise level.

Nothing here is part of pip_model: the package declares its models in the entry-point group ``pip_model.models``,
and the harness trains, scores, reports and serves them like its own.
"""

from __future__ import annotations

import torch
from torch import nn

from pip_model.networks.registry import ModelSpec, backbone_models


def _block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, padding=1), nn.GELU(),
                         nn.Conv2d(channels_out, channels_out, 3, padding=1), nn.GELU())


class TinyUNet(nn.Module):
    """A small U-Net that keeps pip_model's encoder-decoder protocol: it lists its skip widths and the size its
    input must be a multiple of, and splits its forward pass into ``encode`` and ``decode``.

    Args:
        width: channels at full resolution; each level doubles them.
        levels: skip levels (each halves the resolution).

    Shape:
        encode: (B, 3, H, W) -> bottleneck (B, width * 2**levels, H / 2**levels, W / 2**levels), skips
    """

    def __init__(self, *, width: int = 8, levels: int = 3) -> None:
        super().__init__()
        self.skip_channels = tuple(width * 2**level for level in range(levels))
        self.size_multiple = 2**levels
        widths = (*self.skip_channels, width * 2**levels)
        self.encoders = nn.ModuleList(_block(3 if level == 0 else widths[level - 1], widths[level])
                                      for level in range(levels))
        self.bottleneck = _block(widths[levels - 1], widths[levels])
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2)
                                 for level in range(levels))
        self.decoders = nn.ModuleList(_block(2 * widths[level], widths[level]) for level in range(levels))
        self.head = nn.Conv2d(width, 3, 3, padding=1)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips, features = [], images
        for encoder in self.encoders:
            features = encoder(features)
            skips.append(features)
            features = nn.functional.max_pool2d(features, 2)
        return self.bottleneck(features), skips

    def decode(self, bottleneck: torch.Tensor, skips: list[torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        features = bottleneck
        for level in reversed(range(len(skips))):
            features = self.decoders[level](torch.cat([self.ups[level](features), skips[level]], dim=1))
        return images + self.head(features)  # a residual: the network learns what to take away


def unet_models() -> dict[str, ModelSpec]:
    """``my_unet`` (plain) and ``pip_my_unet`` (PIP on its three skips), trained at equal budget."""
    return backbone_models("my_unet", TinyUNet, source="examples/my_backbone", colour="#bcbd22",
                           pip_colour="#393b79", peers=("promptir_tiny",))


class SigmaDenoiser(nn.Module):
    """A non-blind denoiser: it is told the noise level and sees it as an extra input plane (as FFDNet does).

    Args:
        width: channels of the hidden layers.
        depth: hidden conv layers.

    Shape:
        (B, 3, H, W), sigma (B,) on the [0, 1] pixel scale -> (B, 3, H, W)
    """

    def __init__(self, *, width: int = 24, depth: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(4, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(width, 3, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        level = sigma.to(images.dtype).view(-1, 1, 1, 1).expand(-1, 1, *images.shape[-2:])
        return images - self.body(torch.cat([images, level], dim=1))


DENOISER = ModelSpec(factory=SigmaDenoiser, role="expert", call="non_blind", conditions=("sigma",),
                     tasks=("denoise_15", "denoise_25", "denoise_50"), source="examples/my_backbone",
                     colour="#9467bd")


def all_models() -> dict[str, ModelSpec]:
    """Every model of this package, for ``params.yaml: registry.plugins: ["my_backbone.models:all_models"]`` where
    the package is importable but not installed (the entry points name the same models)."""
    return {**unet_models(), "my_denoiser": DENOISER}
