"""The degradation classes and task names of the project, defined once.

Class ids are fixed across the whole project (models, data, metrics, checkpoints):
0 noise, 1 rain, 2 haze, 3 blur, 4 low light. Several tasks may share a class:
the three noise levels all map to the noise class, as in the published PIP code.
"""

from __future__ import annotations

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


def task_class(task: str) -> int:
    """Returns the degradation class id of a task name.

    Raises:
        ValueError: if ``task`` is not one of :data:`TASKS`.

    Examples:
        >>> task_class("derain")
        1
    """
    try:
        return TASK_TO_CLASS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}") from None
