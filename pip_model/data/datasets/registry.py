"""The dataset families, in the order they claim folders, and the walk that hands each its folders.

Adding a dataset family is one module with ``claims`` and ``collect``, listed here.
"""

from __future__ import annotations

from pathlib import Path

from pip_model.data.datasets import blur, clean, haze, lowlight, rain
from pip_model.data.datasets.base import Adapter, Discovery

ADAPTERS: tuple[Adapter, ...] = (clean.ADAPTER, rain.ADAPTER, haze.ADAPTER, blur.ADAPTER, lowlight.ADAPTER)


def discover(root: Path) -> Discovery:
    """Walks ``root`` and lets each dataset family of the registry read the folders it recognises.

    A claimed folder is not searched further by other adapters. Raises ``FileNotFoundError``
    if ``root`` is not a folder.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"prepare.datasets_root: {root} is not a folder")
    found = Discovery()
    pending = [root]
    while pending:
        folder = pending.pop(0)
        for child in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
            adapter = next((a for a in ADAPTERS if a.claims(child.name.lower())), None)
            if adapter is None:
                pending.append(child)
            else:
                found.extend(adapter.collect(child, root))
    return found
