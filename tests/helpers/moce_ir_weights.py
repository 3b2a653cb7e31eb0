"""The published MoCE-IR's deterministic test weights.

``../shared/reference/moce_ir/README.md`` says how each tensor of the published model was filled before its outputs
were recorded; :func:`moce_ir_state_dict` follows that recipe (``pip_model.networks.reference.MOCE_IR`` maps the
published names onto our ``moce_ir``).
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import torch

from tests.helpers.reference_weights import reference_layout

MOCE_IR_TABLE = "moce_ir/moce_ir_state_dict.tsv"

def expert_sizes(channels: int, num_experts: int = 4) -> list[int]:
    """Parameters of each expert of a decoder block of ``channels`` channels, counted by hand.

    Expert ``e`` works at rank ``r = channels / 2**(3-e)``: three 1x1 convolutions between ``channels`` and ``r``
    (``3 C r``), and its body: q (``r^2``), q's depthwise 3x3 with bias (``10 r``), kv (``2 r^2``), kv's depthwise
    7x7 with bias (``100 r``), a layer norm (``2 r``) and a 1x1 with bias (``r^2 + r``).
    """
    ranks = [channels // 2 ** (num_experts - 1 - index) for index in range(num_experts)]
    return [3 * channels * r + 4 * r * r + 113 * r for r in ranks]


def complexity(channels: int) -> torch.Tensor:
    """The published ``complexity`` buffer of a decoder block: its experts' sizes over the largest."""
    sizes = torch.tensor(expert_sizes(channels), dtype=torch.float32)
    return sizes / sizes.max()


def moce_ir_tensor(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The value the README's recipe gives to one published tensor (not the ``complexity`` buffers)."""
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    z = torch.randn(shape, generator=generator, dtype=torch.float32)
    last = name.split(".")[-1]
    if name.startswith("dec.") and name.endswith(".mixer.temperature"):
        return 100 * (1 + 0.1 * z)  # a sharp cross-attention, so that the experts show in the output
    if last == "temperature":
        return 1 + 0.1 * z
    if len(shape) >= 2:
        return z / math.sqrt(math.prod(shape[1:]))
    if last == "weight":
        return 1 + 0.1 * z
    return 0.1 * z


def moce_ir_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """The published MoCE-IR's test weights, in its own names (``moce_ir/`` of the reference folder)."""
    state = {}
    for name, shape in reference_layout(folder, MOCE_IR_TABLE):
        if name.endswith(".complexity"):
            # Not random: the block's channels, read from its layer norm (listed before it), fix the values.
            channels = int(state[name.replace("adapter.routing.complexity", "norms.0.body.weight")].numel())
            state[name] = complexity(channels)
        else:
            state[name] = moce_ir_tensor(name, shape)
    return state
