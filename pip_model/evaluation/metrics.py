"""PSNR and SSIM of restored images.

From Kornia (``kornia.metrics``, SSIM with an 11x11 Gaussian window) or, with ``metrics="paper"``
(``evaluate.metrics: paper``), from scikit-image at its defaults (SSIM with a 7x7 uniform window), as the
published PIP and PromptIR test code computes them, or with ``metrics="onerestore"`` the same on the restored image
rounded to 8 bits first, as OneRestore scores CDD-11 (its outputs saved as PNGs, then read); on RGB in [0, 1] or on
the Y channel of YCbCr, as papers report both.
"""

from __future__ import annotations

from typing import Literal

import kornia
import numpy as np
import torch

from pip_model.data.images import to_array


def image_metrics(
    restored: torch.Tensor, clean: torch.Tensor, *, y_channel: bool = False,
    metrics: Literal["kornia", "paper", "onerestore"] = "kornia",
) -> tuple[float, float]:
    """PSNR (dB) and SSIM of one image pair, on RGB or on Y, by Kornia or as the published test code.

    ``paper`` is scikit-image's ``peak_signal_noise_ratio`` and ``structural_similarity`` at their
    defaults (7x7 uniform window, mean over channels) with ``data_range=1``; ``onerestore`` is ``paper`` on the
    restored image rounded to 8 bits (as a saved PNG holds it).

    Shape:
        (1, 3, H, W), (1, 3, H, W) -> (psnr, ssim)
    """
    restored, clean = restored.clamp(0, 1).float(), clean.clamp(0, 1).float()
    if y_channel:
        restored, clean = kornia.color.rgb_to_ycbcr(restored)[:, :1], kornia.color.rgb_to_ycbcr(clean)[:, :1]
    if metrics in ("paper", "onerestore"):
        from skimage.metrics import peak_signal_noise_ratio, structural_similarity

        ours, theirs = to_array(restored[0]).astype(np.float64), to_array(clean[0]).astype(np.float64)
        if metrics == "onerestore":
            ours = np.floor(ours * 255 + 0.5) / 255
        return (float(peak_signal_noise_ratio(theirs, ours, data_range=1)),
                float(structural_similarity(theirs, ours, data_range=1, channel_axis=-1)))
    psnr = float(kornia.metrics.psnr(restored, clean, 1.0))
    ssim = float(kornia.metrics.ssim(restored, clean, 11).mean())
    return psnr, ssim

