"""Building blocks shared by every network of the project.

Restormer's blocks (channel LayerNorm, multi-Dconv head transposed attention, gated-Dconv
feed-forward), the dual-gate feed-forward, channel cross-attention with optional top-m
selection, and the pixel-(un)shuffle resamplers.

All attention here is *transposed*: the tokens are channels and the features are pixels,
so the attention map is (C/heads x C/heads) per head whatever the image size.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

LayerNormType = Literal["with_bias", "bias_free"]

# Fractions of the per-head channels kept by the selective (top-m) attention.
TOP_M_FRACTIONS: tuple[tuple[int, int], ...] = ((1, 2), (2, 3), (3, 4), (4, 5))


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of every pixel, as in Restormer.

    Args:
        channels: number of channels C.
        kind: ``"with_bias"`` subtracts the mean and adds a learned bias;
            ``"bias_free"`` only rescales by the standard deviation.

    Shape:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, *, channels: int, kind: LayerNormType = "with_bias", eps: float = 1e-5) -> None:
        super().__init__()
        if kind not in ("with_bias", "bias_free"):
            raise ValueError(f"layer norm kind must be 'with_bias' or 'bias_free', got {kind!r}")
        self.with_bias = kind == "with_bias"
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if self.with_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_bias:
            channels_last = x.permute(0, 2, 3, 1)
            if torch.is_grad_enabled():
                # Training: the fused kernel on a channels-last view, about twice as fast as the explicit form.
                return F.layer_norm(channels_last, (x.shape[1],), self.weight, self.bias, self.eps).permute(0, 3, 1, 2)
            # Inference: the published arithmetic, mean and variance apart, then (x - mean) / sqrt(var + eps) * w + b.
            # The fused kernel rounds otherwise (7e-7 on PIP's top-m scores), which flips published near-ties (8e-8
            # apart) on some CPUs; in place, it costs one allocation.
            mean = channels_last.mean(dim=-1, keepdim=True)
            std = channels_last.var(dim=-1, keepdim=True, unbiased=False).add_(self.eps).sqrt_()
            return (channels_last - mean).div_(std).mul_(self.weight).add_(self.bias).permute(0, 3, 1, 2)
        var = x.var(dim=1, keepdim=True, unbiased=False)
        return x / torch.sqrt(var + self.eps) * self.weight[:, None, None]


def _pointwise(in_channels: int, out_channels: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=bias)


def _depthwise(channels: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, kernel_size=3, padding=1, groups=channels, bias=bias)


class GatedDconvFeedForward(nn.Module):
    """Restormer's gated-Dconv feed-forward network (GDFN): ``gelu(a) * b``.

    Shape:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, *, channels: int, expansion: float, bias: bool) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = _pointwise(channels, hidden * 2, bias)
        self.dwconv = _depthwise(hidden * 2, bias)
        self.project_out = _pointwise(hidden, channels, bias)

    def gate(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return F.gelu(a) * b
        # Inference: multiplying in place saves allocating (and page-faulting) one more hidden-width tensor;
        # the same numbers either way.
        return F.gelu(a).mul_(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(self.gate(a, b))


class DualGateFeedForward(GatedDconvFeedForward):
    """Dual-gate feed-forward (LLFormer): each half gates the other, ``gelu(b)*a + gelu(a)*b``.

    Shape:
        (B, C, H, W) -> (B, C, H, W)
    """

    def gate(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return F.gelu(b) * a + F.gelu(a) * b
        return F.gelu(b).mul_(a).add_(F.gelu(a).mul_(b))  # in place, as the gated feed-forward above


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    return rearrange(x, "b (head c) h w -> b head c (h w)", head=heads)


def _merge_heads(x: torch.Tensor, height: int) -> torch.Tensor:
    return rearrange(x, "b head c (h w) -> b (head c) h w", h=height)


class TransposedSelfAttention(nn.Module):
    """Restormer's multi-Dconv head transposed attention (MDTA).

    Args:
        channels: C, divisible by ``heads``.
        heads: number of attention heads; each has a learned temperature.
        bias: whether the convolutions carry a bias.

    Shape:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, *, channels: int, heads: int, bias: bool) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = _pointwise(channels, channels * 3, bias)
        self.qkv_dwconv = _depthwise(channels * 3, bias)
        self.project_out = _pointwise(channels, channels, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (_split_heads(t, self.heads) for t in self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1))
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1) * self.temperature
        return self.project_out(_merge_heads(attn.softmax(dim=-1) @ v, x.shape[-2]))


class CrossAttention(nn.Module):
    """Transposed cross-attention: queries from one tensor, keys and values from another.

    With ``selective=True`` it is the paper's top-m attention: for each fraction
    m in 1/2, 2/3, 3/4, 4/5 of the per-head channels, only the m largest scores of
    each query row are kept before the softmax, and the four attention maps are mixed
    with learned weights (``selection_weights``).

    Args:
        channels: C of both inputs, divisible by ``heads``.
        heads: number of attention heads.
        bias: whether the convolutions carry a bias.
        selective: enable top-m selection.

    Shape:
        query (B, C, H, W), context (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, *, channels: int, heads: int, bias: bool, selective: bool = False) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.kv = _pointwise(channels, channels * 2, bias)
        self.kv_dwconv = _depthwise(channels * 2, bias)
        self.q = _pointwise(channels, channels, bias)
        self.q_dwconv = _depthwise(channels, bias)
        self.project_out = _pointwise(channels, channels, bias)
        self.selection_weights = (
            nn.Parameter(torch.full((len(TOP_M_FRACTIONS),), 0.2)) if selective else None
        )

    def _attention_map(self, scores: torch.Tensor) -> torch.Tensor:
        if self.selection_weights is None:
            return scores.softmax(dim=-1)
        channels = scores.shape[-1]
        ranked = scores.sort(dim=-1, descending=True).values
        mixed = torch.zeros_like(scores)
        for weight, (num, den) in zip(self.selection_weights, TOP_M_FRACTIONS):
            # int(C * num / den) in this exact order is how the published model counts.
            threshold = ranked[..., int(channels * num / den) - 1 : int(channels * num / den)]
            kept = scores.masked_fill(scores < threshold, float("-inf"))
            mixed = mixed + weight * kept.softmax(dim=-1)
        return mixed

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q = _split_heads(self.q_dwconv(self.q(query)), self.heads)
        k, v = (_split_heads(t, self.heads) for t in self.kv_dwconv(self.kv(context)).chunk(2, dim=1))
        scores = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1) * self.temperature
        return self.project_out(_merge_heads(self._attention_map(scores) @ v, query.shape[-2]))


def ranks_scores(model: nn.Module) -> bool:
    """Whether ``model`` selects by rank (a top-m :class:`CrossAttention`): its output jumps where two scores
    cross, so only the published arithmetic gives the published output near a tie."""
    return any(isinstance(module, CrossAttention) and module.selection_weights is not None
               for module in model.modules())


class TransformerBlock(nn.Module):
    """Restormer's transformer block: MDTA then GDFN, each pre-normed and residual.

    Shape:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(
        self, *, channels: int, heads: int, ffn_expansion: float, bias: bool, norm: LayerNormType
    ) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(channels=channels, kind=norm)
        self.attn = TransposedSelfAttention(channels=channels, heads=heads, bias=bias)
        self.norm2 = ChannelLayerNorm(channels=channels, kind=norm)
        self.ffn = GatedDconvFeedForward(channels=channels, expansion=ffn_expansion, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def transformer_stage(
    *, depth: int, channels: int, heads: int, ffn_expansion: float, bias: bool, norm: LayerNormType
) -> nn.Sequential:
    """A stack of ``depth`` :class:`TransformerBlock` of the same width."""
    return nn.Sequential(
        *(
            TransformerBlock(channels=channels, heads=heads, ffn_expansion=ffn_expansion, bias=bias, norm=norm)
            for _ in range(depth)
        )
    )


class Downsample(nn.Module):
    """Halves the resolution and doubles the channels: 3x3 conv to C/2, then pixel-unshuffle.

    Shape:
        (B, C, H, W) -> (B, 2C, H/2, W/2)
    """

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels // 2, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(self.conv(x), 2)


class Upsample(nn.Module):
    """Doubles the resolution and halves the channels: 3x3 conv to 2C, then pixel-shuffle.

    Shape:
        (B, C, H, W) -> (B, C/2, 2H, 2W)
    """

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * 2, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)


def pad_to_multiple(images: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pads the bottom and right edges so that H and W are multiples of ``multiple``.

    Reflection padding where the image is large enough, replication otherwise.

    Shape:
        (B, C, H, W) -> (B, C, ceil(H/m)*m, ceil(W/m)*m)
    """
    height, width = images.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not (pad_h or pad_w):
        return images
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(images, (0, pad_w, 0, pad_h), mode=mode)
