"""Rain100L and Rain100H: ``rainy/rain-N`` with ``gt/norain-N`` (PromptIR's training layout),
``input/`` with ``target/`` (its test layout), or flat ``rain-N`` beside ``norain-N``."""

from __future__ import annotations

from pathlib import Path

from pip_model.data.datasets.base import Adapter, Discovery, FoundPair, pair_by_folders, pair_by_name, split_of
from pip_model.image_files import FolderWalk


def claims(name: str) -> bool:
    return name.startswith(("rain100", "rain1400", "rain200")) or name == "derain"


def _norain(stem: str) -> str:
    """``rain-N`` -> ``norain-N`` (lower case in, lower case out); other names stay as they are."""
    return "norain-" + stem.removeprefix("rain-") if stem.startswith("rain-") else stem


def collect(folder: Path, root: Path, walk: FolderWalk) -> Discovery:
    found = Discovery()
    found.extend(pair_by_folders(folder.name, "derain", folder, root, walk, degraded=("rainy", "rain"),
                                 clean=("gt", "norain", "clean"), clean_stem=_norain, default="train"))
    found.extend(pair_by_folders(folder.name, "derain", folder, root, walk, degraded=("input",), clean=("target",),
                                 clean_stem=lambda stem: stem, default="test"))
    # Flat: rain-N.png beside norain-N.png in one folder (the role folders above are already read).
    seen = {pair.degraded for pair in found.pairs} | {Path(path) for path, _ in found.skipped}
    flat = [path for path in walk.files if path not in seen and path.stem.lower().startswith("rain-")]
    pairs, unmatched = pair_by_name(flat, walk.files, roots=(folder, folder), roles=(),
                                    partners=lambda stem: [_norain(stem)])
    for path, partner in pairs:
        found.pairs.append(FoundPair(folder.name, "derain", split_of(path.relative_to(root), "test"), path, partner,
                                     path.relative_to(folder).as_posix()))
    for path in unmatched:
        found.skipped.append((str(path), f"{folder.name}: no {_norain(path.stem.lower())}.* beside it"))
    return found


ADAPTER = Adapter(claims=claims, collect=collect)
