"""JPEG: the compression artefacts of a sampled quality (blocks, ringing, colour bleeding), through Kornia's
differentiable JPEG codec; restored classically by total-variation smoothing, which flattens the blocks' steps.

The whole family is this module, its ranges in ``params.yaml: degrade.ranges.jpeg`` and its test (see
docs/10-add-a-degradation.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import kornia
import numpy as np
import torch
from skimage import restoration

from pip_model.data.degradations.base import Family, Params, Ranges, no_field


@dataclass(frozen=True)
class JpegRanges(Ranges):
    """Attributes:
        quality: the JPEG quality, 1 (worst) to 100 (integers are drawn).
    """

    family: ClassVar[str] = "jpeg"
    quality: tuple[int, int] = (10, 40)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.quality[0] <= self.quality[1] <= 100:
            raise ValueError(f"degrade.ranges.jpeg.quality must lie in [1, 100], got {list(self.quality)}")


def sample(generator: torch.Generator, ranges: JpegRanges, fixed: Mapping[str, float]) -> Params:
    return {"quality": torch.randint(ranges.quality[0], ranges.quality[1] + 1, (1,), generator=generator)}


def compress(images: torch.Tensor, params: Mapping[str, torch.Tensor], field: None = None) -> torch.Tensor:
    """Encodes and decodes each image as a JPEG of its quality.

    Shape:
        (B, 3, H, W) -> (B, 3, H, W)
    """
    # On the CPU: Kornia checks the range on the host, and reads nothing back from the device then.
    quality = params["quality"].cpu().to(torch.float32)
    return kornia.enhance.jpeg_codec_differentiable(images.clamp(0, 1), quality).clamp(0, 1)


def dejpeg(image: np.ndarray, weight: float = 0.04) -> np.ndarray:
    """Total-variation smoothing (Chambolle), per colour channel."""
    return restoration.denoise_tv_chambolle(image, weight=weight, channel_axis=-1)


FAMILY = Family(name="jpeg", tasks={"dejpeg": {}}, ranges=JpegRanges, sample=sample, field=no_field, apply=compress,
                restore=dejpeg, integers=("quality",), summary="JPEG compression at a sampled quality")
