"""RESIDE: OTS for training (``synthetic/partK/ID_A_B.jpg`` with ``original/ID.jpg``) and SOTS
outdoor for testing (``hazy/ID_A_B.*`` with ``gt/ID.*`` or ``clear/ID.*``; PromptIR's copy uses
``input/`` and ``target/``, PIP's ``test/dehaze/outdoor/input/``). ``A`` and ``B`` are the airlight and the
scattering coefficient. Test pairs are SOTS's (``SOTS-indoor`` below a folder named ``indoor``: the paper tests
the outdoor part)."""

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
    def test_set(key: str) -> str:
        indoor = any("indoor" in part.lower() for part in (folder.name, *key.split("/")[:-1]))
        return "SOTS-indoor" if indoor else "SOTS"

    found = Discovery()
    found.extend(pair_by_folders(folder.name, "dehaze", folder, root, walk, degraded=("synthetic",),
                                 clean=("original",), partners=lambda stem: [scene_id(stem)], default="train",
                                 test_set=test_set))
    found.extend(pair_by_folders(folder.name, "dehaze", folder, root, walk, degraded=("hazy", "input"),
                                 clean=("gt", "clear", "target"), partners=lambda stem: [scene_id(stem)],
                                 default="test", test_set=test_set))
    return found


ADAPTER = Adapter(claims=claims, collect=collect, test_sets={
    "SOTS": "a folder named SOTS*, RESIDE* or Dehaze (any case) with hazy/ + gt/ (or clear/) or input/ + target/ "
            "(PromptIR's test/dehaze, PIP's test/dehaze/outdoor)",
    "SOTS-indoor": "an indoor/ folder inside a folder named SOTS*, RESIDE* or Dehaze (any case)"})
