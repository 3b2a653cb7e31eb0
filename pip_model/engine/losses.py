"""Training losses: the pixel losses, the prompt regularisers, and the experts' balance.

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

from pip_model.networks.moce_ir import ExpertRouter, RoutingDecision
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


def frequency_loss(restored: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the real and imaginary parts of the images' 2-D real FFTs (MoCE-IR's ``FFTLoss``,
    src/utils/loss_utils.py): it weighs the errors of every frequency alike, where a pixel loss lets the few large
    low-frequency ones dominate.

    Shape:
        (B, C, H, W), (B, C, H, W) -> ()
    """
    return F.l1_loss(torch.view_as_real(torch.fft.rfft2(restored)), torch.view_as_real(torch.fft.rfft2(clean)))


def pixel_loss(kind: PixelLoss, *, fft_weight: float = 0.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The pixel loss ``(restored, clean) -> scalar`` called ``kind``, plus ``fft_weight`` x :func:`frequency_loss`.
    """
    losses = {"l1": F.l1_loss, "smooth_l1": F.smooth_l1_loss, "psnr": psnr_loss}
    if kind not in losses:
        raise ValueError(f"unknown pixel loss {kind!r}; expected one of {sorted(losses)}")
    if fft_weight < 0:
        raise ValueError(f"the FFT loss weight must be >= 0, got {fft_weight}")
    if not fft_weight:
        return losses[kind]

    def with_frequencies(restored: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        return losses[kind](restored, clean) + fft_weight * frequency_loss(restored, clean)

    return with_frequencies


def _squared_variation(values: torch.Tensor) -> torch.Tensor:
    """The squared coefficient of variation, ``(std / mean)^2``: 0 when every value is the same."""
    return (values.std() / (values.mean() + 1e-8)) ** 2


def expert_balance(decision: RoutingDecision, *, top_k: int, noise_std: float) -> torch.Tensor:
    """MoCE-IR's balance term of one router's decision for a batch (src/net/moce_ir.py ``RoutingFunction``): half the
    squared variation of the experts' importance (the batch's summed softmax of the logits), half that of their
    load (each image's chance, under the router's noise, that an expert's logit beats the k-th best noisy one). Low
    when the batch spreads over the experts, so no expert starves.

    Shape:
        decision.logits (B, E) -> ()
    """
    importance = decision.logits.softmax(dim=-1).sum(dim=0)
    threshold = decision.noisy_logits.topk(top_k, dim=-1).values[:, -1:]
    standard = torch.distributions.Normal(0.0, 1.0)
    load = (1 - standard.cdf((threshold - decision.logits) / noise_std)).mean(dim=0)
    return 0.5 * _squared_variation(importance) + 0.5 * _squared_variation(load)


def auxiliary_loss(model: nn.Module) -> torch.Tensor | None:
    """The term a model's own structure trains with: for a mixture of experts (MoCE-IR), the mean over its routers
    of :func:`expert_balance` of their last noisy (training) decisions, as the published ``total_loss``; None for a
    model without routers.

    Shape:
        -> ()
    """
    terms = [expert_balance(router.last, top_k=router.top_k, noise_std=router.noise_std)
             for router in model.modules() if isinstance(router, ExpertRouter)
             and router.last is not None and router.last.noise is not None]
    return torch.stack(terms).mean() if terms else None


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
