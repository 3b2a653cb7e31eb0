"""Charts the stages write beside their figures (DVC plots): files, never windows, so any machine can draw them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402



def save_figure(figure: plt.Figure, path: Path, dpi: int) -> str:
    """Writes ``figure`` to ``path`` and closes it; returns the file name (for the page that shows it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return path.name


def confusion_chart(confusion: np.ndarray, classes: Sequence[str], path: Path, dpi: int) -> str:
    """The sensor's confusion matrix on the benchmark's single tasks over its ``classes``, counts in the cells."""
    figure, axis = plt.subplots(figsize=(4.5, 4))
    axis.imshow(confusion, cmap="Blues")
    for (row, column), count in np.ndenumerate(confusion):
        axis.text(column, row, str(count), ha="center", va="center", fontsize=9)
    axis.set(xticks=range(len(classes)), yticks=range(len(classes)),
             xticklabels=classes, yticklabels=classes, xlabel="top-scoring class",
             ylabel="true class", title="Sensor confusion on the benchmark's single tasks")
    axis.tick_params(axis="x", rotation=30)
    return save_figure(figure, path, dpi)
