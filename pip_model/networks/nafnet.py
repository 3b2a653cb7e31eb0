"""NAFNet (Chen et al., 2022), a nonlinear-activation-free U-Net, with optional PIP.

Skip connections are added, not concatenated, so PIP's prompted skip feature replaces
the encoder's feature in that sum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pip_model.networks.backbone import SkipBackbone
from pip_model.networks.layers import ChannelLayerNorm
from pip_model.networks.pip import PIPConfig


class SimpleGate(nn.Module):
    """Splits the channels in two halves and multiplies them.

    Shape:
        (B, 2C, H, W) -> (B, C, H, W)
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """NAFNet's block: a gated depthwise-conv mixer with simplified channel attention,
    then a gated pointwise feed-forward. Both branches are residual, scaled by learned
    per-channel factors that start at zero, so a new block is the identity.

    Shape:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, *, channels: int, expansion: int = 2) -> None:
        super().__init__()
        hidden = channels * expansion
        self.norm1 = ChannelLayerNorm(channels=channels)
        self.conv1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.conv2 = nn.Conv2d(hidden, hidden, kernel_size=3, padding=1, groups=hidden)
        self.gate = SimpleGate()
        self.channel_attention = nn.Conv2d(hidden // 2, hidden // 2, kernel_size=1)
        self.conv3 = nn.Conv2d(hidden // 2, channels, kernel_size=1)
        self.norm2 = ChannelLayerNorm(channels=channels)
        self.conv4 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.conv5 = nn.Conv2d(hidden // 2, channels, kernel_size=1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.conv2(self.conv1(self.norm1(x))))
        y = y * self.channel_attention(F.adaptive_avg_pool2d(y, 1))
        x = x + self.conv3(y) * self.beta
        y = self.conv5(self.gate(self.conv4(self.norm2(x))))
        return x + y * self.gamma


class NAFNet(SkipBackbone):
    """NAFNet U-Net with optional PIP on its skip connections.

    Args:
        in_channels: channels of the input images.
        out_channels: channels of the output images (the input is added back).
        width: channels of level 1; each level down doubles them.
        encoder_blocks: NAF blocks per encoder level; its length sets the depth.
        middle_blocks: NAF blocks at the bottleneck.
        decoder_blocks: NAF blocks per decoder level, deepest first.
        pip: PIP placement and sizes, or None for the plain backbone.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W)
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        width: int = 32,
        encoder_blocks: tuple[int, ...] = (2, 2, 4, 8),
        middle_blocks: int = 12,
        decoder_blocks: tuple[int, ...] = (2, 2, 2, 2),
        pip: PIPConfig | None = None,
    ) -> None:
        if len(encoder_blocks) != len(decoder_blocks):
            raise ValueError(
                f"encoder_blocks {encoder_blocks} and decoder_blocks {decoder_blocks} need the same length"
            )
        widths = tuple(width * 2**level for level in range(len(encoder_blocks)))
        super().__init__(size_multiple=2 ** len(encoder_blocks), skip_channels=widths, pip=pip)

        def stage(depth: int, channels: int) -> nn.Sequential:
            return nn.Sequential(*(NAFBlock(channels=channels) for _ in range(depth)))

        self.intro = nn.Conv2d(in_channels, width, kernel_size=3, padding=1)
        self.encoders = nn.ModuleList(stage(n, c) for n, c in zip(encoder_blocks, widths))
        self.downs = nn.ModuleList(nn.Conv2d(c, c * 2, kernel_size=2, stride=2) for c in widths)
        self.middle = stage(middle_blocks, widths[-1] * 2)
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c * 2, c * 4, kernel_size=1, bias=False), nn.PixelShuffle(2))
            for c in reversed(widths)
        )
        self.decoders = nn.ModuleList(stage(n, c) for n, c in zip(decoder_blocks, reversed(widths)))
        self.ending = nn.Conv2d(width, out_channels, kernel_size=3, padding=1)
        # A zero residual at the start: a new network returns its input, not noise.
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x, skips = self.intro(images), []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        return self.middle(x), skips

    def decode(self, bottleneck: torch.Tensor, skips: list[torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        x = bottleneck
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decoder(up(x) + skip)
        return self.ending(x) + images
