"""GoPro: ``train/SEQ/blur/N.png`` and ``test/SEQ/blur/N.png``, each with ``SEQ/sharp/N.png``."""

from __future__ import annotations

from pathlib import Path

from pip_model.data.datasets.base import Adapter, Discovery, pair_by_folders
from pip_model.image_files import FolderWalk


def claims(name: str) -> bool:
    return name.startswith("gopro") or name == "deblur"


def collect(folder: Path, root: Path, walk: FolderWalk) -> Discovery:
    return pair_by_folders(folder.name, "deblur", folder, root, walk, degraded=("blur", "input"),
                           clean=("sharp", "target"), clean_stem=lambda stem: stem, default="test")


ADAPTER = Adapter(claims=claims, collect=collect)
