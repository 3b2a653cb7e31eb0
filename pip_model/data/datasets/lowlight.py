"""LOL: ``our485/low/N.png`` with ``our485/high/N.png`` for training, ``eval15/...`` for testing; PIP's
``Train/Enhance/{low,high}`` and ``test/enhance/{low,high}``."""

from __future__ import annotations

from pathlib import Path

from pip_model.data.datasets.base import Adapter, Discovery, pair_by_folders
from pip_model.image_files import FolderWalk


def claims(name: str) -> bool:
    return name.startswith("lol") or name in ("lowlight", "enhance")


def collect(folder: Path, root: Path, walk: FolderWalk) -> Discovery:
    return pair_by_folders(folder.name, "lowlight", folder, root, walk, degraded=("low",), clean=("high", "normal"),
                           partners=lambda stem: [stem], default="test", test_set=lambda key: "LOL")


ADAPTER = Adapter(claims=claims, collect=collect,
                  test_sets={"LOL": "a folder named LOL*, Lowlight or Enhance (any case) with low/ + high/ (under "
                                    "eval15/ or test/, PIP's test/enhance)"})
