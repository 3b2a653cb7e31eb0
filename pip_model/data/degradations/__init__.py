"""Synthetic degradations, one family per module (noise, rain, haze, blur, low light, snow, JPEG), composed from
Kornia ops: see :mod:`~pip_model.data.degradations.base` for what a family is,
:mod:`~pip_model.data.degradations.registry` for the list, and :mod:`~pip_model.data.degradations.compose` for
degrading a batch (``degrade(images, task, seed=0)``), replayable from its records.
"""

from pip_model.data.degradations.base import Family, Ranges, derive_seed, equal_runs, motion_kernels
from pip_model.data.degradations.compose import (
    RECORD_CONTEXT,
    DegradationDraw,
    apply_degradation,
    collate_records,
    degrade,
    draw_degradation,
)
from pip_model.data.degradations.registry import BY_NAME, BY_TASK, FAMILIES, DegradationRanges

__all__ = ["BY_NAME", "BY_TASK", "FAMILIES", "RECORD_CONTEXT", "DegradationDraw", "DegradationRanges", "Family",
           "Ranges", "apply_degradation", "collate_records", "degrade", "derive_seed", "draw_degradation",
           "equal_runs", "motion_kernels"]
