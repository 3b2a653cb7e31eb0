"""The degradation families, in the order that gives each its class id, and the plug-ins beside them.

Adding a family is one module that defines ``FAMILY`` (see :mod:`pip_model.data.degradations.base` and the JPEG
family, :mod:`pip_model.data.degradations.jpeg`), listed here or brought by another package through the entry-point
group ``pip_model.degradations``. The task names, the prompt classes (:mod:`pip_model.tasks`), the ranges of
``params.yaml: degrade.ranges`` (:class:`DegradationRanges`), the collation of recorded parameters and the classical
restorers all follow from this list.
"""

from __future__ import annotations

import dataclasses
from importlib.metadata import entry_points

from pip_model.data.degradations import blur, haze, jpeg, lowlight, noise, rain, snow
from pip_model.data.degradations.base import Family, Ranges

ENTRY_POINT_GROUP = "pip_model.degradations"

# Appended only: a family's place is its class id in every manifest written before it.
BUILT_IN: tuple[Family, ...] = (noise.FAMILY, rain.FAMILY, haze.FAMILY, blur.FAMILY, lowlight.FAMILY, snow.FAMILY,
                                jpeg.FAMILY)


def plugin_families() -> tuple[Family, ...]:
    """The families other installed packages declare in the entry-point group ``pip_model.degradations``, sorted by
    entry-point name (each entry point names a :class:`Family`)."""
    found = []
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda point: point.name):
        try:
            family = point.load()
        except Exception as error:  # a broken plug-in is named, not a bare traceback from deep inside it
            raise ImportError(f"degradation plug-in {point.name} ({point.value}) failed to load: {error}") from error
        if not isinstance(family, Family):
            raise TypeError(f"degradation plug-in {point.name} ({point.value}) is a {type(family).__name__}, not a "
                            "pip_model.data.degradations.base.Family")
        found.append(family)
    return tuple(found)


def _checked(families: tuple[Family, ...]) -> tuple[Family, ...]:
    """The families, when no two share a class or a task name, and no task is named as another family's class."""
    owners: dict[str, str] = {}
    for family in families:
        for name in {family.name, *family.tasks}:  # a family may name a task after itself (lowlight)
            if name in owners:
                raise ValueError(f"degradation family {family.name}: {name!r} is already {owners[name]}'s")
            owners[name] = family.name
    return families


FAMILIES: tuple[Family, ...] = _checked(BUILT_IN + plugin_families())
BY_NAME: dict[str, Family] = {family.name: family for family in FAMILIES}
BY_TASK: dict[str, Family] = {task: family for family in FAMILIES for task in family.tasks}

DegradationRanges = dataclasses.make_dataclass(
    "DegradationRanges",
    [(family.name, family.ranges, dataclasses.field(default_factory=family.ranges)) for family in FAMILIES],
    frozen=True)
DegradationRanges.__module__ = __name__
DegradationRanges.__doc__ = (
    "The sampling ranges of every family (``params.yaml: degrade.ranges``, one section per family): "
    + ", ".join(f"``{family.name}`` ({family.ranges.__name__})" for family in FAMILIES) + ".")


def ranges_of(ranges: DegradationRanges, family: Family) -> Ranges:
    """One family's ranges."""
    return getattr(ranges, family.name)
