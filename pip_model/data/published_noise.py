"""Noise on the clean test sets as the published test code makes it (``degrade.test_noise: published``).

PromptIR's ``test.py`` seeds NumPy once (``np.random.seed(0)``) and then tests BSD68 at sigma 15, 25 and 50 in
turn through one ``DenoiseTestDataset`` (utils/dataset_utils.py), read in order with ``shuffle=False``. Each
image is read as 8-bit RGB, centre-cropped to a multiple of 16 (``crop_img(image, base=16)``, see
:func:`pip_model.data.images.centre_crop_box`) and given ``np.clip(image + np.random.randn(H, W, 3) * sigma, 0,
255).astype(np.uint8)``: truncated, not rounded (about half a grey level darker than rounding), drawn from that
one stream, so an image's noise depends on every draw before it. Here each folder of test images is one such
test set with a stream of its own, its files in name order (the published code takes ``os.listdir``'s order,
which the file system decides), and every sigma's pass is drawn, benchmarked or not, so that sigma 25 sits
where the published stream puts it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pip_model.data.images import centre_crop_box
from pip_model.image_files import read_image

PUBLISHED_SEED = 0  # test.py: np.random.seed(0), once, before the first test set
PUBLISHED_SIGMAS = (15, 25, 50)  # test.py: test_Denoise(sigma=15), then 25, then 50, on one stream
PUBLISHED_CROP = 16  # utils/dataset_utils.py DenoiseTestDataset: crop_img(..., base=16)


@dataclass(frozen=True)
class PublishedNoisy:
    """One test image at one sigma, as the published test code gives it to the network.

    Attributes:
        image_id: the prepared image's id.
        task: ``denoise_<sigma>``.
        noisy: the noisy image, (H, W, 3) uint8.
        clean: the cropped clean image it is scored against, (H, W, 3) uint8.
        cropped: whether the crop removed any pixel (else ``clean`` is the prepared image itself).
        record: what reproduces it: sigma, stream seed, pass, order, offset (standard normals drawn before it
            in its stream) and the crop window.
    """

    image_id: str
    task: str
    noisy: np.ndarray
    clean: np.ndarray
    cropped: bool
    record: dict[str, Any]


def published_noise(clean: np.ndarray, sigma: float, stream: np.random.RandomState) -> np.ndarray:
    """``clip(clean + randn(*clean.shape) * sigma, 0, 255)`` truncated to uint8, one draw from ``stream``.

    Shape:
        (H, W, 3) uint8 -> (H, W, 3) uint8
    """
    noise = stream.randn(*clean.shape)
    return np.clip(clean + noise * sigma, 0, 255).astype(np.uint8)


def group_test_sets(images: Sequence[tuple[str, Path]]) -> list[list[tuple[str, Path]]]:
    """The (id, path) of the test images grouped by folder (one published test set each), in file-name order."""
    folders: dict[Path, list[tuple[str, Path]]] = {}
    for image_id, path in images:
        folders.setdefault(Path(path).parent, []).append((image_id, Path(path)))
    return [sorted(members, key=lambda member: member[1].name) for _, members in sorted(folders.items())]


def _read_uint8(path: Path) -> np.ndarray:
    """8-bit RGB, as ``Image.open(path).convert('RGB')`` gives it for the 8-bit test sets."""
    return np.round(read_image(path).rgb * 255.0).astype(np.uint8)


def draw_test_set(members: Sequence[tuple[str, Path]], tasks: Sequence[str]) -> Iterator[PublishedNoisy]:
    """The noisy images of one test set for ``tasks`` (``denoise_15``, ``denoise_25``, ``denoise_50``), drawn
    in the published order: every image at sigma 15, then every image at 25, then at 50, on one stream seeded
    :data:`PUBLISHED_SEED`. One image is in memory at a time (each is read once per pass)."""
    stream, drawn = np.random.RandomState(PUBLISHED_SEED), 0  # the legacy generator behind np.random.seed
    for sigma_pass, sigma in enumerate(PUBLISHED_SIGMAS):
        task = f"denoise_{sigma}"
        for order, (image_id, path) in enumerate(members):
            image = _read_uint8(path)
            top, left, height, width = centre_crop_box(*image.shape[:2], PUBLISHED_CROP)
            clean = image[top : top + height, left : left + width]
            noisy = published_noise(clean, sigma, stream)  # drawn even when not benchmarked: the stream moves on
            record = {"task": task, "class_id": 0, "sigma": float(sigma), "noise": "published",
                      "rounding": "truncate", "stream_seed": PUBLISHED_SEED, "stream_set": path.parent.name,
                      "stream_pass": sigma_pass, "stream_order": order, "stream_offset": drawn,
                      "crop": [top, left, height, width]}
            drawn += noisy.size
            if task in tasks:
                yield PublishedNoisy(image_id, task, noisy, clean, (height, width) != image.shape[:2], record)
