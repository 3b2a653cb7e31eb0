"""Loading checkpoints of the published networks: PIP-Restormer, PromptIR, AdaIR and MoCE-IR.

Each published network and one registered model of ours compute the same function: the published PIP-Restormer
(longzilicart/pip_universal, ``PIPNet_Restormer_onskip_inter``) and ``pip_restormer``, PromptIR (va1shn9v/PromptIR,
``PromptIR(decoder=True)``) and ``promptir``, AdaIR (c-yn/AdaIR, ``AdaIR(decoder=True)``) and ``adair``, MoCE-IR
(eduardzamfir/MoCE-IR, ``MoCEIR`` as ``--model MoCE_IR`` builds it) and ``moce_ir`` (``moce_ir_s`` at width 32); only
parameter names and a few shapes differ. This module recognises which one a state dict is (:data:`PUBLISHED_NETWORKS`,
each by a key only it has), translates it into ours and loads it, so the released checkpoints load: a bare state dict
(``torch.save(model.state_dict())``), one saved from DistributedDataParallel (``module.``), or a PyTorch Lightning
file (PromptIR's, AdaIR's and MoCE-IR's: weights under ``state_dict``, keys ``net.``), always with
``torch.load(..., weights_only=True)``, so a file can run no code.
:func:`load_model_or_published` reads a file that is either one of those or a model file of this project, which is
what the restore command and the evaluate stage take.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from os import PathLike
from typing import Any

import torch
from torch import nn

from pip_model.networks.checkpoints import is_model_content, model_from_content, safe_load
from pip_model.networks.registry import build_model
from pip_model.networks.restormer import Restormer

# Renames shared by the Restormer-family published networks, applied after each network's own.
_RESTORMER_RENAMES: tuple[tuple[str, str], ...] = (
    (r"\.body\.(weight|bias)$", r".\1"),  # LayerNorm wrappers
    (r"^patch_embed\.proj\.", "patch_embed."),
    (r"^((?:down|up)\d_\d)\.body\.0\.", r"\1.conv."),
)
# Prefixes of a saved network inside its trainer: DistributedDataParallel's, and the LightningModule's attribute.
_WRAPPER_PREFIXES = ("module.", "net.")


@dataclass(frozen=True)
class PublishedNetwork:
    """How one published network's state dict maps onto a registered model of ours.

    Attributes:
        name: the network as its paper names it (and the paper tables' rows).
        model_name: the registry name of our model with the same function.
        marker: a key only this network's state dict has (how a checkpoint is recognised).
        unused: keys of layers its forward pass never uses; their weights are dropped (None: every key is used).
        renames: ordered (pattern, replacement) rules from a published key to ours.
        width: channels of its first level (``patch_embed``'s output): tells a light variant from the full network
            whose keys it shares (MoCE-IR-S from MoCE-IR).
    """

    name: str
    model_name: str
    marker: str
    unused: re.Pattern[str] | None
    renames: tuple[tuple[str, str], ...]
    width: int = 48

    @property
    def title(self) -> str:
        """The network in messages: ``the published PromptIR``."""
        return f"the published {self.name}"

    def our_key(self, key: str) -> str:
        """Our parameter name for a published one."""
        for pattern, replacement in self.renames + _RESTORMER_RENAMES:
            key = re.sub(pattern, replacement, key)
        return key


PIP_RESTORMER = PublishedNetwork(
    name="PIP-Restormer",
    model_name="pip_restormer",
    marker="prompt1.detask_prompt_param",
    unused=re.compile(r"^reduce_noise_channel_\d+\.weight$"),
    renames=(
        (r"^prompt(\d)\.detask_prompt_param$", r"pip.level\1.prompt.degradation_prompt.bank"),
        (r"^prompt(\d)\.low_prompt_param$", r"pip.level\1.prompt.basic_prompt.prompt"),
        (r"^prompt(\d)\.LGM\.", r"pip.level\1.prompt.prompt_to_prompt."),
        (r"^prompt(\d)\.outconv\.", r"pip.level\1.prompt.out_conv."),
        (r"^low_prompt_interaction_level(\d)\.prompt_transformer_cross\.", r"pip.level\1.prompt_to_feature."),
        (r"^(pip\..*)\.norm11\.", r"\1.norm_query."),
        (r"^(pip\..*)\.norm12\.", r"\1.norm_context."),
        (r"^(pip\..*)\.norm2\.", r"\1.norm_ffn."),
        (r"^chnl_reduce3\.", "latent_reduce."),
    ),
)

PROMPTIR = PublishedNetwork(
    name="PromptIR",
    model_name="promptir",
    marker="noise_level1.attn.qkv.weight",
    # Built by its constructor, never called by its forward pass.
    unused=re.compile(r"^(chnl_reduce|reduce_noise_channel_)\d+\.weight$"),
    renames=(
        (r"^prompt(\d)\.prompt_param$", r"decoder_prompts.level\1.generate.bank"),
        (r"^prompt(\d)\.linear_layer\.", r"decoder_prompts.level\1.generate.weights."),
        (r"^prompt(\d)\.conv3x3\.", r"decoder_prompts.level\1.generate.conv."),
        (r"^noise_level(\d)\.", r"decoder_prompts.level\1.fuse."),
        (r"^reduce_noise_level(\d)\.", r"decoder_prompts.level\1.reduce."),
    ),
)

ADAIR = PublishedNetwork(
    name="AdaIR",
    model_name="adair",
    marker="fre1.rate_conv.0.weight",
    # Built by its frequency modules, never called by their forward pass.
    unused=re.compile(r"^fre\d\.(conv\.weight|score_gen\.(weight|bias))$"),
    renames=(
        # The published channel_cross_l attends the *high* band and channel_cross_h the low one.
        (r"^(fre\d)\.channel_cross_l\.", r"\1.high_attention."),
        (r"^(fre\d)\.channel_cross_h\.", r"\1.low_attention."),
        (r"^(fre\d)\.channel_cross_agg\.", r"\1.mix_attention."),
        (r"^(fre\d)\.frequency_refine\.SpatialGate\.spatial\.", r"\1.frequency_refine.spatial_gate."),
        (r"^(fre\d)\.frequency_refine\.ChannelGate\.mlp\.", r"\1.frequency_refine.channel_gate."),
    ),
)

MOCE_IR = PublishedNetwork(
    name="MoCE-IR",
    model_name="moce_ir",
    marker="freq_embed.mlp.0.weight",
    unused=None,  # every parameter is used; the experts' complexity buffers load as ours
    renames=(
        (r"^enc\.(\d+)\.0\.layers\.(\d+)\.", r"encoder.\1.\2."),
        (r"^enc\.(\d+)\.1\.body\.0\.", r"downsample.\1.conv."),
        (r"^(latent|refinement)\.layers\.(\d+)\.", r"\1.\2."),
        (r"^((?:encoder\.\d+|latent|refinement)\.\d+)\.mixer\.", r"\1.attn."),
        (r"\.norms\.0\.", ".norm1."),
        (r"\.norms\.1\.", ".norm2."),
        (r"^dec\.(\d+)\.0\.body\.0\.", r"decoder.\1.upsample.conv."),
        (r"^dec\.(\d+)\.1\.", r"decoder.\1.fuse."),
        (r"^dec\.(\d+)\.2\.layers\.(\d+)\.", r"decoder.\1.blocks.\2."),
        (r"\.experts\.(\d+)\.0\.proj\.0\.", r".experts.\1.project_in."),
        (r"\.experts\.(\d+)\.0\.proj\.1\.", r".experts.\1.project_gate."),
        (r"\.experts\.(\d+)\.0\.proj\.2\.", r".experts.\1.project_out."),
        (r"\.experts\.(\d+)\.0\.body\.proj_out\.", r".experts.\1.attention.project_out."),
        (r"\.experts\.(\d+)\.0\.body\.", r".experts.\1.attention."),
        (r"(\.blocks\.\d+)\.proj\.0\.", r"\1.to_shared."),
        (r"(\.blocks\.\d+)\.proj\.1\.", r"\1.to_adapter."),
        (r"\.adapter\.proj_out\.", ".adapter.project_out."),
        (r"\.adapter\.routing\.gate\.2\.", ".adapter.router.gate."),
        (r"\.adapter\.routing\.freq_gate\.", ".adapter.router.frequency_gate."),
        (r"\.adapter\.routing\.complexity$", ".adapter.router.complexity"),
        (r"^freq_embed\.high_conv\.0\.conv\.", "frequency.high_pass."),
        (r"^freq_embed\.mlp\.", "frequency.mlp."),
    ),
)
# The light model (--model MoCE_IR_S): the same keys at width 32.
MOCE_IR_S = replace(MOCE_IR, name="MoCE-IR-S", model_name="moce_ir_s", width=32)

PUBLISHED_NETWORKS = (PIP_RESTORMER, PROMPTIR, ADAIR, MOCE_IR, MOCE_IR_S)

# The published top-m attention keeps its four mixing weights as attn1..attn4.
SELECTION_WEIGHT = re.compile(r"^(.*\.attn)\.attn([1-4])$")


class ReferenceCheckpointError(ValueError):
    """A state dict that does not fit a published network."""


class NotPublishedError(ReferenceCheckpointError):
    """Content that is no published checkpoint at all, rather than a near miss; ``reason`` says what it holds."""

    def __init__(self, reason: str) -> None:
        names = ", ".join(network.name for network in PUBLISHED_NETWORKS)
        super().__init__(f"not a checkpoint of a published network ({names}): {reason}")
        self.reason = reason


def _unwrap(source: Any) -> Any:
    """The state dict inside a trainer's checkpoint (Lightning's ``state_dict``, or ``model``/``net``)."""
    for wrapper in ("state_dict", "model", "net"):
        if isinstance(source, Mapping) and wrapper in source and isinstance(source[wrapper], Mapping):
            source = source[wrapper]
    return source


def _strip_prefixes(state: Mapping[str, Any]) -> dict[str, Any]:
    """Drops a wrapper prefix (``module.``, ``net.``) that every key carries."""
    state = dict(state)
    for prefix in _WRAPPER_PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key.removeprefix(prefix): value for key, value in state.items()}
    return state


def _read_state_dict(source: Mapping[str, torch.Tensor] | str | PathLike) -> dict[str, torch.Tensor]:
    if isinstance(source, (str, PathLike)):
        try:
            source = safe_load(source)
        except ValueError as error:
            raise ReferenceCheckpointError(str(error)) from error
    if is_model_content(source):  # its weights would pass for a state dict, and fit neither network
        raise ReferenceCheckpointError(f"a model file of this project ({source.get('model_name', '?')}), not a "
                                       "published checkpoint: load it with load_model_file")
    source = _unwrap(source)
    if not isinstance(source, Mapping):
        raise NotPublishedError(f"expected a state dict (a mapping of names to tensors), got {type(source).__name__}")
    not_tensors = [key for key, value in source.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise NotPublishedError(f"expected a state dict (a mapping of names to tensors); {not_tensors[0]!r} "
                                f"holds {type(source[not_tensors[0]]).__name__} ({len(not_tensors)} such entries)")
    return _strip_prefixes(source)


def convert_published_state_dict(
    published: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], network: PublishedNetwork
) -> dict[str, torch.Tensor]:
    """Renames and reshapes a published state dict into the layout of ``target``.

    Args:
        published: the published model's state dict (wrapper prefixes already stripped).
        target: our model's state dict (only names and shapes are read).
        network: which published network ``published`` is.

    Returns:
        A state dict that ``load_state_dict(..., strict=True)`` accepts.

    Raises:
        ReferenceCheckpointError: listing every missing, unexpected or misshapen key.
    """
    converted: dict[str, torch.Tensor] = {}
    selection: dict[str, dict[int, torch.Tensor]] = {}
    unexpected: list[str] = []
    for key, value in published.items():
        if network.unused is not None and network.unused.match(key):
            continue
        ours = network.our_key(key)
        if match := SELECTION_WEIGHT.match(ours):
            selection.setdefault(f"{match[1]}.selection_weights", {})[int(match[2]) - 1] = value.reshape(-1)
        elif ours in target:
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
        lines = [f"the state dict does not fit {network.title} ({network.model_name}):"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)):
            if keys:
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(keys))
        raise ReferenceCheckpointError("\n".join(lines))
    return converted


def recognise(state: Mapping[str, torch.Tensor]) -> PublishedNetwork:
    """Which published network a state dict (prefixes stripped) holds, from a key only it has (and, between a light
    variant and its full network, the width of ``patch_embed``).

    Raises:
        NotPublishedError: it is none; the message says what it holds.
    """
    candidates = [network for network in PUBLISHED_NETWORKS if network.marker in state]
    if candidates:
        first = state.get("patch_embed.proj.weight")
        width = first.shape[0] if isinstance(first, torch.Tensor) and first.dim() else None
        return next((network for network in candidates if network.width == width), candidates[0])
    markers = dict.fromkeys(network.marker for network in PUBLISHED_NETWORKS)
    sample = ", ".join(list(state)[:3]) or "no tensors"
    raise NotPublishedError(f"it has no {' and no '.join(repr(marker) for marker in markers)} "
                            f"({len(state)} tensors: {sample}...)")


def _build(state: Mapping[str, torch.Tensor], network: PublishedNetwork, **overrides: Any) -> nn.Module:
    """Our model of ``network`` (constructor arguments replaced by ``overrides``) with a published state dict's
    weights, in eval mode."""
    model = build_model(network.model_name, **overrides)
    model.load_state_dict(convert_published_state_dict(state, model.state_dict(), network), strict=True)
    return model.eval()


def load_published(
    source: Mapping[str, Any] | str | PathLike, *, expect: str | None = None, **overrides: Any
) -> tuple[nn.Module, PublishedNetwork]:
    """Builds our model of a published checkpoint, whichever published network it holds.

    Args:
        source: a state dict, a trainer checkpoint holding one (a Lightning file), or the path of a file holding
            either (read with ``torch.load(..., weights_only=True)``, so the file can run no code).
        expect: a registry name (``pip_restormer``, ``promptir``, ``adair``, ``moce_ir``) the checkpoint must be.
        overrides: constructor arguments of our model that change no weight, such as ``routing="published"`` for
            MoCE-IR's published evaluation (noisy, and coupling the images of a batch).

    Returns:
        The model in eval mode, and which published network it was.

    Raises:
        ReferenceCheckpointError: the file or dict fits none (or not ``expect``); the
            message says why, with the keys that do not fit.
    """
    try:
        state = _read_state_dict(source)
        network = recognise(state)
        if expect is not None and network.model_name != expect:
            raise ReferenceCheckpointError(f"expected a checkpoint of {expect}, found one of {network.title} "
                                           f"({network.model_name})")
        model = _build(state, network, **overrides)
    except ReferenceCheckpointError as error:
        if isinstance(source, (str, PathLike)) and not str(error).startswith(str(source)):
            raise ReferenceCheckpointError(f"{source}: {error}") from None
        raise
    return model, network


def load_model_or_published(path: str | PathLike, *, expect: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A model file of this project or a published checkpoint, read once (published checkpoints are large).

    Args:
        path: the file (read with ``torch.load(..., weights_only=True)``).
        expect: a registry name the file must hold (``promptir``): a check that the file is what it was said to be.
            For a model that is no published network (a plug-in's), the file is that model's weights: a state
            dict, bare or in a trainer's checkpoint.

    Returns:
        The model in eval mode, and its metadata: ``model_name`` (the registry name), and for a published
        checkpoint ``published`` (the network's name, ``PromptIR``), for a model file its own (``run_id``, ``step``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is neither, or holds another model than ``expect``; one line, and the keys that do not
            fit when it nearly is a published checkpoint.
    """
    content = safe_load(path)
    if is_model_content(content):
        model, metadata = model_from_content(content, path)
    elif expect is not None and expect not in {network.model_name for network in PUBLISHED_NETWORKS}:
        model, metadata = load_weights_into(expect, content, path), {"model_name": expect, "weights": str(path)}
    else:
        try:
            model, network = load_published(content)
        except NotPublishedError as error:
            names = ", ".join(network.name for network in PUBLISHED_NETWORKS)
            raise ReferenceCheckpointError(f"{path} is neither a model file of this project nor a published "
                                           f"checkpoint ({names}): {error.reason}") from None
        except ReferenceCheckpointError as error:  # a near miss: the keys that do not fit
            raise ReferenceCheckpointError(f"{path}: {error}") from None
        metadata = {"model_name": network.model_name, "published": network.name}
    if expect is not None and metadata["model_name"] != expect:
        raise ValueError(f"{path}: expected {expect}, but it holds {metadata['model_name']}")
    return model, metadata


def load_weights_into(name: str, content: Any, path: str | PathLike) -> nn.Module:
    """The registered model ``name`` with the weights of ``content`` (read from ``path``): a state dict, bare or in
    a trainer's checkpoint, wrapper prefixes stripped.

    Raises:
        ReferenceCheckpointError: the weights do not fit the model (naming the first keys that differ).
    """
    try:
        state = _read_state_dict(content)
    except ReferenceCheckpointError as error:
        raise ReferenceCheckpointError(f"{path}: {error}") from None
    model = build_model(name)
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    found = {key: tuple(value.shape) for key, value in state.items()}
    if found != expected:
        differ = sorted(key for key in expected.keys() | found.keys() if expected.get(key) != found.get(key))
        raise ReferenceCheckpointError(
            f"{path}: its weights do not fit {name}: {len(differ)} tensors differ, e.g. "
            + ", ".join(f"{key} ({found.get(key, 'missing')} in the file, {expected.get(key, 'absent')} here)"
                        for key in differ[:3]))
    model.load_state_dict(state)
    return model.eval()


def describe_metadata(metadata: Mapping[str, Any]) -> str:
    """:func:`load_model_or_published`'s metadata in words: ``published PromptIR checkpoint``, ``pip_restormer,
    step 1000``."""
    if "published" in metadata:
        return f"published {metadata['published']} checkpoint"
    return f"{metadata['model_name']}, step {metadata.get('step', '?')}"


def load_reference(source: Mapping[str, torch.Tensor] | str | PathLike) -> Restormer:
    """Builds our ``pip_restormer`` with the weights of a published PIP-Restormer checkpoint.

    Args:
        source: a state dict saved by the published implementation, or the path of a
            file holding one (read with ``torch.load(..., weights_only=True)``).

    Returns:
        The model in eval mode.

    Raises:
        ReferenceCheckpointError: the file or dict does not fit; the message lists the keys.
    """
    return _build(_read_state_dict(source), PIP_RESTORMER)
