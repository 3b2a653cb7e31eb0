"""Rain100L and Rain100H: ``rainy/rain-N`` with ``gt/norain-N`` (PromptIR's training layout),
``input/`` with ``target/`` (its test layout), or flat ``rain-N`` beside ``norain-N``."""

from __future__ import annotations

from pathlib import Path

from pip_model.data.datasets.base import Adapter, Discovery, FoundPair, image_files, pair_by_folders, split_of


def claims(name: str) -> bool:
    return name.startswith(("rain100", "rain1400", "rain200")) or name == "derain"


def _norain(stem: str) -> str:
    return "norain-" + stem.removeprefix("rain-") if stem.lower().startswith("rain-") else stem


def collect(folder: Path, root: Path) -> Discovery:
    found = Discovery()
    found.extend(pair_by_folders(folder.name, "derain", folder, root, degraded=("rainy", "rain"),
                                 clean=("gt", "norain", "clean"), clean_stem=_norain, default="train"))
    found.extend(pair_by_folders(folder.name, "derain", folder, root, degraded=("input",), clean=("target",),
                                 clean_stem=lambda stem: stem, default="test"))
    # Flat: rain-N.png beside norain-N.png in one folder (the role folders above are already read).
    seen = {pair.degraded for pair in found.pairs} | {Path(path) for path, _ in found.skipped}
    files = image_files(folder)
    by_folder_and_stem = {(p.parent, p.stem.lower()): p for p in files}
    for path in files:
        if path in seen or not path.stem.lower().startswith("rain-"):
            continue
        partner = by_folder_and_stem.get((path.parent, _norain(path.stem).lower()))
        if partner is None:
            found.skipped.append((str(path), f"{folder.name}: no {_norain(path.stem)}.* beside it"))
        else:
            found.pairs.append(FoundPair(folder.name, "derain", split_of(path.relative_to(root), "test"), path,
                                         partner, path.relative_to(folder).as_posix()))
    return found


ADAPTER = Adapter(claims=claims, collect=collect)
