"""AdaIR (Cui et al., ICLR 2025): a blind all-in-one restorer that mines the input's frequencies.

The backbone is Restormer's U-Net without prompts (and without the bottleneck's 1x1 halving of our PIP backbone).
Three adaptive frequency learning blocks (:class:`AdaptiveFrequencyLearning`) join the decoder: after the
bottleneck, after decoder level 3 and after decoder level 2. Each splits a convolution of the *input image* into a
low and a high band with a box in its centred 2-D spectrum, lets each band attend to the decoder features, mixes the
two (:class:`FrequencyModulation`) and lets the features attend to the mixture.

The computation follows the published implementation (github.com/c-yn/AdaIR) so that its checkpoints load. Two of
its behaviours are worth knowing:

- The box's half-sides are ``int((size // 128) * t)`` with ``t`` in (0, 1), so the box is empty, the low band zero
  and the high band ``|conv(image)|``, unless the feature map is at least 256 pixels high and wide: an input of at
  least 512x512 for the last block. Smaller inputs (and the published 128x128 training crops) never split.
- The box size is rounded to whole bins, so no gradient reaches the threshold MLP (``rate_conv``); it keeps its
  initial weights through training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pip_model.networks.layers import CrossAttention, LayerNormType, Upsample
from pip_model.networks.restormer import RestormerEncoder

# The spectral box grows by one bin on each side per this many pixels of the feature map (times the threshold).
BAND_STEP = 128


def box_half_sizes(threshold: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Half-sides of the low-frequency box in whole bins, rounded down as published.

    Args:
        threshold: the box's fractions of ``size // 128`` in (0, 1), rows first.

    Shape:
        (B, 2) -> (B, 2), int64
    """
    steps = torch.tensor([height // BAND_STEP, width // BAND_STEP], dtype=threshold.dtype, device=threshold.device)
    return (threshold * steps).to(torch.int64)


def split_bands(features: torch.Tensor, half_sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Splits each map into the magnitudes of its low and high frequencies.

    The low band keeps the bins inside a centred box of the shifted spectrum (rows ``H//2 - h`` to ``H//2 + h - 1``,
    columns likewise), the high band the rest. The box is not conjugate-symmetric, so the bands are complex: each
    is its magnitude.

    Args:
        features: real maps, in float32.
        half_sizes: each sample's box half-sides (rows, columns), as :func:`box_half_sizes` gives them.

    Shape:
        (B, C, H, W), (B, 2) -> (B, C, H, W), (B, C, H, W)
    """
    height, width = features.shape[-2:]

    def inside(size: int, half: torch.Tensor) -> torch.Tensor:
        index = torch.arange(size, device=features.device)
        return (index >= size // 2 - half[:, None]) & (index < size // 2 + half[:, None])

    box = inside(height, half_sizes[:, 0])[:, :, None] & inside(width, half_sizes[:, 1])[:, None, :]
    # Masking the spectrum where fft2 puts the bins equals shifting it, masking with the box and shifting back.
    box = torch.fft.ifftshift(box, dim=(-2, -1))[:, None]
    # ifft2 is linear, so the high band is the input less the low band: one inverse transform, not two.
    low = torch.fft.ifft2(torch.fft.fft2(features, norm="forward") * box, norm="forward")
    return low.abs(), (features - low).abs()


class FrequencyModulation(nn.Module):
    """Mixes the two bands, each gated by the other (the paper's FMoM).

    The high band is scaled per channel by a gate of the low band (average- and max-pooled through one MLP); the
    low band per pixel by a 7x7 gate of the high band (channel max and mean). Their sum passes a 1x1 conv.

    Args:
        channels: C of both bands.

    Shape:
        low (B, C, H, W), high (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        self.spatial_gate = nn.Conv2d(2, 1, kernel_size=7, padding=3, bias=False)
        self.channel_gate = nn.Sequential(
            nn.Conv2d(channels, channels // 16, kernel_size=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(channels // 16, channels, kernel_size=1, bias=False),
        )
        self.proj = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([high.amax(dim=1, keepdim=True), high.mean(dim=1, keepdim=True)], dim=1)
        per_pixel = self.spatial_gate(pooled).sigmoid()
        per_channel = (self.channel_gate(low.mean(dim=(-2, -1), keepdim=True))
                       + self.channel_gate(low.amax(dim=(-2, -1), keepdim=True))).sigmoid()
        return self.proj(low * per_pixel + high * per_channel)


class AdaptiveFrequencyLearning(nn.Module):
    """Refines decoder features with the frequency bands of the input image (the paper's AFLB).

    The image, resized to the features, passes a 3x3 conv and is split into bands by a spectral box whose size a
    small MLP of the pooled conv output picks per sample (:func:`split_bands`). Each band queries the features
    (channel cross-attention), the results are mixed (:class:`FrequencyModulation`), the features query the mixture,
    and the output is ``attended * para1 + features * para2``, both per channel.

    Args:
        channels: C of the decoder features.
        heads: attention heads of the three cross-attentions.
        bias: whether the cross-attentions' convolutions carry a bias.
        in_channels: channels of the input image.

    Shape:
        image (B, in_channels, H0, W0), features (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, *, channels: int, heads: int, bias: bool, in_channels: int = 3) -> None:
        super().__init__()

        def attention() -> CrossAttention:
            return CrossAttention(channels=channels, heads=heads, bias=bias)

        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1, bias=False)
        self.rate_conv = nn.Sequential(
            nn.Conv2d(channels, channels // 8, kernel_size=1, bias=False),
            nn.GELU(),
            nn.Conv2d(channels // 8, 2, kernel_size=1, bias=False),
        )
        self.high_attention = attention()
        self.low_attention = attention()
        self.frequency_refine = FrequencyModulation(channels=channels)
        self.mix_attention = attention()
        # Scales of the attended mixture and of the features: a new block passes the features unchanged.
        self.para1 = nn.Parameter(torch.zeros(channels, 1, 1))
        self.para2 = nn.Parameter(torch.ones(channels, 1, 1))

    def bands(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The low and high bands of the convolved image, each (B, C, H, W)."""
        x = self.conv1(image)
        height, width = x.shape[-2:]
        if height < BAND_STEP or width < BAND_STEP:
            # The box has no bins whatever the threshold: no transform needed (decided by shape, so no sync).
            return torch.zeros_like(x), x.abs()
        # The box's integer sides and the spectrum in float32 whatever the autocast: a rounding may move a side.
        with torch.autocast(device_type=x.device.type, enabled=False):
            x32 = x.float()
            threshold = self.rate_conv(x32.mean(dim=(-2, -1), keepdim=True)).sigmoid().flatten(1)
            low, high = split_bands(x32, box_half_sizes(threshold, height, width))
        return low.to(x.dtype), high.to(x.dtype)

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        image = F.interpolate(image, size=features.shape[-2:], mode="bilinear", align_corners=False, antialias=False)
        low, high = self.bands(image)
        mixed = self.frequency_refine(self.low_attention(low, features), self.high_attention(high, features))
        return self.mix_attention(features, mixed) * self.para1 + features * self.para2


class AdaIR(RestormerEncoder):
    """AdaIR: a Restormer U-Net whose decoder mines the input image's frequencies. Blind: no degradation input.

    Args:
        in_channels: channels of the input images.
        out_channels: channels of the output images (the input is added back).
        dim: channels of level 1; level k has ``dim * 2**(k-1)``.
        num_blocks: transformer blocks per level, levels 1 to 4 (4 is the bottleneck).
        num_refinement_blocks: blocks after the decoder, at full resolution.
        heads: attention heads per level; the frequency blocks all use level 3's.
        ffn_expansion: hidden-width factor of the feed-forward networks.
        bias: whether convolutions inside blocks carry a bias.
        norm: layer-norm kind.

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
    ) -> None:
        super().__init__(in_channels=in_channels, dim=dim, num_blocks=num_blocks, heads=heads,
                         ffn_expansion=ffn_expansion, bias=bias, norm=norm, pip=None)

        def frequency(channels: int) -> AdaptiveFrequencyLearning:
            return AdaptiveFrequencyLearning(channels=channels, heads=heads[2], bias=bias, in_channels=in_channels)

        self.fre1 = frequency(dim * 8)
        self.up4_3 = Upsample(channels=dim * 8)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, kernel_size=1, bias=bias)
        self.decoder_level3 = self.stage(num_blocks[2], dim * 4, heads[2])
        self.fre2 = frequency(dim * 4)
        self.up3_2 = Upsample(channels=dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, kernel_size=1, bias=bias)
        self.decoder_level2 = self.stage(num_blocks[1], dim * 2, heads[1])
        self.fre3 = frequency(dim * 2)
        self.up2_1 = Upsample(channels=dim * 2)
        self.decoder_level1 = self.stage(num_blocks[0], dim * 2, heads[0])
        self.refinement = self.stage(num_refinement_blocks, dim * 2, heads[0])
        self.output = nn.Conv2d(dim * 2, out_channels, kernel_size=3, padding=1, bias=bias)
        # A zero residual at the start: a new network returns its input, not noise.
        nn.init.zeros_(self.output.weight)

    def decode(self, bottleneck: torch.Tensor, skips: list[torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        enc1, enc2, enc3 = skips
        x = self.fre1(images, bottleneck)
        x = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(x), enc3], dim=1)))
        x = self.fre2(images, x)
        x = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(x), enc2], dim=1)))
        x = self.fre3(images, x)
        x = self.decoder_level1(torch.cat([self.up2_1(x), enc1], dim=1))
        return self.output(self.refinement(x)) + images
