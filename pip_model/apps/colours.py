"""One colour per method, the same in every chart of the report and the seeds results.

A method keeps its colour whatever else a chart holds: the degraded input and the classical restorers are
greys and browns, the PIP models blues (their blind twins lighter), PromptIR green, the plain backbones warm colours.
"""

from __future__ import annotations

from collections.abc import Iterable

FIXED = {"input": "#7f7f7f", "classical": "#8c564b"}
PIP_COLOURS = ("#1f77b4", "#6a3d9a", "#17becf")
BLIND_COLOURS = ("#9ecae1", "#cab2d6", "#a6e3ea")
PEER_COLOURS = ("#2ca02c", "#98df8a")  # PromptIR models
PLAIN_COLOURS = ("#ff7f0e", "#d62728", "#e377c2", "#bcbd22", "#8c6d31")


def method_colours(names: Iterable[str]) -> dict[str, str]:
    """A colour for each method name. Call it once with every method of a report and hand the result to each of
    its charts, so that a method has one colour throughout.

    PIP models (and the plain ones) are told apart by their sorted order among the names given; a model's
    ``_blind`` twin takes the lighter shade of its colour.
    """
    names = list(dict.fromkeys(names))
    pip_models = sorted({name.removesuffix("_blind") for name in names if name.startswith("pip_")})
    peers = sorted(name for name in names if name.startswith("promptir"))
    plain = sorted(name for name in names if name not in FIXED and not name.startswith(("pip_", "promptir")))
    colours = {}
    for name in names:
        if name in FIXED:
            colours[name] = FIXED[name]
        elif name.startswith("pip_"):
            index = pip_models.index(name.removesuffix("_blind")) % len(PIP_COLOURS)
            colours[name] = (BLIND_COLOURS if name.endswith("_blind") else PIP_COLOURS)[index]
        elif name in peers:
            colours[name] = PEER_COLOURS[peers.index(name) % len(PEER_COLOURS)]
        else:
            colours[name] = PLAIN_COLOURS[plain.index(name) % len(PLAIN_COLOURS)]
    return colours
