"""Loss terms beyond the pixel loss.

The prompt regularisers of the published code push the degradation prompts of different
classes apart, so that each class keeps its own direction in prompt space.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from pip_model.pip import DegradationPrompt

PromptRegularizer = Literal["cosine", "angle", "gram"]
REGULARIZER_SCALE = 0.01  # the published code's fixed factor


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
