"""Loading checkpoints of the published PIP-Restormer (longzilicart/pip_universal).

The published model (``PIPNet_Restormer_onskip_inter``) and our ``pip_restormer``
compute the same function; only parameter names and a few shapes differ. This module
translates the published state dict into ours, so published checkpoints load.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike

import torch

from pip_model.networks.checkpoints import safe_load
from pip_model.networks.registry import build_model
from pip_model.networks.restormer import Restormer

# Published layers that its forward pass never uses; their weights are dropped.
UNUSED_REFERENCE_KEYS = re.compile(r"^reduce_noise_channel_\d+\.weight$")

# Ordered (pattern, replacement) rules from a published key to ours.
KEY_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^module\.", ""),  # saved from DistributedDataParallel
    (r"^prompt(\d)\.detask_prompt_param$", r"pip.level\1.prompt.degradation_prompt.bank"),
    (r"^prompt(\d)\.low_prompt_param$", r"pip.level\1.prompt.basic_prompt.prompt"),
    (r"^prompt(\d)\.LGM\.", r"pip.level\1.prompt.prompt_to_prompt."),
    (r"^prompt(\d)\.outconv\.", r"pip.level\1.prompt.out_conv."),
    (r"^low_prompt_interaction_level(\d)\.prompt_transformer_cross\.", r"pip.level\1.prompt_to_feature."),
    (r"^(pip\..*)\.norm11\.", r"\1.norm_query."),
    (r"^(pip\..*)\.norm12\.", r"\1.norm_context."),
    (r"^(pip\..*)\.norm2\.", r"\1.norm_ffn."),
    (r"\.body\.(weight|bias)$", r".\1"),  # LayerNorm wrappers
    (r"^patch_embed\.proj\.", "patch_embed."),
    (r"^((?:down|up)\d_\d)\.body\.0\.", r"\1.conv."),
    (r"^chnl_reduce3\.", "latent_reduce."),
)
# The published top-m attention keeps its four mixing weights as attn1..attn4.
SELECTION_WEIGHT = re.compile(r"^(.*\.attn)\.attn([1-4])$")


class ReferenceCheckpointError(ValueError):
    """A state dict that does not fit the published PIP-Restormer."""


def reference_key(key: str) -> str:
    """Our parameter name for a published one (``attn1``..``attn4`` are handled apart)."""
    for pattern, replacement in KEY_RENAMES:
        key = re.sub(pattern, replacement, key)
    return key


def _read_state_dict(source: Mapping[str, torch.Tensor] | str | PathLike) -> Mapping[str, torch.Tensor]:
    if isinstance(source, (str, PathLike)):
        try:
            source = safe_load(source)
        except ValueError as error:
            raise ReferenceCheckpointError(str(error)) from error
    for wrapper in ("state_dict", "model", "net"):
        if isinstance(source, Mapping) and wrapper in source and isinstance(source[wrapper], Mapping):
            source = source[wrapper]
    if not isinstance(source, Mapping):
        raise ReferenceCheckpointError(f"expected a state dict (a mapping of names to tensors), got {type(source).__name__}")
    not_tensors = [key for key, value in source.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise ReferenceCheckpointError(f"expected a state dict (a mapping of names to tensors); {not_tensors[0]!r} "
                                       f"holds {type(source[not_tensors[0]]).__name__} ({len(not_tensors)} such entries)")
    return source


def convert_reference_state_dict(
    reference: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Renames and reshapes a published state dict into the layout of ``target``.

    Args:
        reference: the published model's state dict.
        target: our model's state dict (only names and shapes are read).

    Returns:
        A state dict that ``load_state_dict(..., strict=True)`` accepts.

    Raises:
        ReferenceCheckpointError: listing every missing, unexpected or misshapen key.
    """
    converted: dict[str, torch.Tensor] = {}
    selection: dict[str, dict[int, torch.Tensor]] = {}
    unexpected: list[str] = []
    for key, value in reference.items():
        if UNUSED_REFERENCE_KEYS.match(key.removeprefix("module.")):
            continue
        if match := SELECTION_WEIGHT.match(reference_key(key)):
            selection.setdefault(f"{match[1]}.selection_weights", {})[int(match[2]) - 1] = value.reshape(-1)
            continue
        ours = reference_key(key)
        if ours in target:
            converted[ours] = value
        else:
            unexpected.append(key)
    for ours, parts in selection.items():
        if ours in target and sorted(parts) == [0, 1, 2, 3]:
            converted[ours] = torch.cat([parts[i] for i in range(4)])
        else:
            unexpected.append(f"{ours.removesuffix('.selection_weights')}.attn1..attn4")

    misshapen = []
    for key, value in converted.items():
        expected = target[key].shape
        if value.numel() != expected.numel():
            misshapen.append(f"{key}: got {tuple(value.shape)}, expected {tuple(expected)}")
        else:
            converted[key] = value.reshape(expected)
    missing = sorted(set(target) - set(converted))
    if missing or unexpected or misshapen:
        lines = ["the state dict does not fit the published PIP-Restormer (pip_restormer):"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)):
            if keys:
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(keys))
        raise ReferenceCheckpointError("\n".join(lines))
    return converted


def load_reference(source: Mapping[str, torch.Tensor] | str | PathLike) -> Restormer:
    """Builds our ``pip_restormer`` with the weights of a published checkpoint.

    Args:
        source: a state dict saved by the published implementation, or the path of a
            file holding one (read with ``torch.load(..., weights_only=True)``).

    Returns:
        The model in eval mode.

    Raises:
        ReferenceCheckpointError: the file or dict does not fit; the message lists the keys.
    """
    model = build_model("pip_restormer")
    state = convert_reference_state_dict(_read_state_dict(source), model.state_dict())
    model.load_state_dict(state, strict=True)
    return model.eval()
