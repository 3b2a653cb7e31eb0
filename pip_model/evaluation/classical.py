"""Non-learned restorers: what a user would reach for without a network, one per degradation family (each defined in
its family's module: non-local means for noise, a median filter for rain, the dark channel prior for haze,
Richardson-Lucy for blur, a gamma for low light, a morphological opening for snow, total variation for JPEG).

All take and return (H, W, 3) float arrays in [0, 1]. A composite task chains them, the last degradation undone
first.
"""

from __future__ import annotations

import numpy as np

from pip_model.tasks import parse_task


def classical_restore(image: np.ndarray, task: str) -> np.ndarray:
    """The classical restorer of a task's family; a composite's restorers run chained, the last degradation undone
    first.

    Shape:
        (H, W, 3) -> (H, W, 3)
    """
    restored = image.astype(np.float64)
    for family in reversed(parse_task(task).families):
        restored = family.restore(restored)
    return restored.astype(np.float32)
