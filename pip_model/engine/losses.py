"""Training losses: the pixel losses, and the prompt regularisers.

The PSNR loss (as NAFNet trains) is the mean of ``log10(MSE)`` per image, so every image
counts by its relative error: a mildly degraded image (a small blur) weighs as much as a
heavily degraded one, which a plain L1 loss lets the large errors drown out.

The prompt regularisers of the published code push the degradation prompts of different
classes apart, so that each class keeps its own direction in prompt space.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from pip_model.networks.pip import DegradationPrompt

PixelLoss = Literal["l1", "smooth_l1", "psnr"]
PromptRegularizer = Literal["cosine", "angle", "gram"]
REGULARIZER_SCALE = 0.01  # the published code's fixed factor


def psnr_loss(restored: torch.Tensor, clean: torch.Tensor, *, mse_floor: float = 1e-5) -> torch.Tensor:
    """Negative mean PSNR over the batch, in units of 10 dB.

    ``mse_floor`` (50 dB) keeps near-perfect images, such as black crops, from dominating.

    Shape:
        (B, C, H, W), (B, C, H, W) -> ()
    """
    mse = (restored - clean).pow(2).flatten(1).mean(dim=1)
    return torch.log10(mse + mse_floor).mean()


def pixel_loss(kind: PixelLoss) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The pixel loss ``(restored, clean) -> scalar`` called ``kind``."""
    losses = {"l1": F.l1_loss, "smooth_l1": F.smooth_l1_loss, "psnr": psnr_loss}
    if kind not in losses:
        raise ValueError(f"unknown pixel loss {kind!r}; expected one of {sorted(losses)}")
    return losses[kind]


def prompt_bank_penalty(bank: torch.Tensor, kind: PromptRegularizer) -> torch.Tensor:
    """Penalty on one bank of degradation prompts.

    Args:
        bank: one prompt vector per class.
        kind: ``"cosine"``, the summed absolute cosine similarity between different
            classes; ``"angle"``, the summed positive cosines (angles under 90 degrees);
            ``"gram"``, the mean squared distance of the Gram matrix from the identity.

    Returns:
        A scalar, 0.01 times the penalty, as published.

    Shape:
        (num_classes, channels) -> ()
    """
    eye = torch.eye(bank.shape[0], device=bank.device, dtype=bank.dtype)
    if kind == "gram":
        return F.mse_loss(bank @ bank.T, eye) * REGULARIZER_SCALE
    unit = F.normalize(bank, dim=1)
    cosine = unit @ unit.T
    if kind == "cosine":
        return (cosine - eye).abs().sum() * REGULARIZER_SCALE
    if kind == "angle":
        return F.relu(torch.triu(cosine, diagonal=1)).sum() * REGULARIZER_SCALE
    raise ValueError(f"unknown prompt regulariser {kind!r}; expected 'cosine', 'angle' or 'gram'")


def prompt_regularization(model: nn.Module, kind: PromptRegularizer = "cosine") -> torch.Tensor:
    """Sum of :func:`prompt_bank_penalty` over every degradation prompt of ``model``.

    A model without prompts gives a zero that still sits on the model's device.
    """
    banks = [module.bank for module in model.modules() if isinstance(module, DegradationPrompt)]
    if not banks:
        parameter = next(model.parameters(), None)
        return torch.zeros((), device=parameter.device if parameter is not None else None)
    return torch.stack([prompt_bank_penalty(bank, kind) for bank in banks]).sum()
