"""LOL: ``our485/low/N.png`` with ``our485/high/N.png`` for training, ``eval15/...`` for testing."""

from __future__ import annotations

from pathlib import Path

from pip_model.data.datasets.base import Adapter, Discovery, pair_by_folders
from pip_model.image_files import FolderWalk


def claims(name: str) -> bool:
    return name.startswith("lol") or name == "lowlight"


def collect(folder: Path, root: Path, walk: FolderWalk) -> Discovery:
    return pair_by_folders(folder.name, "lowlight", folder, root, walk, degraded=("low",), clean=("high", "normal"),
                           clean_stem=lambda stem: stem, default="test")


ADAPTER = Adapter(claims=claims, collect=collect)
