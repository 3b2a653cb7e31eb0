"""PromptIR's decoder prompts: blind prompts generated from the decoder's own features.

At three decoder levels, :class:`PromptGeneration` pools the feature map, turns the pooled
vector into weights over a small bank of learned spatial prompts, blends and resizes the
bank to the feature map and convolves it. :class:`DecoderPromptLevel` concatenates that
prompt to the features, runs one transformer block over both and reduces the channels
again. No degradation label enters anywhere: the model sees images only.

The computation follows the published PromptIR (Potlapalli et al., NeurIPS 2023) so that
its checkpoints load (see :mod:`pip_model.networks.reference`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pip_model.networks.layers import LayerNormType, TransformerBlock


@dataclass(frozen=True)
class DecoderPromptConfig:
    """Sizes of PromptIR's three decoder prompts; the defaults are the published model's.

    Prompt 1 joins the output of decoder level 2, prompt 2 that of decoder level 3 and
    prompt 3 the bottleneck, as the published ``prompt1..3`` do.

    Attributes:
        prompt_channels: channels of prompts 1, 2 and 3.
        prompt_sizes: side length of the learned prompts 1, 2 and 3.
        prompt_length: number of learned prompts in each bank.
    """

    prompt_channels: tuple[int, int, int] = (64, 128, 320)
    prompt_sizes: tuple[int, int, int] = (64, 32, 16)
    prompt_length: int = 5


class PromptGeneration(nn.Module):
    """A bank of learned prompts weighed by the pooled input features.

    Args:
        feature_channels: channels of the features the weights are computed from.
        channels: channels of each prompt.
        size: side length of each learned prompt.
        length: number of prompts in the bank.

    Shape:
        (B, feature_channels, H, W) -> (B, channels, H, W)
    """

    def __init__(self, *, feature_channels: int, channels: int, size: int, length: int) -> None:
        super().__init__()
        # Uniform in [0, 1), as published.
        self.bank = nn.Parameter(torch.rand(length, channels, size, size))
        self.weights = nn.Linear(feature_channels, length)
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        weights = self.weights(features.mean(dim=(-2, -1))).softmax(dim=1)
        prompt = torch.einsum("bl,lchw->bchw", weights.to(self.bank.dtype), self.bank)
        prompt = F.interpolate(prompt, size=features.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(prompt)


class DecoderPromptLevel(nn.Module):
    """Fuses a generated prompt into one decoder level: concatenate, transformer block, 1x1 conv.

    Args:
        channels: channels of the decoder features.
        out_channels: channels after the fusion (the published bottleneck level also halves them).
        prompt_channels: channels of the generated prompt.
        prompt_size: side length of the learned prompts.
        prompt_length: number of learned prompts.
        heads: attention heads of the fusion block.
        ffn_expansion: hidden-width factor of its feed-forward network.
        bias: whether its convolutions carry a bias.
        norm: its layer-norm kind.

    Shape:
        (B, channels, H, W) -> (B, out_channels, H, W)
    """

    def __init__(
        self,
        *,
        channels: int,
        out_channels: int,
        prompt_channels: int,
        prompt_size: int,
        prompt_length: int,
        heads: int,
        ffn_expansion: float,
        bias: bool,
        norm: LayerNormType,
    ) -> None:
        super().__init__()
        fused = channels + prompt_channels
        self.generate = PromptGeneration(
            feature_channels=channels, channels=prompt_channels, size=prompt_size, length=prompt_length
        )
        self.fuse = TransformerBlock(channels=fused, heads=heads, ffn_expansion=ffn_expansion, bias=bias, norm=norm)
        self.reduce = nn.Conv2d(fused, out_channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.fuse(torch.cat([x, self.generate(x)], dim=1)))


class DecoderPrompts(nn.Module):
    """PromptIR's three prompt levels, sized for a Restormer of width ``dim``.

    ``level3`` replaces the plain bottleneck's 1x1 reduction (it ends at ``4 * dim``
    channels); ``level2`` and ``level1`` keep their decoder level's width.

    Args:
        config: prompt sizes.
        dim: the backbone's level-1 width.
        heads: attention heads of every fusion block (the published model uses level 3's).
        ffn_expansion: hidden-width factor of the fusion blocks.
        bias: whether their convolutions carry a bias.
        norm: their layer-norm kind.
    """

    def __init__(
        self, *, config: DecoderPromptConfig, dim: int, heads: int, ffn_expansion: float, bias: bool,
        norm: LayerNormType,
    ) -> None:
        super().__init__()
        widths = ((dim * 2, dim * 2), (dim * 4, dim * 4), (dim * 8, dim * 4))  # (in, out) of levels 1, 2, 3

        def level(index: int) -> DecoderPromptLevel:
            channels, out_channels = widths[index]
            return DecoderPromptLevel(
                channels=channels, out_channels=out_channels, prompt_channels=config.prompt_channels[index],
                prompt_size=config.prompt_sizes[index], prompt_length=config.prompt_length, heads=heads,
                ffn_expansion=ffn_expansion, bias=bias, norm=norm,
            )

        self.level1, self.level2, self.level3 = level(0), level(1), level(2)
