"""Reading and writing image files, with errors that name the file and the problem.

Accepted: PNG, JPEG, TIFF, BMP and WebP; 8- or 16-bit; greyscale, grey+alpha, RGB or
RGBA (alpha is returned apart); EXIF orientation applied. 16-bit PNGs are decoded with
pypng and TIFFs with tifffile, because Pillow truncates 16-bit colour to 8 bits.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import png
import tifffile
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})
EXIF_ORIENTATION = 0x0112


class ImageFileError(ValueError):
    """An image file that cannot be used; ``str()`` names the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass
class LoadedImage:
    """A decoded image.

    Attributes:
        rgb: colour in [0, 1], shape (H, W, 3), float32.
        alpha: opacity in [0, 1], shape (H, W), or None.
        bit_depth: 8 or 16, the depth of the file's samples.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.rgb.shape[0], self.rgb.shape[1]


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Applies an EXIF orientation (1..8) to an (H, W[, C]) array."""
    if orientation in (5, 6, 7, 8):
        array = np.swapaxes(array, 0, 1)  # transpose, then flip below
        orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
    if orientation in (2, 3):
        array = array[:, ::-1]
    if orientation in (3, 4):
        array = array[::-1]
    return np.ascontiguousarray(array)


def _png_bit_depth(path: Path) -> int:
    with path.open("rb") as file:
        header = file.read(25)
    return header[24] if len(header) == 25 and header[:8] == b"\x89PNG\r\n\x1a\n" else 8


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Pixels as stored (H, W[, C]) and the EXIF orientation."""
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        with tifffile.TiffFile(path) as tiff:
            array = tiff.pages[0].asarray()
            tag = tiff.pages[0].tags.get("Orientation")
            return array, int(tag.value) if tag is not None else 1
    if suffix == ".png" and _png_bit_depth(path) == 16:
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        planes = info["planes"]
        array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, planes)
        return (array[..., 0] if planes == 1 else array), 1
    with Image.open(path) as image:
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif image.mode == "CMYK":
            image = image.convert("RGB")
        elif image.mode == "1":
            image = image.convert("L")
        return np.asarray(image), orientation


def read_image(path: str | os.PathLike) -> LoadedImage:
    """Decodes an image file into RGB in [0, 1], with its alpha and bit depth.

    Raises:
        ImageFileError: the file is missing, of an unsupported type, corrupt, truncated
            or of an unusable layout; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(path, "no such file")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ImageFileError(path, f"not a supported image type ({path.suffix or 'no suffix'}); expected one of "
                             + ", ".join(sorted(IMAGE_SUFFIXES)))
    try:
        array, orientation = _decode(path)
    except UnidentifiedImageError:
        raise ImageFileError(path, "not an image, or corrupt (cannot identify the format)") from None
    except Image.DecompressionBombError as error:
        raise ImageFileError(path, f"too large to decode safely: {error}") from None
    except (OSError, ValueError, SyntaxError, png.Error, tifffile.TiffFileError) as error:
        raise ImageFileError(path, f"corrupt or truncated: {error}") from None
    if array.dtype == np.uint16 or (array.dtype.kind in "iu" and array.max(initial=0) > 255):
        bit_depth, scaled = 16, array.astype(np.float32) / 65535.0
    elif array.dtype in (np.uint8, np.bool_):
        bit_depth, scaled = 8, array.astype(np.float32) / (1.0 if array.dtype == np.bool_ else 255.0)
    elif array.dtype.kind == "f":
        bit_depth, scaled = 16, np.clip(array.astype(np.float32), 0.0, 1.0)
    else:
        raise ImageFileError(path, f"unsupported sample type {array.dtype}")
    if scaled.ndim == 2:
        scaled = scaled[..., None]
    if scaled.ndim != 3 or scaled.shape[-1] not in (1, 2, 3, 4):
        raise ImageFileError(path, f"unsupported layout {array.shape}; expected grey, grey+alpha, RGB or RGBA")
    scaled = _orient(scaled, orientation)
    channels = scaled.shape[-1]
    colour = scaled[..., :3] if channels >= 3 else np.repeat(scaled[..., :1], 3, axis=-1)
    alpha = scaled[..., -1] if channels in (2, 4) else None
    return LoadedImage(rgb=np.ascontiguousarray(colour), alpha=alpha, bit_depth=bit_depth)


def _quantise(array: np.ndarray, bit_depth: int) -> np.ndarray:
    top = 65535 if bit_depth == 16 else 255
    return np.round(np.clip(array, 0.0, 1.0) * top).astype(np.uint16 if bit_depth == 16 else np.uint8)


def write_png(path: str | os.PathLike, rgb: np.ndarray, *, alpha: np.ndarray | None = None, bit_depth: int = 8) -> None:
    """Writes RGB(A) in [0, 1] as a PNG, atomically (a temporary file, then a rename).

    Args:
        path: destination; its folder is created.
        rgb: (H, W, 3) values in [0, 1].
        alpha: optional (H, W) opacity in [0, 1].
        bit_depth: 8 or 16.
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], axis=-1)
    samples = _quantise(pixels, bit_depth)
    height, width, planes = samples.shape

    def write(file: BinaryIO) -> None:
        if bit_depth == 8:
            Image.fromarray(samples).save(file, format="PNG")
        else:
            writer = png.Writer(width, height, greyscale=False, alpha=planes == 4, bitdepth=16)
            writer.write(file, samples.reshape(height, width * planes))

    atomic_write(path, write)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Calls ``write`` on a temporary file beside ``path``, then renames it: never a half-written file.

    The folder of ``path`` is created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
