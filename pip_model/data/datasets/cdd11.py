"""CDD-11, OneRestore's composite degradation dataset (Guo et al., ECCV 2024, github.com/gy65896/OneRestore).

Low light (L), haze (H), rain (R) and snow (S), alone and in the seven combinations the dataset renders, on the same
scenes. Each split is a folder holding ``clear/`` (the clean images) and one folder per subset, whose images keep the
clean image's file name::

    CDD-11/train/clear/000001.png   CDD-11/train/low/000001.png   CDD-11/train/low_haze_snow/000001.png ...
    CDD-11/test/clear/000001.png    CDD-11/test/low/000001.png    ...

The folder may be named CDD-11, CDD_11 or cdd11 (any case; MoCE-IR reads ``cdd11/``) at any depth under the datasets
folder, or be the datasets folder itself (``prepare.datasets_root`` pointing at the folder holding ``train/`` and
``test/``). OneRestore's training commands name the splits ``CDD-11_train`` and ``CDD-11_test``: a folder named like
CDD-11 that holds ``clear/`` itself is one split, ``train`` or ``test`` by the end of its name. Each subset is one task
(:data:`SUBSETS`), and each test pair is scored in the test set of its subset (``CDD-11 low_haze``), so the paper
table has one column per subset. The clean training images also join the clean images (for the sensor and any
synthesised training), the clean test images only as the clean sides of their pairs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path

from pip_model.data.datasets.base import (
    TEST_MARKERS,
    TRAIN_MARKERS,
    Adapter,
    Discovery,
    FoundClean,
    Split,
    pair_by_folders,
)
from pip_model.image_files import IMAGE_SUFFIXES, FolderWalk

NAME = "CDD-11"
CLEAN_FOLDER = "clear"
SPLITS: tuple[Split, ...] = ("train", "test")
# Each subset folder -> our task: the single tasks joined by "_" in the order they are applied.
SUBSETS: dict[str, str] = {
    "low": "lowlight", "haze": "dehaze", "rain": "derain", "snow": "desnow",
    "low_haze": "lowlight_dehaze", "low_rain": "lowlight_derain", "low_snow": "lowlight_desnow",
    "haze_rain": "derain_dehaze", "haze_snow": "desnow_dehaze",
    "low_haze_rain": "lowlight_derain_dehaze", "low_haze_snow": "lowlight_desnow_dehaze",
}


def test_set_name(subset: str) -> str:
    """``low_haze`` -> ``CDD-11 low_haze``: the test set a subset's test pairs are scored in."""
    return f"{NAME} {subset}"


TEST_SETS: dict[str, str] = {test_set_name(subset): subset for subset in SUBSETS}  # test set -> subset folder
LOOKED_FOR = (f"a folder named CDD-11, CDD_11 or cdd11 (any case), or the datasets folder itself, holding train/ and "
              f"test/, each with {CLEAN_FOLDER}/ and the subset folders {', '.join(SUBSETS)} (OneRestore's layout)")


def claims(name: str) -> bool:
    """CDD-11, CDD_11, cdd11, and the split folders ``CDD-11_train`` / ``CDD-11_test`` (any case)."""
    return re.sub(r"[^a-z0-9]", "", name).startswith("cdd11")


def _split_of_name(name: str) -> Split | None:
    """``CDD-11_train`` -> ``train``, ``CDD-11_test`` -> ``test``; None for a name that says neither."""
    letters = re.sub(r"[^a-z]", "", name.lower())
    return "train" if letters.endswith("train") else "test" if letters.endswith("test") else None


def _marked(parts: tuple[str, ...]) -> Split | None:
    """The split a ``train``/``test`` marker folder among ``parts`` names (the nearest wins), or None."""
    for part in reversed([part.lower() for part in parts]):
        if part in TRAIN_MARKERS:
            return "train"
        if part in TEST_MARKERS:
            return "test"
    return None


def _children(folder: Path, folders: Collection[Path]) -> dict[str, Path]:
    """The folders directly in ``folder`` among ``folders``, by lower-case name."""
    return {path.name.lower(): path for path in folders if path.parent == folder}


def split_folders(folder: Path, folders: Collection[Path]) -> list[tuple[Path, Split]]:
    """The splits of a CDD-11 folder: itself or each folder below it (among ``folders``) that holds ``clear/``, with
    its split: from a ``train``/``test`` folder on its path below ``folder``, else from the end of its name or of
    ``folder``'s (``CDD-11_train``), else ``test``."""
    found = []
    for candidate in sorted({folder, *folders}):
        if CLEAN_FOLDER in _children(candidate, folders):
            split = (_marked(candidate.relative_to(folder).parts) or _split_of_name(candidate.name)
                     or _split_of_name(folder.name) or "test")
            found.append((candidate, split))
    return found


def holds_layout(folder: Path, folders: Collection[Path]) -> bool:
    """Whether ``folder`` is CDD-11 itself, whatever its name: a ``train/`` or ``test/`` folder directly in it holds
    ``clear/`` and at least one subset folder. ``folders``: folders below it (a walk's, at least two levels)."""
    children = _children(folder, folders)
    for split in SPLITS:
        if split in children:
            names = set(_children(children[split], folders))
            if CLEAN_FOLDER in names and names & set(SUBSETS):
                return True
    return False


def root_split_folders(root: Path, folders: Collection[Path]) -> list[Path]:
    """The ``train/`` and ``test/`` folders of a datasets folder that is CDD-11 itself (:func:`holds_layout`), which
    no other dataset family then reads."""
    children = _children(root, folders)
    return [children[split] for split in SPLITS if split in children]


def collect(folder: Path, root: Path, walk: FolderWalk) -> Discovery:
    """Every subset image of every split of ``folder`` paired with the ``clear/`` image of its name, and the clean
    training images. A subset image without its clean image is skipped with the reason.

    Args:
        folder: the CDD-11 folder (or the datasets folder, when it is CDD-11 itself).
        root: the datasets folder.
        walk: the walk of ``folder``.
    """
    found = Discovery()
    for split_folder, split in split_folders(folder, walk.folders):
        inside = walk.under(split_folder)
        subsets = _children(split_folder, inside.folders)
        for subset, task in SUBSETS.items():
            if subset not in subsets:
                continue
            part = pair_by_folders(folder.name, task, split_folder, root, inside, degraded=(subset,),
                                   clean=(CLEAN_FOLDER,), partners=lambda stem: [stem], default=split)
            # The split is the folder's, whatever marker folders lie above the CDD-11 folder.
            found.pairs += [replace(pair, split=split, key=pair.degraded.relative_to(folder).as_posix(),
                                    test_set=test_set_name(subset) if split == "test" else "")
                            for pair in part.pairs]
            found.skipped += part.skipped
        if split == "train":
            clean = subsets[CLEAN_FOLDER]
            found.clean += [FoundClean(folder.name, "train", path, path.relative_to(folder).as_posix())
                            for path in inside.files if path.parent == clean]
    return found


def _folders_in(folder: Path) -> list[Path]:
    try:
        return sorted(folder / entry.name for entry in os.scandir(folder)
                      if entry.is_dir() and not entry.name.startswith("."))
    except OSError:
        return []


def _holds_image(folder: Path) -> bool:
    try:
        return any(entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES
                   for entry in os.scandir(folder) if not entry.name.startswith("."))
    except OSError:
        return False


def cdd11_folders(root: Path) -> list[Path]:
    """The CDD-11 folders under ``root`` as :func:`pip_model.data.datasets.discover` finds them: ``root`` itself when
    it holds the layout, else every folder named like CDD-11 (nothing below one is searched further)."""
    children = _folders_in(root)
    if holds_layout(root, [*children, *(grandchild for child in children for grandchild in _folders_in(child))]):
        return [root]
    found = []
    for folder, folders, _ in os.walk(root, followlinks=True):
        named = [name for name in folders if not name.startswith(".") and claims(name.lower())]
        found += [Path(folder) / name for name in sorted(named)]
        folders[:] = [name for name in folders if not name.startswith(".") and name not in named]
    return found


def missing_folders(root: Path, subsets: Collection[str]) -> list[str]:
    """What the CDD-11 layout under ``root`` lacks for ``subsets``: each split's ``clear/`` and subset folders that
    are missing or hold no image, and a split that is not there at all. Empty when no CDD-11 folder is there (then
    its test sets are simply not found).

    Returns:
        One phrase per missing folder (its path), split by split.
    """
    bases = cdd11_folders(root)
    if not bases:
        return []
    splits: dict[Split, list[Path]] = {split: [] for split in SPLITS}
    for base in bases:
        below = [Path(folder) for folder, _, _ in os.walk(base, followlinks=True)][1:]
        for split_folder, split in split_folders(base, below):
            splits[split].append(split_folder)
    missing = []
    for split, folders in splits.items():
        if not folders:
            where = " or ".join(str(base) for base in bases)
            missing.append(f"a {split}/ folder holding {CLEAN_FOLDER}/ in {where}")
        for split_folder in folders:
            missing += [str(split_folder / name) for name in (CLEAN_FOLDER, *subsets)
                        if not _holds_image(split_folder / name)]
    return missing


ADAPTER = Adapter(claims=claims, collect=collect, test_sets={name: LOOKED_FOR for name in TEST_SETS})
