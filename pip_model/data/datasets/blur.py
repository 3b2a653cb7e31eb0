"""GoPro: ``train/SEQ/blur/N.png`` and ``test/SEQ/blur/N.png``, each with ``SEQ/sharp/N.png``; PIP's
``GOPRO_deblur/test/blur/N.png`` with ``GOPRO_deblur/test/sharp/N.png``."""

from __future__ import annotations

from pathlib import Path

from pip_model.data.datasets.base import Adapter, Discovery, pair_by_folders
from pip_model.image_files import FolderWalk


def claims(name: str) -> bool:
    return name.startswith("gopro") or name == "deblur"


def collect(folder: Path, root: Path, walk: FolderWalk) -> Discovery:
    return pair_by_folders(folder.name, "deblur", folder, root, walk, degraded=("blur", "input"),
                           clean=("sharp", "target"), partners=lambda stem: [stem], default="test",
                           test_set=lambda key: "GoPro")


ADAPTER = Adapter(claims=claims, collect=collect,
                  test_sets={"GoPro": "a folder named GoPro* or Deblur (any case) with blur/ + sharp/ (under test/, "
                                      "PIP's test/GOPRO_deblur/test)"})
