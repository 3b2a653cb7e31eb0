"""The restored examples ``evaluate`` keeps, and their index: what the report draws without running a network.

Per task, the first ``evaluate.examples_per_task`` test pairs (other pairs when a task has none) are kept for every
contender: ``<folder>/<contender>/<pair id>.png`` (``/`` in an id becomes ``_``), listed in ``<folder>/index.csv``
with the pair's degraded and clean files (under the benchmark) and the PSNR.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pip_model.image_files import read_image, write_png

INDEX = "index.csv"
COLUMNS = ["model", "task", "id", "degraded_path", "clean_path", "restored", "psnr"]


@dataclass(frozen=True)
class Example:
    """One kept restoration.

    Shape:
        image: (H, W, 3) in [0, 1]
    """

    model: str
    task: str
    id: str
    degraded_path: str
    clean_path: str
    psnr: float
    image: np.ndarray


def example_ids(rows: Iterable[Any], per_task: int) -> set[str]:
    """The ids of the benchmark rows kept as examples: per task, its first ``per_task`` test pairs, then other
    pairs when it has too few."""
    rows = list(rows)
    chosen: dict[str, list[str]] = {}
    for split_first in (True, False):
        for row in rows:
            if (getattr(row, "split", "") == "test") == split_first:
                kept = chosen.setdefault(row.task, [])
                if len(kept) < per_task and row.id not in kept:
                    kept.append(row.id)
    return {identifier for kept in chosen.values() for identifier in kept}


def _file_name(identifier: str) -> str:
    return f"{identifier.replace('/', '_')}.png"


def write_examples(folder: Path, examples: Sequence[Example]) -> None:
    """Writes each example's PNG and the index (replacing the folder's previous index)."""
    rows = []
    for example in examples:
        relative = Path(example.model) / _file_name(example.id)
        write_png(folder / relative, example.image)
        rows.append({"model": example.model, "task": example.task, "id": example.id,
                     "degraded_path": example.degraded_path, "clean_path": example.clean_path,
                     "restored": relative.as_posix(), "psnr": round(example.psnr, 4)})
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(folder / INDEX, index=False)


def read_index(folder: Path) -> pd.DataFrame:
    """The index ``evaluate`` wrote (an empty table when there is none).

    Raises:
        ValueError: the index lacks a column (written by another version: run ``dvc repro evaluate``).
    """
    path = folder / INDEX
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    index = pd.read_csv(path, keep_default_na=False)
    missing = [column for column in COLUMNS if column not in index]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)} (written by another version; rerun evaluate)")
    return index


def read_restored(folder: Path, row: Any) -> np.ndarray:
    """One indexed example's restored image.

    Shape:
        -> (H, W, 3) in [0, 1]
    """
    return read_image(folder / row.restored).rgb
