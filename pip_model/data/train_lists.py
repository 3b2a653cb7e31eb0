"""The published training lists (``prepare.train_lists``): exactly the training images and pairs that PromptIR's and
PIP's loaders read.

Both loaders train on list files of their ``data_dir`` (PromptIR ``utils/dataset_utils.py``, PIP
``src/data_provider/universal_dataset.py``, ``PromptTrainDataset``), one file per line:

| key | list | a line | names |
| --- | --- | --- | --- |
| denoise | ``noisy/denoise.txt`` (5,144 lines) | ``03000.bmp`` | a clean image of ``Train/Denoise`` (BSD400 + WED) |
| derain | ``rainy/rainTrain.txt`` (200) | ``rainy/rain-12.png`` | the rainy side of a Rain100L training pair |
| dehaze | ``hazy/hazy_outside.txt`` (72,135) | ``synthetic/part1/0025_0.8_0.04.jpg`` | an OTS hazy image |

A line is a path below the dataset's folder; it names the training file (the clean image of a clean training set,
the degraded side of a training pair) whose path ends with the line's components (``rainy/rain-12.png`` names
``Rain100L/train/rainy/rain-12.png``), compared as the published code does, case and all. A list may instead be
``{file: LIST, folder: FOLDER}``, when two training sets hold the same names: then only files under
``datasets_root/FOLDER`` are named. PIP's GoPro and LOL training sets have no list (its loader reads every file of
``train/sharp`` and ``low``): ``deblur`` and ``lowlight`` take one too, for other selections.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Generic, TypeVar

from pip_model.config import ConfigError

T = TypeVar("T")

# List key -> the task of the pairs it selects (None: the clean training images, noise is synthesised on them).
LIST_KEYS: dict[str, str | None] = {"denoise": None, "derain": "derain", "dehaze": "dehaze", "deblur": "deblur",
                                    "lowlight": "lowlight"}


@dataclass(frozen=True)
class TrainListSource:
    """``prepare.train_lists.KEY`` written out: the list file and the folder its lines are relative to.

    Attributes:
        file: the list, relative to ``prepare.datasets_root`` (where DVC sees its edits) or absolute.
        folder: a folder below ``prepare.datasets_root``; only files under it are named ("" = any).
    """

    file: str
    folder: str = ""


@dataclass(frozen=True)
class TrainList:
    """One list read: its key, its file, the folder its lines are relative to, and its lines (number, path)."""

    key: str
    path: Path
    folder: Path | None
    lines: tuple[tuple[int, str], ...]

    @property
    def label(self) -> str:
        return f"prepare.train_lists.{self.key} ({self.path.name})"


def read_train_lists(lists: dict[str, str | TrainListSource], root: Path) -> list[TrainList]:
    """Reads every list of ``prepare.train_lists``; relative paths are below ``root`` (``prepare.datasets_root``).

    Raises:
        ConfigError: an unknown key, a list without a datasets root, or a missing list file.
    """
    read = []
    for key, source in lists.items():
        if key not in LIST_KEYS:
            raise ConfigError(f"prepare.train_lists.{key}: unknown list; known: {', '.join(LIST_KEYS)}")
        source = source if isinstance(source, TrainListSource) else TrainListSource(file=source)
        if not str(root) or str(root) == ".":
            raise ConfigError(f"prepare.train_lists.{key}: the lists select among the datasets of "
                              "prepare.datasets_root, which is empty")
        path = root / source.file
        if not path.is_file():
            raise ConfigError(f"prepare.train_lists.{key}: {path} is not a file (copy the published data_dir/ "
                              "under prepare.datasets_root, or set prepare.train_lists to {} to train on every file)")
        lines = tuple((number, line.strip()) for number, line in
                      enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if line.strip())
        read.append(TrainList(key, path, root / source.folder if source.folder else None, lines))
    return read


@dataclass
class Selection(Generic[T]):
    """What a list kept of the training items it applies to.

    Attributes:
        kept: the items a line names, in their original order.
        left_out: how many items no line names.
        missing: the lines (number, path) that name no item.
    """

    kept: list[T]
    left_out: int
    missing: list[tuple[int, str]]


def _parts(text: str) -> tuple[str, ...]:
    return tuple(part for part in PurePosixPath(text.replace("\\", "/")).parts if part not in ("", ".", "/"))


def select_listed(items: Sequence[T], path_of: Callable[[T], Path], train_list: TrainList) -> Selection[T]:
    """The items whose file (``path_of``) a line of ``train_list`` names (see the module's docstring).

    Raises:
        ConfigError: a line names several files (two training sets with the same names): the message says to give
            the list's folder.
    """
    by_name: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        path = path_of(item)
        if train_list.folder is None or path.is_relative_to(train_list.folder):
            by_name[path.name].append(index)
    chosen: set[int] = set()
    missing = []
    for number, line in train_list.lines:
        parts = _parts(line)
        matches = [index for index in by_name.get(parts[-1], ()) if path_of(items[index]).parts[-len(parts):] == parts]
        if not matches:
            missing.append((number, line))
        elif len(matches) > 1:
            names = ", ".join(str(path_of(items[index])) for index in matches[:3])
            raise ConfigError(f"{train_list.label}: line {number} ({line}) names {len(matches)} training files "
                              f"({names}): give the folder its lines are relative to, as prepare.train_lists."
                              f"{train_list.key}: {{file: ..., folder: FOLDER}}")
        else:
            chosen.add(matches[0])
    kept = [item for index, item in enumerate(items) if index in chosen]
    return Selection(kept=kept, left_out=len(items) - len(kept), missing=missing)
