"""Named model variants: each a small factory that fixes a constructor's arguments, and a spec that says what the
model is.

``build_model(name, **overrides)`` builds one; keyword overrides replace the variant's arguments
(``build_model("pip_restormer_tiny", dim=24)``). A model's identity lives in its :class:`ModelSpec` and nowhere
else: its role (PIP on a backbone, a plain backbone, an all-in-one peer, a task expert, the sensor), how it is
called (prompted by task, blind, or non-blind with the task's parameters), the tasks it covers, its published name,
source and colour. Colours, report order, the seeds study, ``prompt-restore``, serving and training read the spec;
nothing reads a model's name.

The built-in registry is the explicit dictionary :data:`MODELS`; nothing registers itself on import. Models of other
packages arrive as plug-ins, the only ways code enters the registry. An installed package declares its models in the
entry-point group ``pip_model.models`` of its ``pyproject.toml``::

    [project.entry-points."pip_model.models"]
    my_unet = "my_backbone.models:unet_models"      # a mapping {name: ModelSpec}, or a callable returning one
    my_denoiser = "my_backbone.models:DENOISER"     # a ModelSpec, registered under the entry point's name

For a quick try without a package, ``params.yaml: registry.plugins`` (or a command's ``--plugin``) names
``module:attribute`` references to the same kinds of objects (a bare ModelSpec under the attribute's name). Both are
code the user chose to run. Nothing else imports: a name read from a model file, a checkpoint or a request is only
ever looked up among the registered models (:func:`model_spec`).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from pip_model.config import load_section
from pip_model.networks.adair import AdaIR
from pip_model.networks.moce_ir import MoCEIR
from pip_model.networks.nafnet import NAFNet
from pip_model.networks.pip import PIPConfig
from pip_model.networks.prompt_generation import DecoderPromptConfig
from pip_model.networks.restormer import Restormer
from pip_model.networks.sensor import DegradationSensor
from pip_model.tasks import PAPER_CLASSES, TASK_PARAMETERS, check_classes, covers, parse_task, task_prompt

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


def pip_restormer(*, num_classes: int = PAPER_PIP.num_classes, **overrides: Any) -> Restormer:
    """The published PIP-Restormer: 27,316,614 parameters (with the paper's five prompt classes)."""
    return Restormer(**{"pip": replace(PAPER_PIP, num_classes=num_classes), **overrides})


def restormer_tiny(**overrides: Any) -> Restormer:
    """A Restormer of width 16 with one block per level, for CPU runs."""
    arguments = dict(dim=16, num_blocks=(1, 1, 1, 2), num_refinement_blocks=1, heads=(1, 2, 4, 8))
    return Restormer(**{**arguments, **overrides})


def pip_restormer_tiny(*, num_classes: int = TINY_PIP.num_classes, **overrides: Any) -> Restormer:
    """:func:`restormer_tiny` with small prompts on all three skips."""
    return restormer_tiny(**{"pip": replace(TINY_PIP, num_classes=num_classes), **overrides})


def promptir(**overrides: Any) -> Restormer:
    """The published PromptIR (``PromptIR(decoder=True)``): 35,376,967 parameters, blind."""
    return Restormer(**{"decoder_prompts": PAPER_PROMPTIR, **overrides})


def promptir_tiny(**overrides: Any) -> Restormer:
    """:func:`restormer_tiny` with small PromptIR decoder prompts: 1,309,124 parameters, blind."""
    return restormer_tiny(**{"decoder_prompts": TINY_PROMPTIR, **overrides})


def adair(**overrides: Any) -> AdaIR:
    """The published AdaIR (``AdaIR(decoder=True)``): 28,766,086 parameters, blind."""
    return AdaIR(**overrides)


def adair_tiny(**overrides: Any) -> AdaIR:
    """AdaIR at :func:`restormer_tiny`'s size: 1,316,917 parameters, blind."""
    arguments = dict(dim=16, num_blocks=(1, 1, 1, 2), num_refinement_blocks=1, heads=(1, 2, 4, 8))
    return AdaIR(**{**arguments, **overrides})


def moce_ir(**overrides: Any) -> MoCEIR:
    """The published MoCE-IR (``--model MoCE_IR``): 25,353,796 parameters, blind, per-image routing."""
    return MoCEIR(**overrides)


def moce_ir_s(**overrides: Any) -> MoCEIR:
    """The published light MoCE-IR-S (``--model MoCE_IR_S``, width 32): 11,477,752 parameters, blind."""
    return MoCEIR(**{"dim": 32, **overrides})


def moce_ir_tiny(**overrides: Any) -> MoCEIR:
    """A three-level MoCE-IR of width 16 with four experts per decoder block, for CPU runs: 328,220 parameters."""
    arguments = dict(dim=16, num_blocks=(1, 1, 2), num_dec_blocks=(1, 2), heads=(1, 2, 4), num_refinement_blocks=1)
    return MoCEIR(**{**arguments, **overrides})


def nafnet(**overrides: Any) -> NAFNet:
    """NAFNet of width 32 (the paper's denoising size), no prompts."""
    return NAFNet(**overrides)


def pip_nafnet(*, num_classes: int = PAPER_PIP.num_classes, **overrides: Any) -> NAFNet:
    """NAFNet with PIP on its three upper skips, prompts sized as PIP-Restormer's."""
    return NAFNet(**{"pip": replace(PAPER_PIP, num_classes=num_classes), **overrides})


def nafnet_tiny(**overrides: Any) -> NAFNet:
    """A three-level NAFNet of width 24 with one block per level, for CPU runs."""
    arguments = dict(width=24, encoder_blocks=(1, 1, 1), middle_blocks=1, decoder_blocks=(1, 1, 1))
    return NAFNet(**{**arguments, **overrides})


def pip_nafnet_tiny(*, num_classes: int = TINY_PIP.num_classes, **overrides: Any) -> NAFNet:
    """:func:`nafnet_tiny` with small prompts on its three upper skips."""
    return nafnet_tiny(**{"pip": replace(TINY_PIP, num_classes=num_classes), **overrides})


def sensor(**overrides: Any) -> DegradationSensor:
    """The degradation classifier at full width."""
    return DegradationSensor(**overrides)


def sensor_tiny(**overrides: Any) -> DegradationSensor:
    """A narrow degradation classifier for CPU runs."""
    return DegradationSensor(**{"widths": (16, 32, 64), **overrides})


Role = Literal["pip", "peer", "plain", "expert", "sensor"]
ROLES: tuple[str, ...] = ("pip", "peer", "plain", "expert", "sensor")  # the report's order of models
Call = Literal["prompted", "blind", "non_blind"]
# What a model's call takes besides the images: None, prompt weights (B, classes), or named task parameters.
Steering = torch.Tensor | dict[str, torch.Tensor] | None


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A registered model: its factory and what it is.

    Attributes:
        factory: builds the network; keyword arguments override the variant's.
        role: ``pip`` (PIP on a backbone), ``plain`` (a backbone without prompts), ``peer`` (another all-in-one
            restorer), ``expert`` (a task-specific restorer) or ``sensor`` (the degradation classifier).
        call: ``prompted`` (``model(images, prompt_weights)``), ``blind`` (``model(images)``) or ``non_blind``
            (``model(images, **parameters)``, the task's parameters named in ``conditions``, such as the noise
            ``sigma``).
        tasks: the tasks it restores; empty for all. An expert is trained and scored on these only.
        classes: the prompt classes it is built with (a prompted model's prompt bank, the sensor's scores): the
            paper's five by default; training on a task of another class adds that class to the model it builds
            (:func:`pip_model.tasks.classes_for`), and the model file keeps them. A factory of a prompted model or a
            sensor takes ``num_classes`` for that.
        conditions: for ``non_blind``, the task parameters it takes (:data:`pip_model.tasks.TASK_PARAMETERS`).
        backbone: for ``pip``, the registry name of the plain backbone it is built on (its rival at equal budget).
        peers: registry names of the all-in-one peers a PIP model is compared with, beside its backbone.
        published: the method's name in published tables (``PromptIR``), or "" when it has none.
        source: where the method is published (paper or code), or "".
        colour: its colour in every chart (``#rrggbb``); "" picks one of its role's palette.
        origin: where the factory comes from: ``pip_model``, or the plug-in that brought it.
    """

    factory: Callable[..., nn.Module]
    role: Role
    call: Call = "blind"
    tasks: tuple[str, ...] = ()
    classes: tuple[str, ...] = PAPER_CLASSES
    conditions: tuple[str, ...] = ()
    backbone: str = ""
    peers: tuple[str, ...] = ()
    published: str = ""
    source: str = ""
    colour: str = ""
    origin: str = "pip_model"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")
        if self.call not in ("prompted", "blind", "non_blind"):
            raise ValueError(f"call must be prompted, blind or non_blind, got {self.call!r}")
        if not callable(self.factory):
            raise ValueError(f"factory must be callable, got {self.factory!r}")
        for task in self.tasks:
            parse_task(task)  # an unknown name is said so
        check_classes(self.classes)
        if self.call == "non_blind":
            if not self.conditions or not self.tasks:
                raise ValueError("a non_blind model names the task parameters it takes (conditions=('sigma',)) and "
                                 "the tasks it covers")
            lacking = [task for task in self.tasks for name in self.conditions
                       if name not in TASK_PARAMETERS.get(task, {})]
            if lacking:
                raise ValueError(f"tasks {sorted(set(lacking))} have no parameter among {list(self.conditions)} "
                                 f"(known: {TASK_PARAMETERS})")
        if self.colour and not (len(self.colour) == 7 and self.colour.startswith("#")):
            raise ValueError(f"colour must be #rrggbb, got {self.colour!r}")

    @property
    def kind(self) -> Literal["restorer", "sensor"]:
        return "sensor" if self.role == "sensor" else "restorer"

    @property
    def uses_prompts(self) -> bool:
        """Whether the model takes prompt weights."""
        return self.call == "prompted"

    @property
    def has_classes(self) -> bool:
        """Whether the model's shape depends on its prompt classes (a prompted model's bank, a sensor's scores)."""
        return self.call == "prompted" or self.role == "sensor"

    def covers(self, task: str) -> bool:
        """Whether the model restores ``task`` (a composite: every one of its single tasks)."""
        return covers(self.tasks, task)

    def rivals(self, names: Iterable[str]) -> list[str]:
        """What a PIP model is measured against, those of ``names`` present: its backbone, then its peers."""
        names = set(names)
        return [name for name in (self.backbone, *self.peers) if name and name in names]

    def steering(self, tasks: Sequence[str], prompts: torch.Tensor | None = None, *,
                 classes: Sequence[str] | None = None) -> Steering:
        """What the call takes besides a batch of images of ``tasks``: the prompt weights for a prompted model
        (``prompts``, else each task's true prompt over ``classes``, the built model's, by default the spec's),
        the tasks' parameters for a non-blind one, else None.

        Raises:
            ValueError: a non-blind model given a task it does not cover; a task of a class the model lacks.

        Shape:
            prompts: (B, C) -> (B, C) with C = len(classes), or {name: (B,)}
        """
        if self.call == "prompted":
            if prompts is not None:
                return prompts
            return torch.stack([task_prompt(task, classes or self.classes) for task in tasks])
        if self.call == "non_blind":
            return {name: torch.tensor([task_parameter(task, name) for task in tasks]) for name in self.conditions}
        return None


def task_parameter(task: str, name: str) -> float:
    """A task's parameter on the [0, 1] pixel scale (``sigma`` of ``denoise_25``: 25 / 255).

    Raises:
        ValueError: the task has no such parameter.
    """
    try:
        return TASK_PARAMETERS[task][name]
    except KeyError:
        raise ValueError(f"task {task!r} has no parameter {name!r} (known: {TASK_PARAMETERS})") from None


def call_model(model: nn.Module, images: torch.Tensor, steering: Steering = None) -> torch.Tensor:
    """The one way a restorer is called: ``model(images)``, ``model(images, prompt)`` or
    ``model(images, **parameters)``, as :meth:`ModelSpec.steering` made ``steering``.

    Shape:
        (B, 3, H, W) -> (B, 3, H, W)
    """
    if steering is None:
        return model(images)
    if isinstance(steering, dict):
        return model(images, **{name: value.to(images.device) for name, value in steering.items()})
    return model(images, steering.to(images.device))


def steering_for(steering: Steering, count: int) -> Steering:
    """One image's steering repeated for ``count`` images (tiles of one image).

    Shape:
        (1, ...) -> (count, ...)
    """
    if steering is None:
        return None
    if isinstance(steering, dict):
        return {name: value.expand(count, *value.shape[1:]) for name, value in steering.items()}
    return steering.expand(count, *steering.shape[1:])


_PIP_TINY_RIVALS = {"peers": ("promptir_tiny", "adair_tiny", "moce_ir_tiny")}
_PIP_RIVALS = {"peers": ("promptir", "adair", "moce_ir")}
_RESTORMER = "https://arxiv.org/abs/2111.09881"
_NAFNET = "https://arxiv.org/abs/2204.04676"
_PIP = "https://github.com/longzilicart/pip_universal (arXiv 2312.05038)"
_PROMPTIR = "https://github.com/va1shn9v/PromptIR (arXiv 2306.13090)"
_MOCE_IR = "https://github.com/eduardzamfir/MoCE-IR (arXiv 2411.18466)"
_ADAIR = "https://github.com/c-yn/AdaIR (arXiv 2403.14614)"

MODELS: dict[str, ModelSpec] = {
    "pip_restormer": ModelSpec(factory=pip_restormer, role="pip", call="prompted", backbone="restormer",
                               published="PIP-Restormer", source=_PIP, colour="#1f77b4", **_PIP_RIVALS),
    "restormer": ModelSpec(factory=restormer, role="plain", published="Restormer", source=_RESTORMER,
                           colour="#ff7f0e"),
    "pip_restormer_tiny": ModelSpec(factory=pip_restormer_tiny, role="pip", call="prompted",
                                    backbone="restormer_tiny", source=_PIP, colour="#1f77b4", **_PIP_TINY_RIVALS),
    "restormer_tiny": ModelSpec(factory=restormer_tiny, role="plain", source=_RESTORMER, colour="#ff7f0e"),
    "promptir": ModelSpec(factory=promptir, role="peer", published="PromptIR", source=_PROMPTIR, colour="#2ca02c"),
    "promptir_tiny": ModelSpec(factory=promptir_tiny, role="peer", source=_PROMPTIR, colour="#2ca02c"),
    "adair": ModelSpec(factory=adair, role="peer", published="AdaIR", source=_ADAIR, colour="#637939"),
    "adair_tiny": ModelSpec(factory=adair_tiny, role="peer", source=_ADAIR, colour="#637939"),
    "moce_ir": ModelSpec(factory=moce_ir, role="peer", published="MoCE-IR", source=_MOCE_IR, colour="#17a589"),
    "moce_ir_s": ModelSpec(factory=moce_ir_s, role="peer", published="MoCE-IR-S", source=_MOCE_IR, colour="#17a589"),
    "moce_ir_tiny": ModelSpec(factory=moce_ir_tiny, role="peer", source=_MOCE_IR, colour="#17a589"),
    "pip_nafnet": ModelSpec(factory=pip_nafnet, role="pip", call="prompted", backbone="nafnet", source=_PIP,
                            colour="#6a3d9a", **_PIP_RIVALS),
    "nafnet": ModelSpec(factory=nafnet, role="plain", published="NAFNet", source=_NAFNET, colour="#d62728"),
    "pip_nafnet_tiny": ModelSpec(factory=pip_nafnet_tiny, role="pip", call="prompted", backbone="nafnet_tiny",
                                 source=_PIP, colour="#6a3d9a", **_PIP_TINY_RIVALS),
    "nafnet_tiny": ModelSpec(factory=nafnet_tiny, role="plain", source=_NAFNET, colour="#d62728"),
    "sensor": ModelSpec(factory=sensor, role="sensor"),
    "sensor_tiny": ModelSpec(factory=sensor_tiny, role="sensor"),
}


def all_models() -> dict[str, ModelSpec]:
    """The built-in models and those plug-ins brought (:func:`plugin_models`)."""
    return {**MODELS, **plugin_models()}


def list_models(kind: Literal["restorer", "sensor"] | None = None) -> list[str]:
    """Names of the registered variants, optionally only restorers or only sensors."""
    return sorted(name for name, spec in all_models().items() if kind is None or spec.kind == kind)


def model_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``; a clear error lists the known names.

    A name is only ever looked up: a name read from a file or a request never imports anything.
    """
    specs = all_models()
    try:
        return specs[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(sorted(specs))} (a model of "
                         "another package is added through its entry point or params.yaml: registry.plugins)"
                         ) from None


def build_model(name: str, *, classes: Sequence[str] | None = None, **overrides: Any) -> nn.Module:
    """Builds the registered variant ``name`` with constructor arguments replaced by ``overrides``; the model
    carries its registry name (``model.registry_name``), by which :func:`spec_of_model` finds its spec, and, for a
    prompted model or a sensor, its prompt classes (``model.classes``: ``classes``, else its spec's)."""
    spec = model_spec(name)
    if classes is not None:
        classes = check_classes(classes)  # a model file's names too: never a class no family defines
    if spec.has_classes and classes is not None and classes != spec.classes:
        overrides = {"num_classes": len(classes), **overrides}
    model = spec.factory(**overrides)
    model.registry_name = name
    if spec.has_classes:
        model.classes = tuple(classes or spec.classes)
    return model


def spec_of_model(model: nn.Module) -> ModelSpec:
    """The spec of a built model (a served model's inner one too); a model without a registry name (pickled by an
    older version) is taken as prompted when it says it uses prompts, else as blind."""
    inner = getattr(model, "model", model)
    name = getattr(inner, "registry_name", None) or getattr(model, "registry_name", None)
    if isinstance(name, str):
        try:
            return model_spec(name)
        except ValueError:
            pass
    prompted = bool(getattr(inner, "uses_prompts", False))
    return ModelSpec(factory=type(inner), role="pip" if prompted else "plain",
                     call="prompted" if prompted else "blind")


def models_with_role(role: Role, specs: Mapping[str, ModelSpec] | None = None) -> list[str]:
    """The registered names of one role, sorted."""
    return sorted(name for name, spec in (specs or all_models()).items() if spec.role == role)


def backbone_models(name: str, factory: Callable[..., nn.Module], *, pip: PIPConfig = TINY_PIP,
                    peers: tuple[str, ...] = (), colour: str = "", pip_colour: str = "", published: str = "",
                    source: str = "") -> dict[str, ModelSpec]:
    """The two models a backbone that keeps the :class:`~pip_model.networks.backbone.EncoderDecoder` protocol is
    compared as: ``name``, the plain backbone, and ``pip_<name>``, PIP on its skips (``pip``: where and how large).
    Both train under the same ``train`` section, so at equal budget.

    Example, in a plug-in package::

        def models():
            return backbone_models("my_unet", MyUNet)
    """
    from pip_model.networks.backbone import PIPOn

    def plain(**overrides: Any) -> nn.Module:
        return PIPOn(backbone=factory(**overrides), pip=None)

    def prompted(*, num_classes: int = pip.num_classes, **overrides: Any) -> nn.Module:
        return PIPOn(backbone=factory(**overrides), pip=replace(pip, num_classes=num_classes))

    plain.__qualname__ = plain.__name__ = name
    prompted.__qualname__ = prompted.__name__ = f"pip_{name}"
    plain.__module__ = prompted.__module__ = getattr(factory, "__module__", __name__)
    return {
        name: ModelSpec(factory=plain, role="plain", published=published, source=source, colour=colour),
        f"pip_{name}": ModelSpec(factory=prompted, role="pip", call="prompted", backbone=name, peers=peers,
                                 source=source, colour=pip_colour),
    }


ENTRY_POINT_GROUP = "pip_model.models"


class PluginError(ValueError):
    """A plug-in that cannot be loaded or registered; the message names it and the reason."""


@dataclass(frozen=True)
class RegistryConfig:
    """``params.yaml: registry``.

    Attributes:
        plugins: ``module:attribute`` references to models of packages that are not installed with an entry point
            (the module must be importable: on ``PYTHONPATH``, or beside ``params.yaml``).
    """

    plugins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = [reference for reference in self.plugins if not _is_reference(reference)]
        if bad:
            raise ValueError(f"registry.plugins: {bad} are not module:attribute references (my_models:MODELS)")


def _is_reference(text: str) -> bool:
    module, sign, attribute = str(text).partition(":")
    return bool(sign and module and attribute and all(part.isidentifier() for part in module.split("."))
                and all(part.isidentifier() for part in attribute.split(".")))


_entry_point_models: dict[str, ModelSpec] | None = None
_added: dict[str, ModelSpec] = {}


def plugin_models() -> dict[str, ModelSpec]:
    """Every model plug-ins brought: the installed entry points' (loaded once) and those :func:`use_plugins` added.

    Raises:
        PluginError: an entry point fails to load, gives something that is not a model, or reuses a name.
    """
    global _entry_point_models
    if _entry_point_models is None:
        found: dict[str, ModelSpec] = {}
        for entry_point in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            distribution = entry_point.dist
            origin = (f"distribution:{distribution.name}=={distribution.version}" if distribution is not None
                      else f"module:{entry_point.module}")
            where = f"entry point {entry_point.name} = {entry_point.value} ({origin.partition(':')[2]})"
            try:
                loaded = entry_point.load()
            except Exception as error:  # any import error of the plug-in's own code
                raise PluginError(f"{where}: cannot be loaded: {type(error).__name__}: {error}") from None
            _merge(found, _specs(loaded, entry_point.name, where, origin), where)
        _entry_point_models = found
    return {**_entry_point_models, **_added}


def _specs(loaded: Any, default_name: str, where: str, origin: str) -> dict[str, ModelSpec]:
    """The named specs an entry point or reference gives: a ModelSpec, a mapping of them, or a callable giving
    either."""
    if callable(loaded) and not isinstance(loaded, ModelSpec):
        try:
            loaded = loaded()
        except Exception as error:
            raise PluginError(f"{where}: calling it failed: {type(error).__name__}: {error}") from None
    specs = {default_name: loaded} if isinstance(loaded, ModelSpec) else loaded
    if not isinstance(specs, Mapping) or not all(isinstance(v, ModelSpec) for v in specs.values()):
        raise PluginError(f"{where}: gives {type(loaded).__name__}, not a ModelSpec or a mapping of names to "
                          "ModelSpecs (see pip_model.networks.registry.ModelSpec)")
    bad = [name for name in specs if not (isinstance(name, str) and name.isidentifier())]
    if bad:
        raise PluginError(f"{where}: model names must be identifiers, got {bad}")
    return {name: dataclasses.replace(spec, origin=origin) for name, spec in specs.items()}


def _merge(into: dict[str, ModelSpec], specs: Mapping[str, ModelSpec], where: str,
           known: Mapping[str, ModelSpec] | None = None) -> None:
    """Adds ``specs`` to ``into``, refusing a built-in name or one another plug-in (in ``known``) registered."""
    known = into if known is None else known
    for name, spec in specs.items():
        if name in MODELS:
            raise PluginError(f"{where}: {name!r} is a built-in model of pip_model; give yours another name")
        if name in known and known[name].origin != spec.origin:
            raise PluginError(f"{where}: {name!r} is registered already by {known[name].origin}; one of the two "
                              "must be renamed")
    into.update(specs)


def use_plugins(references: Iterable[str], *, search: Path | None = None) -> list[str]:
    """Imports each ``module:attribute`` reference and registers its models; returns their names.

    Args:
        references: what ``params.yaml: registry.plugins`` or ``--plugin`` named.
        search: a folder to import from besides ``sys.path`` (the pipeline's root, for a module beside
            ``params.yaml``).

    Raises:
        PluginError: naming the reference and what went wrong.
    """
    names: list[str] = []
    for reference in references:
        if not _is_reference(reference):
            raise PluginError(f"plug-in {reference!r}: expected module:attribute (my_models:MODELS)")
        module_name, _, attribute = reference.partition(":")
        if search is not None and str(search) not in sys.path:
            sys.path.append(str(search))
        try:
            loaded: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                loaded = getattr(loaded, part)
        except Exception as error:
            raise PluginError(f"plug-in {reference}: cannot be loaded: {type(error).__name__}: {error}") from None
        specs = _specs(loaded, attribute.rsplit(".", 1)[-1], f"plug-in {reference}", f"module:{module_name}")
        _merge(_added, specs, f"plug-in {reference}", known=plugin_models())
        names += list(specs)
    return names


def use_configured_plugins(params_path: str | Path = "params.yaml") -> list[str]:
    """Registers the plug-ins ``params.yaml: registry.plugins`` names (importing from beside it too)."""
    config = load_section(RegistryConfig, "registry", params_path)
    return use_plugins(config.plugins, search=Path(params_path).resolve().parent) if config.plugins else []


def distribution_of(spec: ModelSpec) -> str:
    """``name==version`` of the installed package a plug-in model comes from, or "" when it is not one."""
    kind, _, value = spec.origin.partition(":")
    return value if kind == "distribution" else ""


def loose_module_of(spec: ModelSpec) -> str:
    """The module a plug-in model named by ``module:attribute`` comes from, or "" (built in, or installed)."""
    kind, _, value = spec.origin.partition(":")
    return value if kind == "module" else ""
