"""Blur: Kornia motion blur of a sampled length, angle and direction; restored classically by Richardson-Lucy
deconvolution with a kernel estimated from the image."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import kornia
import numpy as np
import torch
from skimage import restoration

from pip_model.data.degradations.base import Family, Params, Ranges, motion_kernels, no_field, odd_integer, on, uniform


@dataclass(frozen=True)
class BlurRanges(Ranges):
    """Attributes:
        kernel: motion-blur kernel size in pixels (odd sizes are drawn).
        angle: motion direction in degrees from horizontal.
        direction: Kornia's motion asymmetry, -1 (backward) to 1 (forward).
    """

    family: ClassVar[str] = "blur"
    kernel: tuple[int, int] = (9, 21)
    angle: tuple[float, float] = (-90.0, 90.0)
    direction: tuple[float, float] = (-1.0, 1.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require_start("kernel", 3, "start at 3 or more")


def sample(generator: torch.Generator, ranges: BlurRanges, fixed: Mapping[str, float]) -> Params:
    return {"kernel_size": odd_integer(generator, ranges.kernel), "angle": uniform(generator, ranges.angle),
            "direction": uniform(generator, ranges.direction)}


def add_motion_blur(images: torch.Tensor, params: Mapping[str, torch.Tensor], field: None = None) -> torch.Tensor:
    """Kornia motion blur with a per-image kernel size, angle and direction.

    Shape:
        (B, 3, H, W) -> (B, 3, H, W)
    """
    kernels = motion_kernels(params["kernel_size"], on(params["angle"], images), on(params["direction"], images))
    # Replicated borders work for any image size, unlike reflection.
    return kornia.filters.filter2d(images, kernels, border_type="replicate").clamp(0, 1)


def estimate_motion_kernel(image: np.ndarray, sizes: range = range(3, 26, 2)) -> np.ndarray:
    """Motion kernel from the image alone.

    The angle is where the directional derivative has least energy (blur removes detail
    along the motion); the length is the lag of the most negative autocorrelation of that
    derivative along the motion (a box blur of length L makes the derivative two spikes L
    apart with opposite signs).
    """
    grey = torch.from_numpy(image.mean(axis=-1, dtype=np.float32))[None, None]
    gradients = kornia.filters.spatial_gradient(grey)[0, 0]
    angles = np.arange(0, 180, 5)
    energy = [float(((np.cos(np.deg2rad(a)) * gradients[0] - np.sin(np.deg2rad(a)) * gradients[1]) ** 2).mean())
              for a in angles]
    angle = float(angles[int(np.argmin(energy))])
    aligned = kornia.geometry.rotate(grey, torch.tensor([-angle]))[0, 0].numpy()  # motion now horizontal
    derivative = np.diff(aligned, axis=1)[8:-8, 8:-8]
    derivative = derivative - derivative.mean()
    correlation = [float((derivative[:, :-lag] * derivative[:, lag:]).mean()) for lag in sizes]
    length = int(list(sizes)[int(np.argmin(correlation))])
    length += 1 - length % 2
    return kornia.filters.get_motion_kernel2d(length, torch.tensor([angle]), mode="bilinear")[0].numpy()


def deblur(image: np.ndarray, iterations: int = 15) -> np.ndarray:
    """Richardson-Lucy deconvolution, per channel, with an estimated motion kernel.

    The image is first extended by reflection, so the deconvolution sees no dark frame
    around it (zero padding rings from the borders inwards), and cropped back after.
    """
    kernel = estimate_motion_kernel(image)
    margin = 2 * kernel.shape[0]
    padded = np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="reflect")
    channels = [restoration.richardson_lucy(padded[..., c], kernel, num_iter=iterations, clip=True) for c in range(3)]
    return np.clip(np.stack(channels, axis=-1)[margin:-margin, margin:-margin], 0, 1)


FAMILY = Family(name="blur", tasks={"deblur": {}}, ranges=BlurRanges, sample=sample, field=no_field,
                apply=add_motion_blur, restore=deblur, integers=("kernel_size",),
                summary="motion blur of a sampled length, angle and direction")
