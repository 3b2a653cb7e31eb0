"""What every dataset adapter returns, and the helpers adapters share to pair and split files.

:func:`pair_by_name` is the one pairing engine: the adapters (through :func:`pair_by_folders`) and
``prepare.paired`` (:func:`pip_model.data.corpus.pair_source`) call it with their own name rule. Files are found
by the one folder walk, :func:`pip_model.image_files.walk_files`.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pip_model.image_files import FolderWalk

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
        test_set: the test set it is scored in, by the name the paper's tables give it (``Rain100L``, ``SOTS``,
            ``GoPro``, ``LOL``); empty for a training pair or a folder that names no test set.
    """

    dataset: str
    task: str
    split: Split
    degraded: Path
    clean: Path
    key: str
    test_set: str = ""


@dataclass(frozen=True)
class FoundClean:
    """A clean image of a clean-image set (noise is synthesised on it).

    Attributes:
        test_set: the test set it is scored in (``BSD68``, ``Urban100``, ``Kodak24``...); empty for a training
            image or a folder that names no test set.
    """

    dataset: str
    split: Split
    path: Path
    key: str
    test_set: str = ""


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

    def test_sets(self) -> set[str]:
        """The names of the test sets found (clean test images or test pairs)."""
        return {item.test_set for item in [*self.pairs, *self.clean] if item.test_set and item.split == "test"}

    def summary(self) -> list[str]:
        """One line per dataset and split: what was found (and the test set it is scored as, where the folder's name
        is another: ``bsd68 (clean, test) as BSD68``), and how many files were skipped."""
        def named(dataset: str, test_set: str) -> str:
            return f" as {test_set}" if test_set and test_set != dataset else ""

        counts = Counter((p.dataset, p.task, p.split, p.test_set) for p in self.pairs)
        lines = [f"{dataset} ({task}, {split}){named(dataset, test_set)}: {n} pairs"
                 for (dataset, task, split, test_set), n in sorted(counts.items())]
        clean = Counter((c.dataset, c.split, c.test_set) for c in self.clean)
        lines += [f"{dataset} (clean, {split}){named(dataset, test_set)}: {n} images"
                  for (dataset, split, test_set), n in sorted(clean.items())]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} file(s) (see the rejects table)")
        return lines


def split_of(path: Path, default: Split) -> Split:
    """``train`` or ``test`` from a marker folder in ``path`` (the nearest wins), else ``default``."""
    for part in reversed([part.lower() for part in path.parts]):
        if part in TRAIN_MARKERS:
            return "train"
        if part in TEST_MARKERS:
            return "test"
    return default


# Role folders of ``prepare.paired``: which side of a pair their files are on (GoPro's blur/sharp, LOL's low/high,
# SOTS's hazy/gt or clear, rainy/norain, input/target...).
DEGRADED_FOLDERS = frozenset({"blur", "low", "hazy", "rainy", "rain", "input", "degraded", "noisy"})
CLEAN_FOLDERS = frozenset({"sharp", "high", "gt", "clear", "norain", "target", "clean", "groundtruth"})


def paired_names(stem: str) -> list[str]:
    """The clean names a degraded file of name ``stem`` (lower case, no suffix) may pair with, most wanted first:
    its own (GoPro, LOL, most datasets); ``norain-N`` for ``rain-N`` (Rain100L); the part before its first ``_``
    (SOTS: ``0001_0.8_0.2`` -> ``0001``). The name rule of ``prepare.paired``."""
    rain = ["norain-" + stem.removeprefix("rain-")] if stem.startswith("rain-") else []
    return [stem, *rain, stem.split("_")[0]]


def role_place(relative: Path, roles: Collection[str]) -> tuple[str, ...]:
    """The folder of a file (``relative`` to its root) with the role folders made equal: ``SEQ/blur/1.png`` and
    ``SEQ/sharp/1.png`` are in the same place when ``blur`` and ``sharp`` are roles."""
    return tuple("*" if part.lower() in roles else part for part in relative.parent.parts)


def _places(place: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """``place``, then, below a role folder, each folder above it up to the role folder itself (OTS:
    ``synthetic/part1/ID_A_B`` finds ``original/ID``)."""
    yield place
    if "*" in place:
        while place[-1] != "*":
            place = place[:-1]
            yield place


def pair_by_name(degraded: Iterable[Path], clean: Iterable[Path], *, roots: tuple[Path, Path],
                 roles: Collection[str], partners: Callable[[str], Sequence[str]], roots_are_roles: bool = False,
                 ) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Pairs degraded files with clean files by name: the one pairing engine of the adapters and of
    ``prepare.paired``.

    A degraded file pairs with the first clean file in the same place (its folder relative to its root, role
    folders counting as the same folder: see :func:`role_place`; below a role folder, the nearest folder up to it)
    whose name without suffix is one of ``partners(stem)``, tried in order. Names are compared in lower case.

    Args:
        degraded: the degraded files, under ``roots[0]``.
        clean: the clean candidates, under ``roots[1]`` (sorted: the first of equal names wins).
        roots: the folders the two sides' places are relative to (may be the same folder).
        roles: the role folder names, in lower case.
        partners: the name rule: a degraded stem -> the clean stems it may pair with, most wanted first.
        roots_are_roles: the two roots are the two sides' role folders (``prepare.paired``'s ``degraded_dir`` and
            ``clean_dir``), so a degraded file also finds its partner in the folders above its own, up to its root
            (OTS: ``synthetic/partK/ID_A_B`` finds ``original/ID``).

    Returns:
        The (degraded, clean) pairs, and the degraded files that found no clean partner.
    """
    degraded_root, clean_root = roots
    top = ("*",) if roots_are_roles else ()  # each root counts as a role folder above its files
    index: dict[tuple[tuple[str, ...], str], Path] = {}
    for path in clean:
        index.setdefault((top + role_place(path.relative_to(clean_root), roles), path.stem.lower()), path)
    pairs, unmatched = [], []
    for path in degraded:
        names = [name.lower() for name in partners(path.stem.lower())]
        places = _places(top + role_place(path.relative_to(degraded_root), roles))
        match = next((index[(place, name)] for place in places for name in names if (place, name) in index), None)
        if match is None:
            unmatched.append(path)
        else:
            pairs.append((path, match))
    return pairs, unmatched


def role_folder(path: Path, root: Path, roles: Collection[str]) -> Path | None:
    """The nearest folder above ``path`` (below ``root``) named after one of ``roles``, or None."""
    parts = path.relative_to(root).parent.parts
    for end in range(len(parts), 0, -1):
        if parts[end - 1].lower() in roles:
            return root.joinpath(*parts[:end])
    return None


def pair_by_folders(
    dataset: str, task: str, folder: Path, root: Path, walk: FolderWalk, *, degraded: tuple[str, ...],
    clean: tuple[str, ...], partners: Callable[[str], Sequence[str]], default: Split,
    test_set: Callable[[str], str] = lambda key: "",
) -> Discovery:
    """Pairs every image in a ``degraded`` role folder under ``folder`` with the first image of a stem in
    ``partners(stem)`` (any suffix) in a sibling ``clean`` role folder, by :func:`pair_by_name`. Unmatched degraded
    files are skipped with the reason.

    Args:
        walk: the walk of ``folder`` (:meth:`pip_model.image_files.FolderWalk.under`): its image files and folders.
        test_set: the name of the test set a test pair of this key (its path below ``folder``) is scored in.
    """
    roles = frozenset(degraded) | frozenset(clean)
    side = {path: role_folder(path, folder, roles) for path in walk.files}
    pairs, unmatched = pair_by_name([path for path, role in side.items() if role and role.name.lower() in degraded],
                                    [path for path, role in side.items() if role and role.name.lower() in clean],
                                    roots=(folder, folder), roles=roles, partners=partners)
    found = Discovery()
    for path, match in pairs:
        split, key = split_of(path.relative_to(root), default), path.relative_to(folder).as_posix()
        found.pairs.append(FoundPair(dataset, task, split, path, match, key, test_set(key) if split == "test" else ""))
    for path in unmatched:
        role_dir = side[path]
        sides = [d for d in walk.folders if d.parent == role_dir.parent and d.name.lower() in clean]
        where = ", ".join(str(p) for p in sides) or f"no {'/'.join(clean)} folder beside {role_dir}"
        names = " or ".join(f"{name}.*" for name in dict.fromkeys(partners(path.stem.lower())))
        found.skipped.append((str(path), f"{dataset}: no clean image named {names} in {where}"))
    return found


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


def first_part(key: str) -> str:
    """The first folder of a key (a path below a claimed folder), or "" for a file directly in it."""
    parts = key.split("/")
    return parts[0] if len(parts) > 1 else ""


@dataclass(frozen=True)
class Adapter:
    """A dataset family: which folder names it claims, how it reads one claimed folder, and the test sets it names.

    Attributes:
        claims: a folder name (lower case) -> whether this family reads that folder.
        collect: (folder, datasets root, the walk of the folder) -> what the folder holds.
        test_sets: each test set this family can name -> the folders it looks for it in, for people (what
            ``prepare.require_test_sets`` says when one is missing).
    """

    claims: Callable[[str], bool]
    collect: Callable[[Path, Path, FolderWalk], Discovery]
    test_sets: Mapping[str, str] = field(default_factory=dict)
