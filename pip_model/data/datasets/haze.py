"""RESIDE: OTS for training (``synthetic/partK/ID_A_B.jpg`` with ``original/ID.jpg``) and SOTS
outdoor for testing (``hazy/ID_A_B.*`` with ``gt/ID.*`` or ``clear/ID.*``; PromptIR's copy uses
``input/`` and ``target/``). ``A`` and ``B`` are the airlight and the scattering coefficient."""

from __future__ import annotations

from pathlib import Path

from pip_model.data.datasets.base import Adapter, Discovery, pair_by_folders
from pip_model.image_files import FolderWalk


def claims(name: str) -> bool:
    return name.startswith(("ots", "sots", "reside")) or name == "dehaze"


def scene_id(stem: str) -> str:
    """``0025_0.8_0.04`` -> ``0025``: the clean scene of a hazy rendering."""
    return stem.split("_")[0]


def collect(folder: Path, root: Path, walk: FolderWalk) -> Discovery:
    found = Discovery()
    found.extend(pair_by_folders(folder.name, "dehaze", folder, root, walk, degraded=("synthetic",),
                                 clean=("original",), clean_stem=scene_id, default="train"))
    found.extend(pair_by_folders(folder.name, "dehaze", folder, root, walk, degraded=("hazy", "input"),
                                 clean=("gt", "clear", "target"), clean_stem=scene_id, default="test"))
    return found


ADAPTER = Adapter(claims=claims, collect=collect)
