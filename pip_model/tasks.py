"""The degradation classes and task names of the project, defined once.

Class ids are fixed across the whole project (models, data, metrics, checkpoints):
0 noise, 1 rain, 2 haze, 3 blur, 4 low light. Several tasks may share a class:
the three noise levels all map to the noise class, as in the published PIP code.

Composite tasks put several degradations on one image, in the order a camera meets
them (rain streaks before the haze that veils them; the scene darkened or blurred before
the sensor adds noise). Their prompt is the equal mixture of their classes.
"""

from __future__ import annotations

import math

import torch

DEGRADATION_CLASSES: tuple[str, ...] = ("noise", "rain", "haze", "blur", "lowlight")
NUM_CLASSES: int = len(DEGRADATION_CLASSES)

TASK_TO_CLASS: dict[str, int] = {
    "denoise_15": 0,
    "denoise_25": 0,
    "denoise_50": 0,
    "derain": 1,
    "dehaze": 2,
    "deblur": 3,
    "lowlight": 4,
}
TASKS: tuple[str, ...] = tuple(TASK_TO_CLASS)

# Composite task -> its single tasks, in the order they are applied.
COMPOSITE_TASKS: dict[str, tuple[str, ...]] = {
    "derain_dehaze": ("derain", "dehaze"),
    "lowlight_denoise": ("lowlight", "denoise_15"),
    "deblur_denoise": ("deblur", "denoise_15"),
}
ALL_TASKS: tuple[str, ...] = TASKS + tuple(COMPOSITE_TASKS)

# The noise level of each denoising task, on the 0-255 scale of the paper.
NOISE_SIGMAS: dict[str, float] = {"denoise_15": 15.0, "denoise_25": 25.0, "denoise_50": 50.0}
# What a non-blind task expert is given besides the image, on the [0, 1] pixel scale.
TASK_PARAMETERS: dict[str, dict[str, float]] = {task: {"sigma": sigma / 255} for task, sigma in NOISE_SIGMAS.items()}


def covers(tasks: tuple[str, ...], task: str) -> bool:
    """Whether a model restricted to ``tasks`` (empty: every task) restores ``task``; a composite when it covers
    every one of its single tasks."""
    return not tasks or task in tasks or all(part in tasks for part in task_components(task))


def task_class(task: str) -> int:
    """Returns the degradation class id of a single task.

    Raises:
        ValueError: if ``task`` is not one of :data:`TASKS` (a composite has several classes:
            see :func:`task_classes`).

    Examples:
        >>> task_class("derain")
        1
    """
    try:
        return TASK_TO_CLASS[task]
    except KeyError:
        if task in COMPOSITE_TASKS:
            raise ValueError(f"{task!r} is a composite task with several classes (see task_classes); expected one "
                             f"of {', '.join(TASKS)}") from None
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}") from None


def task_components(task: str) -> tuple[str, ...]:
    """The single tasks that make up ``task``, in the order they are applied (``(task,)`` for a single task).

    Raises:
        ValueError: if ``task`` is neither a task nor a composite task.

    Examples:
        >>> task_components("derain_dehaze")
        ('derain', 'dehaze')
    """
    if task in COMPOSITE_TASKS:
        return COMPOSITE_TASKS[task]
    if task in TASK_TO_CLASS:
        return (task,)
    raise ValueError(f"unknown task {task!r}; expected one of {', '.join(ALL_TASKS)}")


def task_classes(task: str) -> tuple[int, ...]:
    """The class ids present in ``task``, in application order.

    Examples:
        >>> task_classes("lowlight_denoise")
        (4, 0)
    """
    return tuple(TASK_TO_CLASS[component] for component in task_components(task))


def task_label(task: str) -> str:
    """The classes of ``task`` as one manifest value: ``"1"``, or ``"1+2"`` for a composite."""
    return "+".join(str(class_id) for class_id in task_classes(task))


def task_prompt(task: str) -> torch.Tensor:
    """The true prompt weights of ``task``: one-hot, or the equal mixture of a composite's classes.

    Shape:
        -> (NUM_CLASSES,)
    """
    weights = torch.zeros(NUM_CLASSES)
    for class_id in task_classes(task):
        weights[class_id] = 1.0
    return weights / weights.sum()


# Mixture weights are shares: any finite scale works, but past this a float32 sum can overflow to inf.
MAX_WEIGHT = 1e6


def parse_mix(text: str) -> torch.Tensor:
    """``derain=0.7,dehaze=0.3`` -> normalised prompt weights over the degradation classes.

    Keys are task names (``denoise_25``...) or class names (``noise``, ``rain``...); weights
    that name the same class add up.

    Raises:
        ValueError: saying which item is malformed, unknown, negative or not finite, or that the weights sum to
            zero.

    Shape:
        -> (NUM_CLASSES,)
    """
    weights = torch.zeros(NUM_CLASSES)
    for item in text.split(","):
        name, _, value = item.partition("=")
        name = name.strip()
        try:
            share = float(value)
        except ValueError:
            raise ValueError(f"{item!r} is not NAME=WEIGHT") from None
        if name in DEGRADATION_CLASSES:
            class_id = DEGRADATION_CLASSES.index(name)
        elif name in TASK_TO_CLASS:
            class_id = TASK_TO_CLASS[name]
        else:
            raise ValueError(f"unknown name {name!r}; use tasks ({', '.join(TASKS)}) or classes "
                             f"({', '.join(DEGRADATION_CLASSES)})")
        if not math.isfinite(share) or share > MAX_WEIGHT:  # nan, inf, or so large that the sum overflows
            raise ValueError(f"weight of {name} is {value.strip()}: give a finite number up to {MAX_WEIGHT:g}")
        if share < 0:
            raise ValueError(f"weight of {name} is negative ({share})")
        weights[class_id] += share
    if weights.sum() <= 0:
        raise ValueError("the weights sum to zero")
    return weights / weights.sum()


def parse_prompt(text: str) -> torch.Tensor:
    """A prompt named in words -> its weights: a task (``derain``), a composite (``derain_dehaze``: the mixture
    of its classes), a class (``rain``) or a mixture (``rain=0.7,haze=0.3``).

    Raises:
        ValueError: if ``text`` is none of these.

    Shape:
        -> (NUM_CLASSES,)
    """
    text = text.strip()
    if text in TASK_TO_CLASS or text in COMPOSITE_TASKS:
        return task_prompt(text)
    if text in DEGRADATION_CLASSES:
        return torch.eye(NUM_CLASSES)[DEGRADATION_CLASSES.index(text)]
    if "=" in text:
        return parse_mix(text)
    raise ValueError(f"unknown prompt {text!r}: give a task ({', '.join(ALL_TASKS)}), a class "
                     f"({', '.join(DEGRADATION_CLASSES)}), a mixture such as rain=0.7,haze=0.3, or auto")
