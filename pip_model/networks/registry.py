"""Named model variants, each a small factory that fixes a constructor's arguments.

``build_model(name, **overrides)`` builds one; keyword overrides replace the variant's
arguments (``build_model("pip_restormer_tiny", dim=24)``). The registry is the explicit
dictionary :data:`MODELS`; nothing registers itself on import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from pip_model.networks.nafnet import NAFNet
from pip_model.networks.pip import PIPConfig
from pip_model.networks.prompt_generation import DecoderPromptConfig
from pip_model.networks.restormer import Restormer
from pip_model.networks.sensor import DegradationSensor

# The published PIP-Restormer's prompts (PIPConfig's defaults), and a small version for CPU runs.
PAPER_PIP = PIPConfig()
TINY_PIP = PIPConfig(prompt_channels=(16, 32, 64), prompt_sizes=(32, 16, 8))
# The published PromptIR's decoder prompts, and a small version: as large as TINY_PIP's, each a quarter of its level's
# width. Every fusion block is at least as wide as its level, so the one at the bottleneck alone costs what a latent
# block does: with TINY_PIP's widths (16, 32, 64) promptir_tiny would have 1.60 M parameters, with these 1.31 M.
PAPER_PROMPTIR = DecoderPromptConfig()
TINY_PROMPTIR = DecoderPromptConfig(prompt_channels=(8, 16, 32), prompt_sizes=(32, 16, 8))


def restormer(**overrides: Any) -> Restormer:
    """Restormer at the published size, no prompts (the paper's plain counterpart)."""
    return Restormer(**overrides)


def pip_restormer(**overrides: Any) -> Restormer:
    """The published PIP-Restormer: 27,316,614 parameters."""
    return Restormer(**{"pip": PAPER_PIP, **overrides})


def restormer_tiny(**overrides: Any) -> Restormer:
    """A Restormer of width 16 with one block per level, for CPU runs."""
    arguments = dict(dim=16, num_blocks=(1, 1, 1, 2), num_refinement_blocks=1, heads=(1, 2, 4, 8))
    return Restormer(**{**arguments, **overrides})


def pip_restormer_tiny(**overrides: Any) -> Restormer:
    """:func:`restormer_tiny` with small prompts on all three skips."""
    return restormer_tiny(**{"pip": TINY_PIP, **overrides})


def promptir(**overrides: Any) -> Restormer:
    """The published PromptIR (``PromptIR(decoder=True)``): 35,376,967 parameters, blind."""
    return Restormer(**{"decoder_prompts": PAPER_PROMPTIR, **overrides})


def promptir_tiny(**overrides: Any) -> Restormer:
    """:func:`restormer_tiny` with small PromptIR decoder prompts: 1,309,124 parameters, blind."""
    return restormer_tiny(**{"decoder_prompts": TINY_PROMPTIR, **overrides})


def nafnet(**overrides: Any) -> NAFNet:
    """NAFNet of width 32 (the paper's denoising size), no prompts."""
    return NAFNet(**overrides)


def pip_nafnet(**overrides: Any) -> NAFNet:
    """NAFNet with PIP on its three upper skips, prompts sized as PIP-Restormer's."""
    return NAFNet(**{"pip": PAPER_PIP, **overrides})


def nafnet_tiny(**overrides: Any) -> NAFNet:
    """A three-level NAFNet of width 24 with one block per level, for CPU runs."""
    arguments = dict(width=24, encoder_blocks=(1, 1, 1), middle_blocks=1, decoder_blocks=(1, 1, 1))
    return NAFNet(**{**arguments, **overrides})


def pip_nafnet_tiny(**overrides: Any) -> NAFNet:
    """:func:`nafnet_tiny` with small prompts on its three upper skips."""
    return nafnet_tiny(**{"pip": TINY_PIP, **overrides})


def sensor(**overrides: Any) -> DegradationSensor:
    """The degradation classifier at full width."""
    return DegradationSensor(**overrides)


def sensor_tiny(**overrides: Any) -> DegradationSensor:
    """A narrow degradation classifier for CPU runs."""
    return DegradationSensor(**{"widths": (16, 32, 64), **overrides})


ModelKind = Literal["restorer", "sensor"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered variant: its factory and what kind of model it builds."""

    factory: Callable[..., nn.Module]
    kind: ModelKind


MODELS: dict[str, ModelSpec] = {
    "pip_restormer": ModelSpec(pip_restormer, "restorer"),
    "restormer": ModelSpec(restormer, "restorer"),
    "pip_restormer_tiny": ModelSpec(pip_restormer_tiny, "restorer"),
    "restormer_tiny": ModelSpec(restormer_tiny, "restorer"),
    "promptir": ModelSpec(promptir, "restorer"),
    "promptir_tiny": ModelSpec(promptir_tiny, "restorer"),
    "pip_nafnet": ModelSpec(pip_nafnet, "restorer"),
    "nafnet": ModelSpec(nafnet, "restorer"),
    "pip_nafnet_tiny": ModelSpec(pip_nafnet_tiny, "restorer"),
    "nafnet_tiny": ModelSpec(nafnet_tiny, "restorer"),
    "sensor": ModelSpec(sensor, "sensor"),
    "sensor_tiny": ModelSpec(sensor_tiny, "sensor"),
}


def list_models(kind: ModelKind | None = None) -> list[str]:
    """Names of the registered variants, optionally only restorers or only sensors."""
    return sorted(name for name, spec in MODELS.items() if kind is None or spec.kind == kind)


def model_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``; a clear error lists the known names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}") from None


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Builds the registered variant ``name`` with constructor arguments replaced by ``overrides``."""
    return model_spec(name).factory(**overrides)
