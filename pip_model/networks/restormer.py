"""Restormer, the backbone of the published PIP-Restormer.

Four levels of transposed-attention transformer blocks with skip connections. With a
:class:`~pip_model.networks.pip.PIPConfig` the skips of the chosen levels are prompted; without
one, the same class is the plain baseline. The layout is the published PIP backbone's,
which differs from the original Restormer only in a 1x1 convolution
(``latent_reduce``) that halves the bottleneck's channels before the first upsampler.
With a :class:`~pip_model.networks.prompt_generation.DecoderPromptConfig` it is PromptIR:
blind prompts join the decoder at three levels, the bottleneck's one ending in that
halving (so PromptIR has no ``latent_reduce`` of its own).
"""

from __future__ import annotations

import torch
from torch import nn

from pip_model.networks.backbone import SkipBackbone
from pip_model.networks.layers import Downsample, LayerNormType, Upsample, transformer_stage
from pip_model.networks.pip import PIPConfig
from pip_model.networks.prompt_generation import DecoderPromptConfig, DecoderPrompts


class RestormerEncoder(SkipBackbone):
    """Restormer's encoder, which the Restormer family shares: a 3x3 embedding, three levels of transformer blocks,
    each followed by a halving (pixel-unshuffle), and the latent; the skips are the three levels' outputs. A
    subclass adds its decoder, building its blocks with :meth:`stage`.

    Args:
        in_channels: channels of the input images.
        dim: channels of level 1; level k has ``dim * 2**(k-1)``.
        num_blocks: transformer blocks per level, levels 1 to 4 (4 is the bottleneck).
        heads: attention heads per level.
        ffn_expansion: hidden-width factor of the feed-forward networks.
        bias: whether convolutions inside blocks carry a bias.
        norm: layer-norm kind.
        pip: PIP placement and sizes, or None.
    """

    def __init__(
        self, *, in_channels: int, dim: int, num_blocks: tuple[int, int, int, int], heads: tuple[int, int, int, int],
        ffn_expansion: float, bias: bool, norm: LayerNormType, pip: PIPConfig | None,
    ) -> None:
        super().__init__(size_multiple=8, skip_channels=(dim, dim * 2, dim * 4), pip=pip)
        self._block_settings = {"ffn_expansion": ffn_expansion, "bias": bias, "norm": norm}
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=3, padding=1, bias=bias)
        self.encoder_level1 = self.stage(num_blocks[0], dim, heads[0])
        self.down1_2 = Downsample(channels=dim)
        self.encoder_level2 = self.stage(num_blocks[1], dim * 2, heads[1])
        self.down2_3 = Downsample(channels=dim * 2)
        self.encoder_level3 = self.stage(num_blocks[2], dim * 4, heads[2])
        self.down3_4 = Downsample(channels=dim * 4)
        self.latent = self.stage(num_blocks[3], dim * 8, heads[3])

    def stage(self, depth: int, channels: int, heads: int) -> nn.Sequential:
        """``depth`` transformer blocks of the network's kind at one width."""
        return transformer_stage(depth=depth, channels=channels, heads=heads, **self._block_settings)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        enc1 = self.encoder_level1(self.patch_embed(images))
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        return self.latent(self.down3_4(enc3)), [enc1, enc2, enc3]


class Restormer(RestormerEncoder):
    """Restormer encoder-decoder with optional PIP on its skip connections.

    Args:
        in_channels: channels of the input images.
        out_channels: channels of the output images (the input is added back).
        dim: channels of level 1; level k has ``dim * 2**(k-1)``.
        num_blocks: transformer blocks per level, levels 1 to 4 (4 is the bottleneck).
        num_refinement_blocks: blocks after the decoder, at full resolution.
        heads: attention heads per level.
        ffn_expansion: hidden-width factor of the feed-forward networks.
        bias: whether convolutions inside blocks carry a bias.
        norm: layer-norm kind.
        pip: PIP placement and sizes, or None for the plain backbone.
        decoder_prompts: PromptIR's decoder prompt sizes, or None for none.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W)
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks: tuple[int, int, int, int] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: tuple[int, int, int, int] = (1, 2, 4, 8),
        ffn_expansion: float = 2.66,
        bias: bool = False,
        norm: LayerNormType = "with_bias",
        pip: PIPConfig | None = None,
        decoder_prompts: DecoderPromptConfig | None = None,
    ) -> None:
        super().__init__(in_channels=in_channels, dim=dim, num_blocks=num_blocks, heads=heads,
                         ffn_expansion=ffn_expansion, bias=bias, norm=norm, pip=pip)
        if decoder_prompts is None:
            self.latent_reduce = nn.Conv2d(dim * 8, dim * 4, kernel_size=1, bias=bias)
            self.decoder_prompts = None
        else:
            self.decoder_prompts = DecoderPrompts(
                config=decoder_prompts, dim=dim, heads=heads[2], ffn_expansion=ffn_expansion, bias=bias, norm=norm
            )
        self.up4_3 = Upsample(channels=dim * 4)
        self.reduce_chan_level3 = nn.Conv2d(dim * 2 + dim * 4, dim * 4, kernel_size=1, bias=bias)
        self.decoder_level3 = self.stage(num_blocks[2], dim * 4, heads[2])
        self.up3_2 = Upsample(channels=dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, kernel_size=1, bias=bias)
        self.decoder_level2 = self.stage(num_blocks[1], dim * 2, heads[1])
        self.up2_1 = Upsample(channels=dim * 2)
        self.decoder_level1 = self.stage(num_blocks[0], dim * 2, heads[0])
        self.refinement = self.stage(num_refinement_blocks, dim * 2, heads[0])
        self.output = nn.Conv2d(dim * 2, out_channels, kernel_size=3, padding=1, bias=bias)
        # A zero residual at the start: a new network returns its input, not noise.
        nn.init.zeros_(self.output.weight)

    def decode(self, bottleneck: torch.Tensor, skips: list[torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        enc1, enc2, enc3 = skips
        prompts = self.decoder_prompts
        x = self.latent_reduce(bottleneck) if prompts is None else prompts.level3(bottleneck)
        x = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(x), enc3], dim=1)))
        if prompts is not None:
            x = prompts.level2(x)
        x = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(x), enc2], dim=1)))
        if prompts is not None:
            x = prompts.level1(x)
        x = self.decoder_level1(torch.cat([self.up2_1(x), enc1], dim=1))
        return self.output(self.refinement(x)) + images
