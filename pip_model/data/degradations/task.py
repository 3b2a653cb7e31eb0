"""Task names, parsed once into what they are: the families to apply, in order, with their fixed parameters.

A single task belongs to one family (``derain`` to rain, ``denoise_25`` to noise at sigma 25). A composite task puts
several on one image, in the order a camera meets them, and is named by its single tasks joined by ``_`` in that
order (``lowlight_desnow_dehaze``: darkened, snowed on, then veiled); two names of the paper's composites keep their
shorter form (``lowlight_denoise`` and ``deblur_denoise`` add noise at sigma 15).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from pip_model.data.degradations.base import Family
from pip_model.data.degradations.registry import BY_TASK, FAMILIES

# Every prompt class, in registry order: a class's place is its id in the manifests (``class_id``).
CLASSES: tuple[str, ...] = tuple(family.name for family in FAMILIES)
SINGLE_TASKS: tuple[str, ...] = tuple(BY_TASK)

# Composites under a shorter name than their parts joined.
SHORT_NAMES: dict[str, tuple[str, ...]] = {
    "lowlight_denoise": ("lowlight", "denoise_15"),
    "deblur_denoise": ("deblur", "denoise_15"),
}
# The composites the project names (the pipeline's and CDD-11's); any other join of single tasks parses too.
NAMED_COMPOSITES: tuple[str, ...] = (
    "derain_dehaze", "lowlight_denoise", "deblur_denoise", "desnow_dehaze",
    "lowlight_dehaze", "lowlight_derain", "lowlight_desnow", "lowlight_derain_dehaze", "lowlight_desnow_dehaze",
)


@dataclass(frozen=True)
class Task:
    """A task, parsed: its single tasks in application order, and each one's family and fixed parameters.

    Attributes:
        name: as written (``derain_dehaze``).
        parts: its single tasks in application order (``("derain", "dehaze")``; ``(name,)`` for a single task).
    """

    name: str
    parts: tuple[str, ...]

    @property
    def is_composite(self) -> bool:
        return len(self.parts) > 1

    @property
    def families(self) -> tuple[Family, ...]:
        return tuple(BY_TASK[part] for part in self.parts)

    @property
    def fixed(self) -> tuple[Mapping[str, float], ...]:
        """Each part's fixed parameters (a noise task's sigma)."""
        return tuple(BY_TASK[part].tasks[part] for part in self.parts)

    @property
    def classes(self) -> tuple[str, ...]:
        """Its prompt classes, in application order."""
        return tuple(family.name for family in self.families)

    @property
    def class_ids(self) -> tuple[int, ...]:
        """Its classes' ids in :data:`CLASSES`."""
        return tuple(CLASSES.index(name) for name in self.classes)

    @property
    def label(self) -> str:
        """The classes as one manifest value: ``"1"``, or ``"1+2"`` for a composite."""
        return "+".join(str(class_id) for class_id in self.class_ids)

    @property
    def class_id(self) -> int | str:
        """The manifests' ``class_id``: the class id of a single task, the label (``"1+2"``) of a composite."""
        return self.class_ids[0] if not self.is_composite else self.label

    @property
    def integer_params(self) -> frozenset[str]:
        """The recorded keys that hold integers (``length``, or ``derain.length`` in a composite)."""
        if not self.is_composite:
            return frozenset(self.families[0].integers)
        return frozenset(f"{part}.{name}" for part, family in zip(self.parts, self.families)
                         for name in family.integers)


def _split(name: str) -> tuple[str, ...] | None:
    """``lowlight_derain_dehaze`` -> its single tasks, longest names first (``denoise_15`` holds a ``_``)."""
    if not name:
        return ()
    for single in sorted(SINGLE_TASKS, key=len, reverse=True):
        if name == single or name.startswith(single + "_"):
            rest = _split(name[len(single) + 1:])
            if rest is not None:
                return (single, *rest)
    return None


@functools.cache
def _parse(name: str) -> Task:
    if name in BY_TASK:
        return Task(name, (name,))
    parts = SHORT_NAMES.get(name) or _split(name)
    if not parts:
        raise ValueError(f"unknown task {name!r}; single tasks are {', '.join(SINGLE_TASKS)}, and a composite joins "
                         f"them with _ in the order they are applied (e.g. {', '.join(NAMED_COMPOSITES[:3])})")
    families = [BY_TASK[part].name for part in parts]
    if len(set(families)) < len(families):
        raise ValueError(f"composite task {name!r} holds one family twice ({', '.join(families)})")
    return Task(name, parts)


def parse_task(task: str | Task) -> Task:
    """The :class:`Task` a name stands for (parsed once, then cached).

    Raises:
        ValueError: an unknown name, or a composite that repeats a family.

    Examples:
        >>> parse_task("lowlight_desnow").classes
        ('lowlight', 'snow')
    """
    if isinstance(task, Task):
        return task
    if not isinstance(task, str):
        raise ValueError(f"a task is a name such as derain, got {task!r}")
    return _parse(task)
