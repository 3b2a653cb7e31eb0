"""Stand-ins of the paper's datasets, in their published layouts and file names, at any size.

The real datasets cannot be downloaded here; these procedural images (smooth colour fields
with edges and texture, degraded by this project's own degradations where a degraded side is
needed) exercise every layout that :mod:`pip_model.data.datasets` reads, and scale to measure the
pipeline:

    python -m pip_model.data.datasets.standins ROOT --count 8 --size 96

writes ``ROOT/{BSD400,WED,BSD68,Urban100,Kodak24,Rain100L,Rain100H,OTS,SOTS,GoPro,LOL}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from pip_model.data.degradations import degrade
from pip_model.image_files import write_png


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


def write_standins(root: Path, *, count: int = 4, size: int = 64, seed: int = 0) -> None:
    """Writes ``count`` images (or pairs) per dataset and split under ``root``, in the published layouts."""
    number = iter(range(10**9))

    def clean() -> np.ndarray:
        return procedural_image(seed * 1_000_003 + next(number), size)

    for name, suffix in (("BSD400", "png"), ("WED", "bmp"), ("BSD68", "png"), ("Urban100", "png"),
                         ("Kodak24", "png")):
        for i in range(1, count + 1):
            write_png(root / name / f"{name.lower()}_{i:04d}.png", clean()) if suffix == "png" else \
                _write_other(root / name / f"{i:05d}.{suffix}", clean())
    for name in ("Rain100L", "Rain100H"):
        for i in range(1, count + 1):  # training: rainy/ and gt/ (PromptIR); test: input/ and target/
            sharp = clean()
            write_png(root / name / "train" / "gt" / f"norain-{i}.png", sharp)
            write_png(root / name / "train" / "rainy" / f"rain-{i}.png", _degraded(sharp, "derain", i))
            sharp = clean()
            write_png(root / name / "test" / "target" / f"{i}.png", sharp)
            write_png(root / name / "test" / "input" / f"{i}.png", _degraded(sharp, "derain", -i))
    for i in range(1, count + 1):
        scene = f"{i:04d}"
        sharp = clean()
        _write_other(root / "OTS" / "original" / f"{scene}.jpg", sharp)
        for part, (airlight, beta) in enumerate(((0.8, 0.04), (0.9, 0.08)), start=1):
            _write_other(root / "OTS" / "synthetic" / f"part{part}" / f"{scene}_{airlight}_{beta}.jpg",
                         _degraded(sharp, "dehaze", i * 10 + part))
        sharp = clean()
        write_png(root / "SOTS" / "outdoor" / "gt" / f"{scene}.png", sharp)
        _write_other(root / "SOTS" / "outdoor" / "hazy" / f"{scene}_0.8_0.2.jpg", _degraded(sharp, "dehaze", -i))
    for split in ("train", "test"):
        for sequence in ("GOPR0372_07_00", "GOPR0384_11_05"):
            for i in range(1, count // 2 + 2):
                sharp = clean()
                write_png(root / "GoPro" / split / sequence / "sharp" / f"{i:06d}.png", sharp)
                write_png(root / "GoPro" / split / sequence / "blur" / f"{i:06d}.png", _degraded(sharp, "deblur", i))
    for folder in ("our485", "eval15"):
        for i in range(1, count + 1):
            sharp = clean()
            write_png(root / "LOL" / folder / "high" / f"{i}.png", sharp)
            write_png(root / "LOL" / folder / "low" / f"{i}.png", _degraded(sharp, "lowlight", i))


def _write_other(path: Path, rgb: np.ndarray) -> None:
    """JPEG or BMP, as the originals of WED and RESIDE come."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--count", type=int, default=4, help="images or pairs per dataset and split")
    parser.add_argument("--size", type=int, default=64, help="side of the square images")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    write_standins(arguments.root, count=arguments.count, size=arguments.size, seed=arguments.seed)
    print(f"stand-ins written under {arguments.root}")


if __name__ == "__main__":
    main()
