"""The Prompt-In-Prompt (PIP) module, piece by piece.

For one skip connection of a backbone, PIP turns the skip feature into a prompted feature:

1. :class:`DegradationPrompt`: a learned bank of one vector per degradation class,
   weighted by the degradation input (a class id, a mixture or a sensor's probabilities).
2. :class:`BasicRestorationPrompt`: a learned spatial prompt shared by all degradations.
3. :class:`PromptToPrompt`: the basic prompt attends to the degradation prompt, after the
   latter has been modulated by the resized skip feature. Together with 1 and 2 this is
   :class:`PromptInPrompt`, whose output is the universal restoration prompt.
4. :class:`PromptToFeature`: the skip feature attends to the universal prompt through the
   selective (top-m) cross-attention.

:class:`PIPSkips` holds one :class:`PIPSkip` (3 then 4) per chosen level of a backbone.
Every computation, including how channel counts are aligned, follows the published
implementation, so its checkpoints load (see :mod:`pip_model.networks.reference`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pip_model.networks.layers import (
    ChannelLayerNorm,
    CrossAttention,
    DualGateFeedForward,
    GatedDconvFeedForward,
    LayerNormType,
)
from pip_model.tasks import PAPER_CLASSES


@dataclass(frozen=True)
class PIPConfig:
    """Where PIP plugs into a backbone, and how large its prompts are.

    The defaults are the published PIP-Restormer's.

    Attributes:
        levels: skip-connection levels that get PIP (1 is full resolution).
        prompt_channels: channels of the prompts, one per level.
        prompt_sizes: side length of the basic restoration prompt, one per level.
        prompt_heads: heads of the prompt-to-prompt attention.
        feature_heads: heads of the prompt-to-feature attention.
        ffn_expansion: hidden-width factor of the feed-forward networks.
        selective: use the top-m attention for prompt-to-feature (the paper's choice).
        num_classes: number of prompt classes in the bank (the model's ``classes``; the paper's five by default).
        norm: layer-norm kind of every PIP block.
    """

    levels: tuple[int, ...] = (1, 2, 3)
    prompt_channels: tuple[int, ...] = (64, 128, 256)
    prompt_sizes: tuple[int, ...] = (64, 32, 16)
    prompt_heads: int = 2
    feature_heads: int = 4
    ffn_expansion: float = 2.66
    selective: bool = True
    num_classes: int = len(PAPER_CLASSES)
    norm: LayerNormType = "with_bias"

    def __post_init__(self) -> None:
        if not len(self.levels) == len(self.prompt_channels) == len(self.prompt_sizes):
            raise ValueError(
                "PIPConfig: levels, prompt_channels and prompt_sizes need one entry per level, got "
                f"{self.levels}, {self.prompt_channels}, {self.prompt_sizes}"
            )


def degradation_weights(
    degradation: torch.Tensor | None, *, batch_size: int, num_classes: int, device: torch.device
) -> torch.Tensor:
    """Turns the ``degradation`` argument of a model into prompt weights.

    Args:
        degradation: a LongTensor (B,) of class ids, a FloatTensor (B, num_classes) of
            prompt weights (a mixture, or a sensor's probabilities), or None.
        batch_size: B of the image batch, which ``degradation`` must match.
        num_classes: size of the prompt bank.
        device: device of the image batch.

    Returns:
        Float weights, one row per image.

    Shape:
        (B,) or (B, num_classes) -> (B, num_classes)

    Raises:
        ValueError: if ``degradation`` is None or does not fit the batch.
    """
    names = f"0..{num_classes - 1}, in the order of the model's classes (model.classes)"
    if degradation is None:
        raise ValueError(
            "this PIP model needs degradation=: a LongTensor (B,) of class ids "
            f"({names}), or a FloatTensor (B, {num_classes}) of prompt weights such as a "
            "mixture or the degradation sensor's probabilities"
        )
    if not degradation.is_floating_point():
        if degradation.dim() == 0:
            degradation = degradation.expand(batch_size)
        if degradation.shape != (batch_size,):
            raise ValueError(f"class ids must have shape ({batch_size},), got {tuple(degradation.shape)}")
        # Checked where reading them costs nothing: ids already on a GPU are not read back (a sync every forward,
        # and a graph break under torch.compile); one out of range there fails in the device's own assert.
        if degradation.device.type == "cpu" and not torch.compiler.is_compiling():
            if bool((degradation < 0).any() or (degradation >= num_classes).any()):
                raise ValueError(f"class ids must be in {names}, got {degradation.tolist()}")
        return F.one_hot(degradation.to(device, non_blocking=True).long(), num_classes).float()
    degradation = degradation.to(device, non_blocking=True)
    if degradation.shape != (batch_size, num_classes):
        raise ValueError(
            f"prompt weights must have shape ({batch_size}, {num_classes}), got {tuple(degradation.shape)}"
        )
    return degradation


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Keeps the first ``channels`` channels of ``x``, or zero-pads it up to ``channels``.

    Shape:
        (B, C, H, W) -> (B, channels, H, W)
    """
    extra = x.shape[1] - channels
    if extra >= 0:
        return x[:, :channels]
    return F.pad(x, (0, 0, 0, 0, 0, -extra))


class DegradationPrompt(nn.Module):
    """A learned bank of one prompt vector per degradation class.

    The output is the weighted mean of the bank, ``weights @ bank / num_classes``, so a
    one-hot weight selects one class's vector (scaled by 1/num_classes, as published)
    and a mixture blends them.

    Shape:
        weights (B, num_classes) -> (B, channels, 1, 1)
    """

    def __init__(self, *, num_classes: int, channels: int) -> None:
        super().__init__()
        self.bank = nn.Parameter(torch.randn(num_classes, channels))

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        prompt = weights.to(self.bank.dtype) @ self.bank / self.bank.shape[0]
        return prompt[:, :, None, None]


class BasicRestorationPrompt(nn.Module):
    """A learned spatial prompt, the same for every image and degradation.

    Shape:
        batch_size -> (B, channels, size, size)
    """

    def __init__(self, *, channels: int, size: int) -> None:
        super().__init__()
        self.prompt = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch_size: int) -> torch.Tensor:
        return self.prompt.expand(batch_size, -1, -1, -1)


class CrossTransformerBlock(nn.Module):
    """Pre-normed cross-attention, then a pre-normed feed-forward, both residual.

    Used by :class:`PromptToPrompt`: the query is the basic prompt and the context
    the (modulated) degradation prompt.

    Shape:
        query (B, C, H, W), context (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, *, channels: int, heads: int, ffn_expansion: float, norm: LayerNormType) -> None:
        super().__init__()
        self.norm_query = ChannelLayerNorm(channels=channels, kind=norm)
        self.norm_context = ChannelLayerNorm(channels=channels, kind=norm)
        self.attn = CrossAttention(channels=channels, heads=heads, bias=False)
        self.norm_ffn = ChannelLayerNorm(channels=channels, kind=norm)
        self.ffn = GatedDconvFeedForward(channels=channels, expansion=ffn_expansion, bias=False)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = query + self.attn(self.norm_query(query), self.norm_context(context))
        return x + self.ffn(self.norm_ffn(x))


class PromptToPrompt(CrossTransformerBlock):
    """Prompt-to-prompt interaction: the basic prompt (query) attends to the degradation
    prompt (context). Its output, after :class:`PromptInPrompt`'s resizing and
    convolution, is the universal restoration prompt.

    Shape:
        basic (B, C, S, S), degradation (B, C, S, S) -> (B, C, S, S)
    """


class PromptInPrompt(nn.Module):
    """Builds the universal restoration prompt for one skip feature.

    The degradation prompt is modulated by the skip feature, resized to the basic
    prompt's size and aligned to the prompt's channels (first channels kept, or zeros
    added). The basic prompt then attends to it (prompt-to-prompt), and the result is
    resized to the feature's size and passed through a 3x3 convolution.

    Shape:
        feature (B, C, H, W), weights (B, num_classes) -> (B, prompt_channels, H, W)
    """

    def __init__(
        self,
        *,
        num_classes: int,
        channels: int,
        size: int,
        heads: int,
        ffn_expansion: float,
        norm: LayerNormType,
    ) -> None:
        super().__init__()
        self.degradation_prompt = DegradationPrompt(num_classes=num_classes, channels=channels)
        self.basic_prompt = BasicRestorationPrompt(channels=channels, size=size)
        self.prompt_to_prompt = PromptToPrompt(
            channels=channels, heads=heads, ffn_expansion=ffn_expansion, norm=norm
        )
        self.out_conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)

    def forward(self, feature: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        basic = self.basic_prompt(feature.shape[0])
        channels, size = basic.shape[1], basic.shape[-2:]
        resized = F.interpolate(feature, size=size, mode="bilinear", align_corners=False)
        context = self.degradation_prompt(weights) * match_channels(resized, channels)
        universal = self.prompt_to_prompt(basic, context)
        universal = F.interpolate(universal, size=feature.shape[-2:], mode="bilinear", align_corners=False)
        return self.out_conv(universal)


class PromptToFeature(nn.Module):
    """Selective prompt-to-feature interaction: the feature attends to the universal prompt.

    Both inputs are layer-normed. The attention runs at the prompt's width: a wider
    feature sends its first ``prompt_channels`` channels through it and passes the rest
    on; a narrower one is zero-padded, and a 1x1 convolution (``reduce_channel``) brings
    the result back to the feature's width. As published, the residual adds the
    *normalised* feature, and a dual-gate feed-forward follows.

    Shape:
        feature (B, C_f, H, W), prompt (B, C_p, H, W) -> (B, C_f, H, W)
    """

    def __init__(
        self,
        *,
        feature_channels: int,
        prompt_channels: int,
        heads: int,
        ffn_expansion: float,
        norm: LayerNormType,
        selective: bool = True,
    ) -> None:
        super().__init__()
        self.norm_query = ChannelLayerNorm(channels=feature_channels, kind=norm)
        self.norm_context = ChannelLayerNorm(channels=prompt_channels, kind=norm)
        self.attn = CrossAttention(channels=prompt_channels, heads=heads, bias=False, selective=selective)
        self.reduce_channel = (
            nn.Conv2d(prompt_channels, feature_channels, kernel_size=1, bias=False)
            if feature_channels < prompt_channels
            else None
        )
        self.norm_ffn = ChannelLayerNorm(channels=feature_channels, kind=norm)
        self.ffn = DualGateFeedForward(channels=feature_channels, expansion=ffn_expansion, bias=False)

    def forward(self, feature: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        feature, prompt = self.norm_query(feature), self.norm_context(prompt)
        prompt_channels = prompt.shape[1]
        query = match_channels(feature, prompt_channels)
        x = query + self.attn(query, prompt)
        if self.reduce_channel is not None:
            x = self.reduce_channel(x)
        elif feature.shape[1] > prompt_channels:
            x = torch.cat([x, feature[:, prompt_channels:]], dim=1)
        return x + self.ffn(self.norm_ffn(x))


class PIPSkip(nn.Module):
    """PIP on one skip connection: universal prompt, then prompt-to-feature.

    Shape:
        feature (B, C, H, W), weights (B, num_classes) -> (B, C, H, W)
    """

    def __init__(
        self, *, feature_channels: int, prompt_channels: int, prompt_size: int, config: PIPConfig
    ) -> None:
        super().__init__()
        self.prompt = PromptInPrompt(
            num_classes=config.num_classes,
            channels=prompt_channels,
            size=prompt_size,
            heads=config.prompt_heads,
            ffn_expansion=config.ffn_expansion,
            norm=config.norm,
        )
        self.prompt_to_feature = PromptToFeature(
            feature_channels=feature_channels,
            prompt_channels=prompt_channels,
            heads=config.feature_heads,
            ffn_expansion=config.ffn_expansion,
            norm=config.norm,
            selective=config.selective,
        )

    def forward(self, feature: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.prompt_to_feature(feature, self.prompt(feature, weights))


class PIPSkips(nn.ModuleDict):
    """One :class:`PIPSkip` per chosen level, keyed ``level1``, ``level2``, ...

    Args:
        config: where and how large.
        feature_channels: channels of the backbone's skip feature at every level
            (index 0 is level 1).
    """

    def __init__(self, *, config: PIPConfig, feature_channels: tuple[int, ...]) -> None:
        bad = [level for level in config.levels if not 1 <= level <= len(feature_channels)]
        if bad:
            raise ValueError(f"PIP levels {bad} do not exist; this backbone has levels 1..{len(feature_channels)}")
        super().__init__(
            {
                f"level{level}": PIPSkip(
                    feature_channels=feature_channels[level - 1],
                    prompt_channels=channels,
                    prompt_size=size,
                    config=config,
                )
                for level, channels, size in zip(config.levels, config.prompt_channels, config.prompt_sizes)
            }
        )
        self.num_classes = config.num_classes

    def forward(self, skips: list[torch.Tensor], weights: torch.Tensor) -> list[torch.Tensor]:
        """Prompts the skip features of the chosen levels; the others pass unchanged."""
        return [
            self[f"level{level}"](skip, weights) if f"level{level}" in self else skip
            for level, skip in enumerate(skips, start=1)
        ]
