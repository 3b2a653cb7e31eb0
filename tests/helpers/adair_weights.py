"""The published AdaIR's test weights.

``adair/README.md`` of the reference folder says how each published tensor was filled before the reference outputs
were recorded: PIP-Restormer's recipe (:func:`tests.helpers.reference_weights.reference_tensor`), except the
frequency blocks' per-channel scales ``para1``/``para2``, which are filled like a temperature.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import torch

from tests.helpers.reference_weights import reference_layout, reference_tensor

ADAIR_TABLE = "adair/adair_state_dict.tsv"


def adair_tensor(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The value the AdaIR README's recipe gives to one published tensor."""
    if name.split(".")[-1] in ("para1", "para2"):
        generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        return 1 + 0.1 * torch.randn(shape, generator=generator, dtype=torch.float32)
    return reference_tensor(name, shape)


def adair_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """The published AdaIR's test weights, keyed and ordered as its ``state_dict()``."""
    return {name: adair_tensor(name, shape) for name, shape in reference_layout(folder, ADAIR_TABLE)}
