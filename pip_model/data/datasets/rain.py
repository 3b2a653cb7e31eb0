"""Rain100L and Rain100H: ``rainy/rain-N`` with ``gt/norain-N`` (PromptIR's training layout),
``input/N`` with ``target/N`` (its test layout), ``input/rain-N`` with ``target/norain-N`` (PIP's test layout), or
flat ``rain-N`` beside ``norain-N``. A generic ``Derain`` folder names its test set by the folder below it
(PromptIR's ``test/derain/Rain100L``)."""

from __future__ import annotations

from pathlib import Path

from pip_model.data.datasets.base import (
    Adapter,
    Discovery,
    FoundPair,
    first_part,
    pair_by_folders,
    pair_by_name,
    split_of,
)
from pip_model.image_files import FolderWalk

# The start of a test set's folder names (lower case) -> its name in the paper's tables.
TEST_SETS = {"rain100l": "Rain100L", "rain100h": "Rain100H"}


def claims(name: str) -> bool:
    return name.startswith(("rain100", "rain1400", "rain200")) or name == "derain"


def _norain(stem: str) -> str:
    """``rain-N`` -> ``norain-N`` (lower case in, lower case out); other names stay as they are."""
    return "norain-" + stem.removeprefix("rain-") if stem.startswith("rain-") else stem


def test_set_name(folder: str, key: str) -> str:
    """The test set of a pair: its dataset folder's name (``rain100l`` -> ``Rain100L``), or, in a generic
    ``Derain`` folder, the name of the folder below it that a rain set claims ("" when there is none)."""
    name = first_part(key) if folder.lower() == "derain" else folder
    if not name or not claims(name.lower()) or name.lower() == "derain":
        return ""
    return next((set_name for prefix, set_name in TEST_SETS.items() if name.lower().startswith(prefix)), name)


def collect(folder: Path, root: Path, walk: FolderWalk) -> Discovery:
    def test_set(key: str) -> str:
        return test_set_name(folder.name, key)

    found = Discovery()
    found.extend(pair_by_folders(folder.name, "derain", folder, root, walk, degraded=("rainy", "rain"),
                                 clean=("gt", "norain", "clean"), partners=lambda stem: [_norain(stem)],
                                 default="train", test_set=test_set))
    # PromptIR's test files keep their names on both sides; PIP's are rain-N and norain-N.
    found.extend(pair_by_folders(folder.name, "derain", folder, root, walk, degraded=("input",), clean=("target",),
                                 partners=lambda stem: [stem, _norain(stem)], default="test", test_set=test_set))
    # Flat: rain-N.png beside norain-N.png in one folder (the role folders above are already read).
    seen = {pair.degraded for pair in found.pairs} | {Path(path) for path, _ in found.skipped}
    flat = [path for path in walk.files if path not in seen and path.stem.lower().startswith("rain-")]
    pairs, unmatched = pair_by_name(flat, walk.files, roots=(folder, folder), roles=(),
                                    partners=lambda stem: [_norain(stem)])
    for path, partner in pairs:
        split, key = split_of(path.relative_to(root), "test"), path.relative_to(folder).as_posix()
        found.pairs.append(FoundPair(folder.name, "derain", split, path, partner, key,
                                     test_set(key) if split == "test" else ""))
    for path in unmatched:
        found.skipped.append((str(path), f"{folder.name}: no {_norain(path.stem.lower())}.* beside it"))
    return found


ADAPTER = Adapter(claims=claims, collect=collect, test_sets={
    name: f"a folder named {name}* (any case) with input/ + target/ or flat rain-N + norain-N, or one inside a "
          f"Derain folder (PromptIR's test/derain/{name})" for name in TEST_SETS.values()})
