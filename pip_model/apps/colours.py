"""One colour per method, the same in every chart of the report and the seeds results, and the order methods are
listed in; both come from the model's spec (:class:`pip_model.networks.registry.ModelSpec`), never its name.

The degraded input and the classical restorers are grey and brown; a model takes its spec's colour, else one of its
role's palette (PIP blues, peers greens, plain backbones warm colours, experts purples); a blind twin
(``<model>_blind``, PIP steered by the sensor) a lighter shade of its model's.
"""

from __future__ import annotations

from collections.abc import Iterable

from pip_model.evaluation.benchmark import BLIND_SUFFIX, EXPERTS
from pip_model.networks.registry import ROLES, model_spec

FIXED = {"input": "#7f7f7f", "classical": "#8c564b"}
PALETTES = {
    "pip": ("#1f77b4", "#6a3d9a", "#17becf", "#393b79"),
    "peer": ("#2ca02c", "#98df8a", "#637939", "#b5cf6b"),
    "plain": ("#ff7f0e", "#d62728", "#e377c2", "#bcbd22", "#8c6d31"),
    "expert": ("#9467bd", "#c5b0d5", "#7b4173", "#a55194"),
    "sensor": ("#555555",),
}


def model_of(name: str) -> str:
    """The registry name a result's method stands for: ``pip_x_blind`` and ``pip_x@rain`` -> ``pip_x``."""
    return name.split("@", 1)[0].removesuffix(BLIND_SUFFIX)


def role_of(name: str) -> str:
    """A method's role: ``input`` and ``classical`` are their own, the experts' row is ``expert``, a registered
    model's is its spec's, and anything else (a model not registered here) counts as ``plain``."""
    if name in FIXED:
        return name
    if name == EXPERTS:
        return "expert"
    try:
        return model_spec(model_of(name)).role
    except ValueError:
        return "plain"


def method_order(names: Iterable[str]) -> list[str]:
    """The methods in the report's order: the baselines, then by role (PIP, peers, plain backbones, experts), each
    model before its blind twin, names alphabetically within a role."""
    ranks = {role: index for index, role in enumerate(("input", "classical", *ROLES))}
    return sorted(dict.fromkeys(names), key=lambda name: (ranks.get(role_of(name), len(ranks)), model_of(name), name))


def _lighter(colour: str) -> str:
    channels = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{(value + 255) // 2:02x}" for value in channels)


def method_colours(names: Iterable[str]) -> dict[str, str]:
    """A colour for each method name. Call it once with every method of a report and hand the result to each of
    its charts, so that a method has one colour throughout; the colours depend on the set of names, not their
    order. Two models whose specs ask for the same colour (a model and its tiny variant) are told apart by the
    next free colour of their role's palette."""
    colours: dict[str, str] = {}
    used: set[str] = set()
    for name in method_order(names):
        role = role_of(name)
        if name in FIXED:
            colour = FIXED[name]
        elif model_of(name) != name and model_of(name) in colours:
            colour = _lighter(colours[model_of(name)])
        else:
            try:
                wanted = model_spec(model_of(name)).colour
            except ValueError:
                wanted = ""
            palette = PALETTES.get(role, PALETTES["plain"])
            free = [colour for colour in (wanted, *palette) if colour and colour not in used]
            colour = free[0] if free else palette[len(used) % len(palette)]
        colours[name] = colour
        used.add(colour)
    return colours
