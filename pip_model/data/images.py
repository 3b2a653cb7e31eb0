"""Images as tensors: conversions, lazily read image folders, in-memory sets, and procedural dead-leaves scenes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pip_model.data.degradations import (
    derive_seed,
)
from pip_model.image_files import atomic_write, read_image, write_png


def write_degraded(path: Path, image: np.ndarray) -> None:
    """A degraded image: a PNG, or for float noise (``.npy``) the float32 array itself, written atomically."""
    if path.suffix == ".npy":
        atomic_write(path, lambda file: np.save(file, image.astype(np.float32)))
    else:
        write_png(path, image)


def read_degraded(path: Path) -> np.ndarray:
    """A benchmark's degraded image, (H, W, 3) float: a PNG in [0, 1], or a ``.npy`` of unclipped float noise.

    Raises:
        ImageFileError: a PNG that cannot be read; ValueError: a ``.npy`` that is not an (H, W, 3) float array.
    """
    if path.suffix != ".npy":
        return read_image(path).rgb
    array = np.load(path, allow_pickle=False)
    if array.ndim != 3 or array.shape[-1] != 3 or array.dtype.kind != "f":
        raise ValueError(f"{path}: expected an (H, W, 3) float array, got {array.dtype} {array.shape}")
    return array


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) array in [0, 1] -> (3, H, W) float tensor."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()


def to_array(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor -> (H, W, 3) float array, on the CPU."""
    return image.detach().float().cpu().permute(1, 2, 0).numpy()


def centre_crop_box(height: int, width: int, multiple: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the centred window whose sides are multiples of ``multiple``, cut as
    PromptIR's ``crop_img`` (utils/image_utils.py) cuts it: a side ``n`` keeps ``n - n % multiple`` pixels from
    ``(n % multiple) // 2`` on, so the far side loses the odd pixel (37 rows at 16: rows 2..33, 3 lost below).

    Raises:
        ValueError: a side shorter than ``multiple`` (nothing would be left).
    """
    if height < multiple or width < multiple:
        raise ValueError(f"a {height}x{width} image has a side under {multiple}: cropping it to a multiple of "
                         f"{multiple} leaves nothing")
    extra_rows, extra_columns = height % multiple, width % multiple
    return extra_rows // 2, extra_columns // 2, height - extra_rows, width - extra_columns


def centre_crop(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """The centred window of ``image`` whose sides are multiples of ``multiple`` (:func:`centre_crop_box`);
    ``multiple`` 0 or 1 keeps the image.

    Shape:
        (..., H, W) -> (..., H - H % multiple, W - W % multiple)
    """
    if multiple <= 1:
        return image
    top, left, height, width = centre_crop_box(*image.shape[-2:], multiple)
    return image[..., top : top + height, left : left + width]


class ImageFiles(Sequence[torch.Tensor]):
    """Clean images read from disk when indexed, so memory does not grow with the dataset.

    The last ``cache`` images decoded are kept (a small corpus then stays in memory, a large one
    costs at most ``cache`` images).

    Shape:
        each item (3, H, W), values in [0, 1]
    """

    def __init__(self, paths: Sequence[Path], *, cache: int = 64) -> None:
        self.paths, self.cache = list(paths), cache
        self._decoded: OrderedDict[int, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:  # type: ignore[override]
        if index in self._decoded:
            self._decoded.move_to_end(index)
            return self._decoded[index]
        image = to_tensor(read_image(self.paths[index]).rgb)
        if self.cache:
            self._decoded[index] = image
            if len(self._decoded) > self.cache:
                self._decoded.popitem(last=False)
        return image


class ImageSet(Sequence[torch.Tensor]):
    """Several image sequences seen as one (the training photographs, then procedural images).

    Shape:
        each item (3, H, W), values in [0, 1]
    """

    def __init__(self, *parts: Sequence[torch.Tensor]) -> None:
        self.parts = [part for part in parts if len(part)]

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def __getitem__(self, index: int) -> torch.Tensor:  # type: ignore[override]
        for part in self.parts:
            if index < len(part):
                return part[index]
            index -= len(part)
        raise IndexError(index)


def dead_leaves(side: int, generator: torch.Generator, *, discs: int = 1500, smallest: float = 3.0) -> torch.Tensor:
    """A dead-leaves image: opaque discs of random colour dropped one over another until they nearly cover it, their
    radii drawn from a power law (density r^-3, the scale statistics of natural images), so that edges and flat
    areas of every size occur and no photograph's content is learnt. Drawn at twice the size and area-averaged
    down, so that the edges are soft as a lens makes them.

    Shape:
        -> (3, side, side), values in [0, 1]
    """
    canvas, smallest, largest = 2 * side, 2 * smallest, side / 2
    # Inverse CDF of a density proportional to r^-3 on [smallest, largest].
    uniform = torch.rand(discs, generator=generator)
    radii = (smallest ** -2 - uniform * (smallest ** -2 - largest ** -2)) ** -0.5
    centres = torch.rand(discs, 2, generator=generator) * canvas
    colours = torch.rand(discs, 3, generator=generator) ** 1.5  # more dark than light tones, like photographs
    image = torch.rand(3, 1, 1, generator=generator).expand(3, canvas, canvas).clone()
    for (y, x), radius, colour in zip(centres.tolist(), radii.tolist(), colours):
        top, bottom = max(0, int(y - radius)), min(canvas, int(y + radius) + 1)
        left, right = max(0, int(x - radius)), min(canvas, int(x + radius) + 1)
        if top >= bottom or left >= right:
            continue
        rows = torch.arange(top, bottom, dtype=torch.float32)[:, None]
        columns = torch.arange(left, right, dtype=torch.float32)[None, :]
        window = image[:, top:bottom, left:right]  # a view: painting it paints the image
        window[:, (rows - y) ** 2 + (columns - x) ** 2 <= radius ** 2] = colour[:, None]
    return torch.nn.functional.avg_pool2d(image[None], 2)[0]


def dead_leaves_images(count: int, *, side: int, seed: int) -> list[torch.Tensor]:
    """``count`` seeded dead-leaves images (:func:`dead_leaves`).

    Shape:
        -> count x (3, side, side)
    """
    return [dead_leaves(side, torch.Generator().manual_seed(derive_seed(seed, "dead-leaves", index)))
            for index in range(count)]


def split_files(prepared_dir: Path, split: str, *, cache: int = 64) -> ImageFiles:
    """The clean images of one split of the ``prepare`` output, read lazily (see :class:`ImageFiles`)."""
    manifest = pd.read_csv(prepared_dir / "manifest.csv")
    return ImageFiles([prepared_dir / path for path in manifest.loc[manifest["split"] == split, "path"]], cache=cache)


def real_training_pairs(prepared_dir: Path) -> dict[str, list[tuple[Path, Path]]]:
    """(degraded, clean) files of every ``split: train`` real pair of ``prepare``'s ``pairs.csv``, by task."""
    pairs_file = prepared_dir / "pairs.csv"
    if not pairs_file.is_file():
        return {}
    pairs = pd.read_csv(pairs_file)
    by_task: dict[str, list[tuple[Path, Path]]] = {}
    for pair in pairs[pairs["split"] == "train"].itertuples():
        by_task.setdefault(pair.task, []).append((Path(pair.degraded_path), Path(pair.clean_path)))
    return by_task


def load_split(prepared_dir: Path, split: str) -> list[tuple[str, torch.Tensor]]:
    """(id, image) of every clean image of one split of the ``prepare`` output.

    Shape:
        each image (3, H, W), values in [0, 1]
    """
    manifest = pd.read_csv(prepared_dir / "manifest.csv")
    rows = manifest[manifest["split"] == split]
    return [(row.id, to_tensor(read_image(prepared_dir / row.path).rgb)) for row in rows.itertuples()]

