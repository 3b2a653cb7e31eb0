"""Tasks, prompt classes and prompt weights, all derived from the degradation families' registry
(:mod:`pip_model.data.degradations.registry`).

Each family is one prompt class; its place in the registry is its class id in the manifests (0 noise, 1 rain,
2 haze, 3 blur, 4 low light, 5 snow, 6 JPEG). Several tasks may share a class: the three noise levels all map to
the noise class, as in the published PIP code.

A model's prompt classes are its own (:func:`model_classes`): the paper's five unless it was trained on more
(:func:`classes_for`), saved with it, so a family added later never changes the shape of a model built before.
Prompt weights are always over one model's classes, in its order.

Composite tasks put several degradations on one image, in the order a camera meets them (rain streaks before the
haze that veils them; the scene darkened or blurred before the sensor adds noise). Their prompt is the equal
mixture of their classes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from pip_model.data.degradations.registry import BY_NAME, BY_TASK, FAMILIES
from pip_model.data.degradations.task import (
    CLASSES,
    NAMED_COMPOSITES,
    SINGLE_TASKS,
    Task,
    parse_task,
)

# The published networks' prompt classes: every registered model is built with these unless trained on more.
PAPER_CLASSES: tuple[str, ...] = ("noise", "rain", "haze", "blur", "lowlight")

TASKS: tuple[str, ...] = SINGLE_TASKS
TASK_TO_CLASS: dict[str, int] = {task: CLASSES.index(family.name) for task, family in BY_TASK.items()}
COMPOSITE_TASKS: dict[str, tuple[str, ...]] = {name: parse_task(name).parts for name in NAMED_COMPOSITES}
ALL_TASKS: tuple[str, ...] = TASKS + tuple(COMPOSITE_TASKS)

# The noise level of each denoising task, on the 0-255 scale of the paper.
NOISE_SIGMAS: dict[str, float] = {task: fixed["sigma"] for task, fixed in BY_NAME["noise"].tasks.items()}
# What a non-blind task expert is given besides the image, on the [0, 1] pixel scale.
TASK_PARAMETERS: dict[str, dict[str, float]] = {task: family.expert_parameters(fixed) for family in FAMILIES
                                                if family.expert_parameters for task, fixed in family.tasks.items()}

__all__ = ["ALL_TASKS", "CLASSES", "COMPOSITE_TASKS", "NOISE_SIGMAS", "PAPER_CLASSES", "TASKS", "TASK_PARAMETERS",
           "TASK_TO_CLASS", "Task", "check_classes", "classes_for", "covers", "model_classes", "parse_mix",
           "parse_prompt", "parse_task", "remap_weights", "task_class", "task_classes", "task_components", "task_label",
           "task_prompt"]


def covers(tasks: tuple[str, ...], task: str) -> bool:
    """Whether a model restricted to ``tasks`` (empty: every task) restores ``task``; a composite when it covers
    every one of its single tasks."""
    return not tasks or task in tasks or all(part in tasks for part in parse_task(task).parts)


def task_class(task: str) -> int:
    """Returns the class id (in :data:`CLASSES`) of a single task.

    Raises:
        ValueError: if ``task`` is not a single task (a composite has several classes: see :func:`task_classes`).

    Examples:
        >>> task_class("derain")
        1
    """
    if task in TASK_TO_CLASS:
        return TASK_TO_CLASS[task]
    parse_task(task)  # an unknown name is said so
    raise ValueError(f"{task!r} is a composite task with several classes (see task_classes); expected one of "
                     f"{', '.join(TASKS)}")


def task_components(task: str) -> tuple[str, ...]:
    """The single tasks that make up ``task``, in the order they are applied (``(task,)`` for a single task).

    Raises:
        ValueError: if ``task`` is neither a task nor a composite of tasks.

    Examples:
        >>> task_components("derain_dehaze")
        ('derain', 'dehaze')
    """
    return parse_task(task).parts


def task_classes(task: str) -> tuple[int, ...]:
    """The class ids (in :data:`CLASSES`) present in ``task``, in application order.

    Examples:
        >>> task_classes("lowlight_denoise")
        (4, 0)
    """
    return parse_task(task).class_ids


def task_label(task: str) -> str:
    """The classes of ``task`` as one manifest value: ``"1"``, or ``"1+2"`` for a composite."""
    return parse_task(task).label


def classes_for(tasks: Iterable[str], base: Sequence[str] = PAPER_CLASSES) -> tuple[str, ...]:
    """The prompt classes of a model built with ``base`` (its spec's) and trained on ``tasks``: ``base``, then each
    class of the tasks it lacks, in registry order.

    Examples:
        >>> classes_for(["derain", "desnow"])
        ('noise', 'rain', 'haze', 'blur', 'lowlight', 'snow')
    """
    needed = {name for task in tasks for name in parse_task(task).classes}
    return tuple(base) + tuple(name for name in CLASSES if name in needed and name not in base)


def check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    """``classes`` as a tuple, when they are distinct prompt classes of :data:`CLASSES`.

    Raises:
        ValueError: naming what is wrong.
    """
    classes = tuple(classes)
    if not classes or any(name not in CLASSES for name in classes) or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct prompt classes of {', '.join(CLASSES)}, got {list(classes)}")
    return classes


def model_classes(model: torch.nn.Module) -> tuple[str, ...]:
    """The prompt classes a built model has (a served model's inner one too): those it was built with."""
    inner = getattr(model, "model", model)
    return tuple(getattr(inner, "classes", None) or getattr(model, "classes", None) or PAPER_CLASSES)


def _missing(needed: Iterable[str], classes: Sequence[str], what: str) -> None:
    lacking = [name for name in needed if name not in classes]
    if lacking:
        raise ValueError(f"{what} needs the prompt class(es) {', '.join(lacking)}, which this model was not built "
                         f"with (its classes: {', '.join(classes)}); train it on a task of that class")


def task_prompt(task: str, classes: Sequence[str]) -> torch.Tensor:
    """The true prompt weights of ``task`` over ``classes`` (a model's): one-hot, or the equal mixture of a
    composite's classes.

    Raises:
        ValueError: a class of the task is not among ``classes``.

    Shape:
        -> (len(classes),)
    """
    needed = parse_task(task).classes
    _missing(needed, classes, f"task {task}")
    weights = torch.zeros(len(classes))
    for name in needed:
        weights[list(classes).index(name)] = 1.0
    return weights / weights.sum()


# A sensor's prompt moved onto a model's classes keeps at least this share of its weight, or nothing the model knows
# was found: a faint doubt left over once a sure class is dropped is no prompt.
MIN_KEPT_SHARE = 0.05


def remap_weights(weights: torch.Tensor, source: Sequence[str], target: Sequence[str]) -> torch.Tensor:
    """Prompt weights over ``source`` classes (a sensor's) -> over ``target`` (a model's): each class moved to its
    place, classes ``target`` lacks dropped, the rest renormalised; a row that keeps under :data:`MIN_KEPT_SHARE` of
    its weight becomes all zero (nothing to restore with this model).

    Shape:
        (..., len(source)) -> (..., len(target))
    """
    if tuple(source) == tuple(target):
        return weights
    moved = torch.zeros(*weights.shape[:-1], len(target), dtype=weights.dtype, device=weights.device)
    for index, name in enumerate(target):
        if name in source:
            moved[..., index] = weights[..., list(source).index(name)]
    kept = moved.sum(dim=-1, keepdim=True)
    enough = kept >= MIN_KEPT_SHARE * weights.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.where(enough & (kept > 0), moved / kept.clamp_min(1e-12), torch.zeros_like(moved))


# Mixture weights are shares: any finite scale works, but past this a float32 sum can overflow to inf.
MAX_WEIGHT = 1e6


def parse_mix(text: str, classes: Sequence[str]) -> torch.Tensor:
    """``derain=0.7,dehaze=0.3`` -> normalised prompt weights over ``classes`` (a model's).

    Keys are task names (``denoise_25``...) or class names (``noise``, ``rain``...); weights
    that name the same class add up.

    Raises:
        ValueError: saying which item is malformed, unknown, negative or not finite, that the model lacks its class,
            or that the weights sum to zero.

    Shape:
        -> (len(classes),)
    """
    weights = torch.zeros(len(classes))
    for item in text.split(","):
        name, _, value = item.partition("=")
        name = name.strip()
        try:
            share = float(value)
        except ValueError:
            raise ValueError(f"{item!r} is not NAME=WEIGHT") from None
        if name in BY_NAME:
            class_name = name
        elif name in BY_TASK:
            class_name = BY_TASK[name].name
        else:
            raise ValueError(f"unknown name {name!r}; use tasks ({', '.join(TASKS)}) or classes "
                             f"({', '.join(classes)})")
        if not math.isfinite(share) or share > MAX_WEIGHT:  # nan, inf, or so large that the sum overflows
            raise ValueError(f"weight of {name} is {value.strip()}: give a finite number up to {MAX_WEIGHT:g}")
        if share < 0:
            raise ValueError(f"weight of {name} is negative ({share})")
        _missing([class_name], classes, name)
        weights[list(classes).index(class_name)] += share
    if weights.sum() <= 0:
        raise ValueError("the weights sum to zero")
    return weights / weights.sum()


def parse_prompt(text: str, classes: Sequence[str]) -> torch.Tensor:
    """A prompt named in words -> its weights over ``classes`` (a model's): a task (``derain``), a composite
    (``derain_dehaze``: the mixture of its classes), a class (``rain``) or a mixture (``rain=0.7,haze=0.3``).

    Raises:
        ValueError: if ``text`` is none of these, or names a class the model lacks.

    Shape:
        -> (len(classes),)
    """
    text = text.strip()
    if "=" in text:
        return parse_mix(text, classes)
    if text in BY_NAME:
        _missing([text], classes, text)
        return torch.eye(len(classes))[list(classes).index(text)]
    try:
        parse_task(text)
    except ValueError:
        raise ValueError(f"unknown prompt {text!r}: give a task ({', '.join(ALL_TASKS)}), a class "
                         f"({', '.join(classes)}), a mixture such as rain=0.7,haze=0.3, or auto") from None
    return task_prompt(text, classes)
