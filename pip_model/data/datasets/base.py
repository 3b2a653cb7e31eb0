"""What every dataset adapter returns, and the helpers adapters share to pair and split files."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pip_model.image_files import IMAGE_SUFFIXES, walk_files

Split = Literal["train", "test"]
TRAIN_MARKERS = frozenset({"train", "training", "our485"})
TEST_MARKERS = frozenset({"test", "testing", "eval15", "val"})


@dataclass(frozen=True)
class FoundPair:
    """A degraded image and its clean original, as a dataset lays them out.

    Attributes:
        dataset: the dataset's folder name (``Rain100L``, ``SOTS``...).
        task: the task the degraded image belongs to.
        split: ``train`` or ``test``.
        degraded: the degraded file.
        clean: its clean file.
        key: the pair's name inside its dataset (relative path of the degraded file), for ids.
    """

    dataset: str
    task: str
    split: Split
    degraded: Path
    clean: Path
    key: str


@dataclass(frozen=True)
class FoundClean:
    """A clean image of a clean-image set (noise is synthesised on it)."""

    dataset: str
    split: Split
    path: Path
    key: str


@dataclass
class Discovery:
    """Everything :func:`discover` found under a root, and what it skipped with the reason."""

    pairs: list[FoundPair] = field(default_factory=list)
    clean: list[FoundClean] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def extend(self, other: Discovery) -> None:
        self.pairs += other.pairs
        self.clean += other.clean
        self.skipped += other.skipped

    def summary(self) -> list[str]:
        """One line per dataset and split: what was found, and how many files were skipped."""
        counts = Counter((p.dataset, p.task, p.split) for p in self.pairs)
        lines = [f"{dataset} ({task}, {split}): {n} pairs" for (dataset, task, split), n in sorted(counts.items())]
        clean = Counter((c.dataset, c.split) for c in self.clean)
        lines += [f"{dataset} (clean, {split}): {n} images" for (dataset, split), n in sorted(clean.items())]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} file(s) (see the rejects table)")
        return lines


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, sorted; hidden files and folders and bad entries are left out
    (:func:`pip_model.data.corpus.dataset_sources` lists the bad ones)."""
    return walk_files(folder, suffixes=IMAGE_SUFFIXES).files


def split_of(path: Path, default: Split) -> Split:
    """``train`` or ``test`` from a marker folder in ``path`` (the nearest wins), else ``default``."""
    for part in reversed([part.lower() for part in path.parts]):
        if part in TRAIN_MARKERS:
            return "train"
        if part in TEST_MARKERS:
            return "test"
    return default


def pair_by_folders(
    dataset: str, task: str, folder: Path, root: Path, *, degraded: tuple[str, ...], clean: tuple[str, ...],
    clean_stem: Callable[[str], str], default: Split,
) -> Discovery:
    """Pairs every image in a ``degraded`` role folder under ``folder`` with the file of stem ``clean_stem(stem)``
    in a sibling ``clean`` role folder (any suffix). Unmatched degraded files are skipped with the reason."""
    found = Discovery()
    for role_dir in sorted(d for d in folder.rglob("*") if d.is_dir() and d.name.lower() in degraded):
        partners = [role_dir.parent / name for name in _siblings(role_dir.parent, clean)]
        by_stem = {p.stem.lower(): p for partner in partners for p in image_files(partner)}
        for path in image_files(role_dir):
            wanted = clean_stem(path.stem).lower()
            match = by_stem.get(wanted)
            if match is None:
                where = ", ".join(str(p) for p in partners) or f"no {'/'.join(clean)} folder beside {role_dir}"
                found.skipped.append((str(path), f"{dataset}: no clean image named {wanted}.* in {where}"))
                continue
            found.pairs.append(FoundPair(dataset, task, split_of(path.relative_to(root), default), path, match,
                                         path.relative_to(folder).as_posix()))
    return found


def _siblings(parent: Path, names: tuple[str, ...]) -> list[str]:
    return sorted(d.name for d in parent.iterdir() if d.is_dir() and d.name.lower() in names)


def slug(text: str) -> str:
    """Lower-case letters, digits and ``_``: safe in file names and ids."""
    return re.sub(r"[^A-Za-z0-9]+", "_", re.sub(r"\.[A-Za-z0-9]+$", "", text)).strip("_").lower() or "image"


def unique_id(base: str, origin: Path | str, used: set[str]) -> str:
    """``base``, or ``base`` plus a short hash of ``origin`` when another pair already has that id.

    Two sources may hold the same names (Rain100L from two mirrors): their pairs still get
    distinct ids, so no file written under an id can replace another's.
    """
    candidate = base
    if candidate in used:
        candidate = f"{base}-{hashlib.sha256(str(origin).encode()).hexdigest()[:8]}"
    while candidate in used:  # the same file listed twice
        candidate = f"{candidate}x"
    used.add(candidate)
    return candidate


@dataclass(frozen=True)
class Adapter:
    """A dataset family: which folder names it claims, and how it reads one claimed folder."""

    claims: Callable[[str], bool]
    collect: Callable[[Path, Path], Discovery]
