"""The paper's datasets as their users have them on disk, one adapter per dataset family.

Point :func:`discover` at a folder holding any of them (each under its usual name, at any
depth) and it returns what it found: degraded/clean pairs and clean image sets, each with
the split its layout implies, plus what it skipped and why. Nothing is read or copied here;
only file names and folders are looked at.

| family | module | recognised folder names | layouts |
| --- | --- | --- | --- |
| clean sets (noise is synthesised) | :mod:`.clean` | BSD400, WED, BSD68, CBSD68, Urban100, Kodak24, Denoise | images at any depth |
| rain | :mod:`.rain` | Rain100L, Rain100H, Derain | ``rainy/rain-N`` + ``gt/norain-N``; ``input/`` + ``target/`` (same names, or ``rain-N`` + ``norain-N``); flat ``rain-N`` + ``norain-N`` |
| haze | :mod:`.haze` | OTS, RESIDE*, SOTS*, Dehaze | ``synthetic/partK/ID_A_B`` + ``original/ID``; ``hazy/ID_A_B`` + ``gt/ID`` or ``clear/ID``; ``input/`` + ``target/`` |
| blur | :mod:`.blur` | GoPro*, Deblur | ``SEQ/blur/N`` + ``SEQ/sharp/N`` |
| low light | :mod:`.lowlight` | LOL*, Lowlight, Enhance | ``low/N`` + ``high/N`` (``our485`` trains, ``eval15`` tests) |
| composite weather (CDD-11) | :mod:`.cdd11` | CDD-11, CDD_11, cdd11 (or the datasets folder itself) | ``{train,test}/SUBSET/N`` + ``{train,test}/clear/N``, 11 subsets (``low`` ... ``low_haze_snow``), each its own task and test set |

A path component ``train``/``Train`` (or ``our485``) makes a set a training set, ``test``
(or ``eval15``) a test set; otherwise each family's usual role applies (BSD400, WED and the
OTS/``rainy`` layouts train, the rest test).

Every test image and pair keeps the name of its test set (``FoundClean.test_set``, ``FoundPair.test_set``: BSD68,
Urban100, Kodak24, Rain100L, SOTS, GoPro, LOL, ``CDD-11 low``...), also inside PromptIR's and PIP's generic task folders
(``test/denoise/bsd68``, ``test/derain/Rain100L``, ``test/dehaze``, ``test/enhance``), so each is scored on its own;
:func:`require_test_sets` stops a run that lacks one (``prepare.require_test_sets``).
"""

from __future__ import annotations

from pip_model.data.datasets.base import Discovery, FoundClean, FoundPair, unique_id
from pip_model.data.datasets.registry import (
    KNOWN_TEST_SETS,
    MissingTestSetError,
    discover,
    require_test_sets,
    unknown_test_sets,
)

__all__ = ["KNOWN_TEST_SETS", "Discovery", "FoundClean", "FoundPair", "MissingTestSetError", "discover",
           "require_test_sets", "unique_id", "unknown_test_sets"]
