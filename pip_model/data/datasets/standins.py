"""Stand-ins of the paper's datasets, in their published layouts and file names, at any size.

The real datasets cannot be downloaded here; these procedural images (smooth colour fields
with edges and texture, degraded by this project's own degradations where a degraded side is
needed) exercise every layout that :mod:`pip_model.data.datasets` reads, and scale to measure the
pipeline:

    python -m pip_model.data.datasets.standins ROOT --count 8 --size 96
    python -m pip_model.data.datasets.standins ROOT --layout promptir --omit SOTS

writes, by ``--layout``:

* ``published`` (the default): each dataset under its own name,
  ``ROOT/{BSD400,WED,BSD68,Urban100,Kodak24,Rain100L,Rain100H,OTS,SOTS,GoPro,LOL}``;
* ``promptir``: PromptIR's tree (its INSTALL.md), ``ROOT/Train/{Denoise,Derain,Dehaze}`` and
  ``ROOT/test/{denoise/{bsd68,urban100},derain/Rain100L,dehaze}`` (input and target of the same names);
* ``pip``: PIP's tree (``src/PIPNet_Trainer.py: prepare_args``), ``ROOT/data/Train/{Denoise,Derain,Dehaze,
  GOPRO_deblur/train,Enhance}`` and ``ROOT/data/test/{denoise/bsd68/original,derain/Rain100L,dehaze/outdoor,
  GOPRO_deblur/test,enhance}`` (Rain100L's test pairs ``input/rain-N`` + ``target/norain-N``);
* ``cdd11``: OneRestore's CDD-11, ``ROOT/CDD-11/{train,test}/{clear,low,haze,rain,snow,low_haze,...}/NNNNNN.png``:
  ``--count`` clean images per split, each degraded by the task of every subset (one ``degrade`` per subset), under
  the clean image's name.

``--omit`` leaves datasets out (``SOTS``: a tree without its haze test set); with ``--layout cdd11``, subset folders of
one split (``test/snow``, ``train/low_haze``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from pip_model.data.datasets.cdd11 import CLEAN_FOLDER, SUBSETS
from pip_model.data.datasets.cdd11 import SPLITS as CDD11_SPLITS
from pip_model.data.degradations import degrade
from pip_model.image_files import write_png

Layout = Literal["published", "promptir", "pip", "cdd11"]
LAYOUTS: tuple[str, ...] = ("published", "promptir", "pip", "cdd11")
DATASETS = ("BSD400", "WED", "BSD68", "Urban100", "Kodak24", "Rain100L", "Rain100H", "OTS", "SOTS", "GoPro", "LOL")
# What --omit can leave out of the cdd11 layout: one subset folder of one split.
CDD11_FOLDERS = tuple(f"{split}/{subset}" for split in CDD11_SPLITS for subset in SUBSETS)


def procedural_image(seed: int, size: int) -> np.ndarray:
    """A smooth colour field with a few hard-edged shapes and fine texture, (size, size, 3) in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (rng.uniform(0.5, 2) * x + rng.uniform(0.5, 2) * y
                                                       + rng.uniform()))
                      for _ in range(3)], axis=-1)
    for _ in range(3):
        cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.2)
        image[(y - cy) ** 2 + (x - cx) ** 2 < r**2] = rng.uniform(0, 1, 3)
    image += 0.03 * rng.standard_normal(image.shape)
    return np.clip(image, 0, 1).astype(np.float32)


def _degraded(clean: np.ndarray, task: str, seed: int) -> np.ndarray:
    images = torch.from_numpy(clean).permute(2, 0, 1)[None]
    return degrade(images, task, seed=seed)[0][0].permute(1, 2, 0).numpy()


def _write(path: Path, rgb: np.ndarray) -> None:
    """PNG, or JPEG or BMP by the suffix, as the originals of WED and RESIDE come."""
    if path.suffix == ".png":
        write_png(path, rgb)
        return
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(path)


class _Writer:
    """Writes stand-in images and pairs, each clean image a new procedural one (in the order they are asked for)."""

    def __init__(self, *, count: int, size: int, seed: int) -> None:
        self.count, self.size, self.seed = count, size, seed
        self.number = 0

    def clean(self) -> np.ndarray:
        self.number += 1
        return procedural_image(self.seed * 1_000_003 + self.number - 1, self.size)

    def images(self, folder: Path, name: Callable[[int], str]) -> None:
        """``count`` clean images, the i-th (from 1) named ``name(i)``."""
        for i in range(1, self.count + 1):
            _write(folder / name(i), self.clean())

    def pair(self, degraded: Path, clean: Path, task: str, seed: int) -> None:
        sharp = self.clean()
        _write(clean, sharp)
        _write(degraded, _degraded(sharp, task, seed))

    def pairs(self, degraded: Path, clean: Path, task: str, names: Callable[[int], tuple[str, str]],
              seed: Callable[[int], int]) -> None:
        """``count`` pairs: the i-th as ``degraded/names(i)[0]`` and ``clean/names(i)[1]``, degraded at ``seed(i)``."""
        for i in range(1, self.count + 1):
            degraded_name, clean_name = names(i)
            self.pair(degraded / degraded_name, clean / clean_name, task, seed(i))

    def ots(self, folder: Path, i: int) -> None:
        """One OTS scene: ``original/ID.jpg`` and two renderings ``synthetic/partK/ID_A_B.jpg``."""
        scene, sharp = f"{i:04d}", self.clean()
        _write(folder / "original" / f"{scene}.jpg", sharp)
        for part, (airlight, beta) in enumerate(((0.8, 0.04), (0.9, 0.08)), start=1):
            _write(folder / "synthetic" / f"part{part}" / f"{scene}_{airlight}_{beta}.jpg",
                   _degraded(sharp, "dehaze", i * 10 + part))


def _published(out: _Writer, root: Path, keep: Callable[[str], bool]) -> None:
    for name in ("BSD400", "WED", "BSD68", "Urban100", "Kodak24"):
        if keep(name):
            out.images(root / name, (lambda i: f"{i:05d}.bmp") if name == "WED" else
                       (lambda i, name=name: f"{name.lower()}_{i:04d}.png"))
    for name in ("Rain100L", "Rain100H"):
        train, test = root / name / "train", root / name / "test"
        # Training: rainy/ and gt/ (PromptIR's names); test: input/ and target/.
        for i in range(1, out.count + 1) if keep(name) else ():
            out.pair(train / "rainy" / f"rain-{i}.png", train / "gt" / f"norain-{i}.png", "derain", i)
            out.pair(test / "input" / f"{i}.png", test / "target" / f"{i}.png", "derain", -i)
    for i in range(1, out.count + 1):
        if keep("OTS"):
            out.ots(root / "OTS", i)
        if keep("SOTS"):
            out.pair(root / "SOTS" / "outdoor" / "hazy" / f"{i:04d}_0.8_0.2.jpg",
                     root / "SOTS" / "outdoor" / "gt" / f"{i:04d}.png", "dehaze", -i)
    for split in ("train", "test") if keep("GoPro") else ():
        for sequence in ("GOPR0372_07_00", "GOPR0384_11_05"):
            for i in range(1, out.count // 2 + 2):
                folder = root / "GoPro" / split / sequence
                out.pair(folder / "blur" / f"{i:06d}.png", folder / "sharp" / f"{i:06d}.png", "deblur", i)
    for folder in ("our485", "eval15") if keep("LOL") else ():
        out.pairs(root / "LOL" / folder / "low", root / "LOL" / folder / "high", "lowlight",
                  lambda i: (f"{i}.png", f"{i}.png"), lambda i: i)


def _task_folders(out: _Writer, train: Path, test: Path, keep: Callable[[str], bool], *, pip: bool) -> None:
    """The trees of PromptIR (``pip=False``) and PIP: one folder per task under ``Train`` and ``test``."""
    if keep("BSD400"):
        out.images(train / "Denoise", lambda i: f"test_{i:03d}.png")
    if keep("WED"):
        out.images(train / "Denoise", lambda i: f"{i:05d}.bmp")
    # PIP reads test/denoise/bsd68/original; PromptIR test/denoise/bsd68, with Urban100 beside it.
    tests = {"BSD68": ("bsd68/original" if pip else "bsd68", "test{:03d}.png")}
    if not pip:
        tests["Urban100"] = ("urban100", "img_{:03d}.png")
    for name, (folder, pattern) in tests.items():
        if keep(name):
            out.images(test / "denoise" / folder, pattern.format)
    if keep("Rain100L"):
        out.pairs(train / "Derain" / "rainy", train / "Derain" / "gt", "derain",
                  lambda i: (f"rain-{i}.png", f"norain-{i}.png"), lambda i: i)
        rain = test / "derain" / "Rain100L"
        out.pairs(rain / "input", rain / "target", "derain",  # PIP's test files: rain-N and norain-N
                  (lambda i: (f"rain-{i}.png", f"norain-{i}.png")) if pip else (lambda i: (f"{i}.png", f"{i}.png")),
                  lambda i: -i)
    for i in range(1, out.count + 1) if keep("OTS") else ():
        out.ots(train / "Dehaze", i)
    if keep("SOTS"):
        haze = test / "dehaze" / ("outdoor" if pip else "")
        out.pairs(haze / "input", haze / "target", "dehaze", lambda i: (f"{i:04d}_0.8_0.2.jpg", f"{i:04d}.png"),
                  lambda i: -i)
    if not pip:
        return
    for split, folder in (("train", train), ("test", test)) if keep("GoPro") else ():
        gopro = folder / "GOPRO_deblur" / split
        out.pairs(gopro / "blur", gopro / "sharp", "deblur", lambda i: (f"{i:06d}.png", f"{i:06d}.png"), lambda i: i)
    for folder in (train / "Enhance", test / "enhance") if keep("LOL") else ():
        out.pairs(folder / "low", folder / "high", "lowlight", lambda i: (f"{i}.png", f"{i}.png"), lambda i: i)


def _cdd11(out: _Writer, folder: Path, keep: Callable[[str], bool]) -> None:
    """CDD-11 under ``folder``: per split, ``count`` clean images in ``clear/`` and each one's degraded versions,
    one per subset folder, under the same name (the subset's task, seeded by the image and the subset)."""
    for split in CDD11_SPLITS:
        for i in range(1, out.count + 1):
            name = f"{i:06d}.png"
            clean = out.clean()
            _write(folder / split / CLEAN_FOLDER / name, clean)
            for number, (subset, task) in enumerate(SUBSETS.items()):
                if keep(f"{split}/{subset}"):
                    seed = (i if split == "train" else -i) * 100 - number
                    _write(folder / split / subset / name, _degraded(clean, task, seed))


def write_standins(root: Path, *, count: int = 4, size: int = 64, seed: int = 0, layout: Layout = "published",
                   omit: Collection[str] = ()) -> None:
    """Writes ``count`` images (or pairs) per dataset and split under ``root``, in the published layouts.

    Args:
        layout: ``published`` (each dataset under its own name), ``promptir`` (PromptIR's ``Train``/``test`` tree,
            Urban100 beside BSD68) or ``pip`` (PIP's ``data/Train``/``data/test`` tree, with GoPro and LOL as
            ``GOPRO_deblur`` and ``Enhance``/``enhance``) or ``cdd11`` (OneRestore's CDD-11 in ``root/CDD-11``).
        omit: datasets (of ``DATASETS``) to leave out, e.g. ``{"SOTS"}``; for ``cdd11``, subset folders of one split
            (of ``CDD11_FOLDERS``), e.g. ``{"test/snow"}``.

    Raises:
        ValueError: an unknown layout or dataset name.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"standins: layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    known = CDD11_FOLDERS if layout == "cdd11" else DATASETS
    if unknown := sorted(set(omit) - set(known)):
        raise ValueError(f"standins: cannot omit {', '.join(unknown)} from the {layout} layout: it holds "
                         f"{', '.join(known)}")
    out = _Writer(count=count, size=size, seed=seed)

    def keep(name: str) -> bool:
        return name not in omit

    if layout == "published":
        _published(out, root, keep)
    elif layout == "cdd11":
        _cdd11(out, root / "CDD-11", keep)
    elif layout == "promptir":
        _task_folders(out, root / "Train", root / "test", keep, pip=False)
    else:
        _task_folders(out, root / "data" / "Train", root / "data" / "test", keep, pip=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--count", type=int, default=4, help="images or pairs per dataset and split")
    parser.add_argument("--size", type=int, default=64, help="side of the square images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", choices=LAYOUTS, default="published", help="whose folder tree to write")
    parser.add_argument("--omit", nargs="*", default=[], choices=DATASETS + CDD11_FOLDERS, metavar="DATASET",
                        help=f"datasets to leave out: {', '.join(DATASETS)}; with --layout cdd11, subset folders of "
                             f"one split: train/low ... test/low_haze_snow")
    arguments = parser.parse_args()
    write_standins(arguments.root, count=arguments.count, size=arguments.size, seed=arguments.seed,
                   layout=arguments.layout, omit=arguments.omit)
    print(f"stand-ins written under {arguments.root}")


if __name__ == "__main__":
    main()
