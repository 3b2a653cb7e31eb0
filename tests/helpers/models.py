"""Networks prepared for tests."""

from __future__ import annotations

import torch


def randomise_output(model: torch.nn.Module) -> torch.nn.Module:
    """New restorers start as the identity (zero output conv); a random output layer shows what the body computes,
    so a test never compares the identity with itself."""
    for name in ("output", "ending"):
        if hasattr(model, name):
            torch.nn.init.normal_(getattr(model, name).weight, std=0.05)
    return model
