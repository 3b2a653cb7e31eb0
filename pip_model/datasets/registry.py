"""The dataset families :func:`pip_model.datasets.discover` knows, in the order they claim folders.

Adding a dataset family is one module with ``claims`` and ``collect``, listed here.
"""

from __future__ import annotations

from pip_model.datasets import blur, clean, haze, lowlight, rain
from pip_model.datasets.base import Adapter

ADAPTERS: tuple[Adapter, ...] = (clean.ADAPTER, rain.ADAPTER, haze.ADAPTER, blur.ADAPTER, lowlight.ADAPTER)
