"""The dataset families, in the order they claim folders, and the walk that hands each its folders.

Adding a dataset family is one module with ``claims`` and ``collect``, listed here. CDD-11 is also read when the
datasets folder is CDD-11 itself (its ``train/`` and ``test/`` directly in it), and a protocol that requires its
subsets also requires every subset folder of both splits (:func:`pip_model.data.datasets.cdd11.missing_folders`).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from pip_model.data.datasets import blur, cdd11, clean, haze, lowlight, rain
from pip_model.data.datasets.base import Adapter, Discovery
from pip_model.image_files import IMAGE_SUFFIXES, walk_files

ADAPTERS: tuple[Adapter, ...] = (clean.ADAPTER, rain.ADAPTER, haze.ADAPTER, blur.ADAPTER, lowlight.ADAPTER,
                                 cdd11.ADAPTER)

# Every test set a family names -> the folders it is looked for in.
KNOWN_TEST_SETS: dict[str, str] = {name: where for adapter in ADAPTERS for name, where in adapter.test_sets.items()}


class MissingTestSetError(FileNotFoundError):
    """A test set that ``prepare.require_test_sets`` asks for is not under ``prepare.datasets_root``."""


def discover(root: Path) -> Discovery:
    """Walks ``root`` once (:func:`pip_model.image_files.walk_files`) and lets each dataset family of the registry
    read the folders it recognises, from that walk.

    Folders are offered nearest to ``root`` first; a claimed folder is not searched further by other adapters. A
    ``root`` that is CDD-11 itself (``train/`` and ``test/`` with ``clear/`` and the subset folders, whatever its
    name) is read as CDD-11, and its ``train/`` and ``test/`` by no other family.
    The walk's bad entries (broken links, link loops, unreadable files, names that are not UTF-8) come first in
    ``skipped``.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"prepare.datasets_root: {root} is not a folder")
    walk = walk_files(root, suffixes=IMAGE_SUFFIXES)
    found = Discovery(skipped=list(walk.problems))
    claimed: list[Path] = []
    if cdd11.holds_layout(root, walk.folders):
        claimed += cdd11.root_split_folders(root, walk.folders)
        found.extend(cdd11.ADAPTER.collect(root, root, walk))
    for folder in sorted(walk.folders, key=lambda path: (len(path.parts), path.parts)):
        if any(folder.parts[:len(above.parts)] == above.parts for above in claimed):
            continue
        adapter = next((a for a in ADAPTERS if a.claims(folder.name.lower())), None)
        if adapter is not None:
            claimed.append(folder)
            found.extend(adapter.collect(folder, root, walk.under(folder)))
    return found


def unknown_test_sets(names: Collection[str]) -> list[str]:
    """The names no dataset family gives a test set (a typo in ``prepare.require_test_sets``)."""
    return [name for name in names if name not in KNOWN_TEST_SETS]


def require_test_sets(required: Collection[str], found: Collection[str], root: str, skipped: int = 0) -> None:
    """Stops, before anything is read or trained, when a required test set was not found, or when a required CDD-11
    subset lacks a folder in either split (its training pairs are the protocol's too).

    Raises:
        MissingTestSetError: one line naming each missing set and the folders it was looked for in, or the CDD-11
            folders that are missing.
    """
    missing = [name for name in required if name not in found]
    subsets = [cdd11.TEST_SETS[name] for name in required if name in cdd11.TEST_SETS]
    folders = cdd11.missing_folders(Path(root), subsets) if subsets and root and Path(root).is_dir() else []
    if not missing and not folders:
        return
    where = f"under prepare.datasets_root {root}" if root else "(prepare.datasets_root is empty)"
    note = f" ({skipped} file(s) rejected: see rejects.csv)" if skipped else ""
    lacking = (f"missing or without images: {', '.join(folders)} (CDD-11's train/ and test/ each hold "
               f"{cdd11.CLEAN_FOLDER}/ and a folder per subset)") if folders else ""
    if not missing:
        raise MissingTestSetError(f"prepare.require_test_sets: CDD-11 is incomplete {where}{note}: {lacking}")
    # Sets looked for in the same folders are named together (CDD-11's eleven subsets).
    groups: dict[str, list[str]] = {}
    for name in missing:
        groups.setdefault(KNOWN_TEST_SETS.get(name, "no dataset family names it"), []).append(name)
    looked = "; ".join(f"{', '.join(names)}: {folders_looked}" for folders_looked, names in groups.items())
    raise MissingTestSetError(f"prepare.require_test_sets: {', '.join(missing)} not found {where}{note}; looked for "
                              f"{looked}" + (f"; {lacking}" if lacking else ""))
