"""The dataset families, in the order they claim folders, and the walk that hands each its folders.

Adding a dataset family is one module with ``claims`` and ``collect``, listed here.
"""

from __future__ import annotations

from pathlib import Path

from pip_model.data.datasets import blur, clean, haze, lowlight, rain
from pip_model.data.datasets.base import Adapter, Discovery
from pip_model.image_files import IMAGE_SUFFIXES, walk_files

ADAPTERS: tuple[Adapter, ...] = (clean.ADAPTER, rain.ADAPTER, haze.ADAPTER, blur.ADAPTER, lowlight.ADAPTER)


def discover(root: Path) -> Discovery:
    """Walks ``root`` once (:func:`pip_model.image_files.walk_files`) and lets each dataset family of the registry
    read the folders it recognises, from that walk.

    Folders are offered nearest to ``root`` first; a claimed folder is not searched further by other adapters.
    The walk's bad entries (broken links, link loops, unreadable files, names that are not UTF-8) come first in
    ``skipped``.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"prepare.datasets_root: {root} is not a folder")
    walk = walk_files(root, suffixes=IMAGE_SUFFIXES)
    found = Discovery(skipped=list(walk.problems))
    claimed: list[Path] = []
    for folder in sorted(walk.folders, key=lambda path: (len(path.parts), path.parts)):
        if any(folder.parts[:len(above.parts)] == above.parts for above in claimed):
            continue
        adapter = next((a for a in ADAPTERS if a.claims(folder.name.lower())), None)
        if adapter is not None:
            claimed.append(folder)
            found.extend(adapter.collect(folder, root, walk.under(folder)))
    return found
