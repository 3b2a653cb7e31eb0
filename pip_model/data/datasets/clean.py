"""Clean-image sets for denoising: BSD400 and WED train, BSD68, Urban100 and Kodak24 test.

Noise is synthesised on them at fixed seeds, so they need no degraded side. Each test image keeps the name of its
test set (``BSD68``...), so the paper's BSD68 columns are scored on BSD68 alone.
"""

from __future__ import annotations

from pathlib import Path

from pip_model.data.datasets.base import Adapter, Discovery, FoundClean, split_of
from pip_model.image_files import FolderWalk

TRAINING_SETS = ("bsd400", "wed", "waterlooed", "waterloo_exploration")
# A test set's folder names (lower case) -> its name in the paper's tables.
TEST_SETS = {"bsd68": "BSD68", "cbsd68": "CBSD68", "urban100": "Urban100", "kodak24": "Kodak24", "kodak": "Kodak24"}


def claims(name: str) -> bool:
    return name in TRAINING_SETS or name in TEST_SETS or name == "denoise"


def test_set_name(dataset: str) -> str:
    """``bsd68`` -> ``BSD68``: the name of the test set a folder holds ("" for PromptIR's generic ``Denoise``)."""
    return TEST_SETS.get(dataset.lower(), "" if dataset.lower() == "denoise" else dataset)


def collect(folder: Path, root: Path, walk: FolderWalk) -> Discovery:
    """Every image under the folder. A ``Denoise`` folder (PromptIR's layout) holds either images directly
    (its training set, BSD400 + WED) or one folder per test set (``bsd68``, ``urban100``...; PIP's
    ``bsd68/original``)."""
    found = Discovery()
    for path in walk.files:
        relative = path.relative_to(folder)
        nested = folder.name.lower() == "denoise" and len(relative.parts) > 1
        dataset = relative.parts[0] if nested else folder.name
        default = "test" if dataset.lower() in TEST_SETS else "train"
        split = split_of(path.relative_to(root), default)
        found.clean.append(FoundClean(dataset, split, path, relative.as_posix(),
                                      test_set_name(dataset) if split == "test" else ""))
    return found


def _looked_for(name: str) -> str:
    aliases = [folder.capitalize() for folder, set_name in TEST_SETS.items()
               if set_name == name and folder != name.lower()]
    folders = " or ".join([name, *aliases])
    return (f"a folder named {folders} (any case) of images, or one inside a Denoise folder (PromptIR's "
            f"test/denoise/{name.lower()})")


ADAPTER = Adapter(claims=claims, collect=collect,
                  test_sets={name: _looked_for(name) for name in dict.fromkeys(TEST_SETS.values())})
