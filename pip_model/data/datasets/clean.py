"""Clean-image sets for denoising: BSD400 and WED train, BSD68, Urban100 and Kodak24 test.

Noise is synthesised on them at fixed seeds, so they need no degraded side.
"""

from __future__ import annotations

from pathlib import Path

from pip_model.data.datasets.base import Adapter, Discovery, FoundClean, split_of
from pip_model.image_files import FolderWalk

TRAINING_SETS = ("bsd400", "wed", "waterlooed", "waterloo_exploration")
TEST_SETS = ("bsd68", "cbsd68", "urban100", "kodak24", "kodak")


def claims(name: str) -> bool:
    return name in TRAINING_SETS or name in TEST_SETS or name == "denoise"


def collect(folder: Path, root: Path, walk: FolderWalk) -> Discovery:
    """Every image under the folder. A ``Denoise`` folder (PromptIR's layout) holds either images directly
    (its training set, BSD400 + WED) or one folder per test set (``bsd68``, ``urban100``...)."""
    found = Discovery()
    for path in walk.files:
        relative = path.relative_to(folder)
        nested = folder.name.lower() == "denoise" and len(relative.parts) > 1
        dataset = relative.parts[0] if nested else folder.name
        default = "test" if dataset.lower() in TEST_SETS else "train"
        found.clean.append(FoundClean(dataset, split_of(path.relative_to(root), default), path, relative.as_posix()))
    return found


ADAPTER = Adapter(claims=claims, collect=collect)
