"""Reading and writing image files, with errors that name the file and the problem.

Accepted: PNG, JPEG, TIFF, BMP and WebP; 8- or 16-bit; greyscale, grey+alpha, RGB or
RGBA (alpha is returned apart); EXIF orientation applied. 16-bit PNGs are decoded with
pypng and TIFFs with tifffile, because Pillow truncates 16-bit colour to 8 bits.

Every format and bit depth has one pixel limit (:data:`DEFAULT_MAX_PIXELS`), checked from the
file's header before anything is decoded: a 12 KB file can declare 10^10 pixels.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import png
import tifffile
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})
EXIF_ORIENTATION = 0x0112
# 50 megapixels: a full-frame camera's photo; decoded as float32 RGB it takes 600 MB.
DEFAULT_MAX_PIXELS = 50_000_000


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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_header(path: Path) -> tuple[int, int, int] | None:
    """(width, height, bit depth) from a PNG's IHDR chunk, or None if the file is not a PNG."""
    with path.open("rb") as file:
        header = file.read(25)
    if len(header) < 25 or header[:8] != PNG_SIGNATURE:
        return None
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big"), header[24]


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) as the file's header declares them, without decoding any pixel.

    Raises:
        ImageFileError: the header cannot be read.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            with tifffile.TiffFile(path) as tiff:
                page = tiff.pages[0]
                return int(page.imagelength), int(page.imagewidth)
        png_header = _png_header(path)
        if png_header is not None:
            return png_header[1], png_header[0]
        with Image.open(path) as image:  # lazy: Pillow reads the header only
            return image.height, image.width
    except UnidentifiedImageError:
        raise ImageFileError(path, "not an image, or corrupt (cannot identify the format)") from None
    except (OSError, ValueError, SyntaxError, IndexError, tifffile.TiffFileError) as error:
        raise ImageFileError(path, f"corrupt or truncated header: {error}") from None


def check_pixel_limit(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """The file's (height, width) if its header declares at most ``max_pixels`` pixels.

    Raises:
        ImageFileError: naming the size and the limit (and the header problem, if any).
    """
    height, width = image_size(path)
    if height * width > max_pixels:
        raise ImageFileError(path, f"{width}x{height} pixels ({height * width / 1e6:.1f} megapixels) is over the limit "
                             f"of {max_pixels / 1e6:g} megapixels; raise max_pixels to read it")
    return height, width


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Pixels as stored (H, W[, C]) and the EXIF orientation."""
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        with tifffile.TiffFile(path) as tiff:
            array = tiff.pages[0].asarray()
            tag = tiff.pages[0].tags.get("Orientation")
            return array, int(tag.value) if tag is not None else 1
    if suffix == ".png" and (_png_header(path) or (0, 0, 8))[2] == 16:
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


def read_image(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decodes an image file into RGB in [0, 1], with its alpha and bit depth.

    Args:
        path: the file.
        max_pixels: refuse, before decoding, an image whose header declares more pixels.

    Raises:
        ImageFileError: the file is missing, of an unsupported type, over the pixel limit,
            corrupt, truncated or of an unusable layout; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(path, "no such file")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ImageFileError(path, f"not a supported image type ({path.suffix or 'no suffix'}); expected one of "
                             + ", ".join(sorted(IMAGE_SUFFIXES)))
    height, width = check_pixel_limit(path, max_pixels)
    try:
        array, orientation = _decode(path)
    except MemoryError:
        raise ImageFileError(path, f"{width}x{height} pixels do not fit in memory") from None
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


TEMPORARY_SUFFIX = ".tmp"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def remove_temporary_files(folder: str | os.PathLike) -> list[Path]:
    """Deletes the PNGs that an interrupted :func:`atomic_write` left under ``folder`` (``.NAME.png.XXXX.tmp``);
    returns them."""
    folder = Path(folder)
    left = [path for path in folder.rglob(f".*.png.*{TEMPORARY_SUFFIX}") if path.is_file()] if folder.is_dir() else []
    for path in left:
        path.unlink(missing_ok=True)
    return left


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Calls ``write`` on a temporary file beside ``path``, then renames it: never a half-written file.

    The folder of ``path`` is created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        os.fchmod(descriptor, 0o666 & ~_umask())  # mkstemp's 0600 would hide the result from everyone else
        with os.fdopen(descriptor, "wb") as file:
            write(file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def printable(path: str | os.PathLike) -> str:
    """A path as text that can be printed and written to CSV, even when its name is not valid UTF-8."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass
class FolderWalk:
    """What :func:`walk_files` found: usable files, and entries it passed over with the reason.

    Attributes:
        files: readable regular files (or links to them), sorted.
        problems: (path as printable text, reason) for broken links, link loops, unreadable files and folders, and
            names that are not valid UTF-8.
        folders: the folders walked into (or links to them), below the root, sorted.
    """

    files: list[Path] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)

    def under(self, folder: Path) -> FolderWalk:
        """The part of this walk inside ``folder`` (a folder it walked into): what a walk of ``folder`` would find,
        with loops judged from the whole walk's root."""
        depth, parts = len(folder.parts), folder.parts

        def inside(path: Path) -> bool:
            return len(path.parts) > depth and path.parts[:depth] == parts

        return FolderWalk(files=[path for path in self.files if inside(path)],
                          problems=[(path, reason) for path, reason in self.problems if inside(Path(path))],
                          folders=[path for path in self.folders if inside(path)])


def walk_files(root: str | os.PathLike, *, suffixes: frozenset[str] | None = None) -> FolderWalk:
    """Every file under ``root`` (recursively, following links to folders, hidden names left out), whatever the
    folder holds: a bad entry is listed in ``problems`` and the walk goes on.

    This is the one folder walk: every search for files under a folder goes through it, so hidden files and
    folders, links, loops and unreadable entries are treated the same everywhere. The folders it went into are
    listed too (``folders``), for searches by folder name.

    Args:
        root: the folder.
        suffixes: keep only files with these (lower-case) suffixes; None keeps every file.
    """
    root = Path(root)
    walk = FolderWalk()

    def unreadable_folder(error: OSError) -> None:
        walk.problems.append((printable(error.filename or root), f"unreadable folder: {error.strerror}"))

    for folder, folders, names in os.walk(root, followlinks=True, onerror=unreadable_folder):
        kept, chain = [], _real_chain(Path(folder), root)
        for name in sorted(folders):
            path = os.path.join(folder, name)
            if name.startswith("."):
                continue
            if not _valid_name(name):
                walk.problems.append((printable(path), "folder name is not valid UTF-8; rename it"))
                continue
            real = os.path.realpath(path)
            if real in chain:  # through a link, a folder it is inside: the walk would never end
                walk.problems.append((printable(path), f"link loop: it points back to {printable(real)}"))
                continue
            kept.append(name)
            walk.folders.append(Path(path))
        folders[:] = kept
        for name in sorted(names):
            path = Path(folder, name)
            if name.startswith("."):
                continue
            problem = _file_problem(path, name)
            if problem:
                walk.problems.append((printable(path), problem))
            elif suffixes is None or path.suffix.lower() in suffixes:
                walk.files.append(path)
    walk.files.sort()
    walk.folders.sort()
    return walk


def _valid_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.walk hands undecodable bytes over as surrogates
        return False
    return True


def _real_chain(folder: Path, root: Path) -> set[str]:
    """The real paths of ``folder`` and of each folder above it up to ``root``, as the walk reached them."""
    chain = {os.path.realpath(root)}
    while folder != root and folder != folder.parent:
        chain.add(os.path.realpath(folder))
        folder = folder.parent
    return chain


def _file_problem(path: Path, name: str) -> str | None:
    if not _valid_name(name):
        return "file name is not valid UTF-8; rename it"
    try:
        path.stat()
    except FileNotFoundError:
        return f"broken link to {printable(os.readlink(path))}" if path.is_symlink() else "vanished during the walk"
    except OSError as error:  # ELOOP for a link that points to itself, EACCES...
        return f"cannot be read: {error.strerror}"
    if not path.is_file():
        return None if path.is_dir() else "not a regular file"
    if not os.access(path, os.R_OK):
        return "unreadable: permission denied"
    return None


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes: the record of exactly which file was seen."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


INDEX_COLUMNS = ("path", "bytes", "sha256", "problem")


def index_folder(root: Path | None, *, hash_cache: Path | None = None,
                 progress: Callable[[str], None] = print) -> list[dict[str, object]]:
    """Every file under ``root`` with its size and SHA-256, and every bad entry with its problem, sorted by path: a
    list that changes exactly when the folder's content does, for DVC to depend on instead of the folder itself.

    Hashes are reused from ``hash_cache`` (a JSON file) for files whose size, modification time and inode are
    unchanged, so a second scan of a large dataset only stats it. No ``root``, or a missing one, gives no rows.
    """
    cache: dict[str, list] = {}
    if hash_cache is not None and hash_cache.is_file():
        try:
            cache = json.loads(hash_cache.read_text())
        except ValueError:
            cache = {}  # a torn cache only costs the hashing again
    walk = walk_files(root) if root is not None and root.is_dir() else FolderWalk()
    rows, fresh = [], {}
    for number, path in enumerate(walk.files, start=1):
        if number % 1000 == 0:
            progress(f"scan: {number}/{len(walk.files)} files")
        stat = path.stat()
        key, stamp = str(path.resolve()), [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        known = cache.get(key)
        digest = known[3] if known and known[:3] == stamp else file_digest(path)
        fresh[key] = [*stamp, digest]
        rows.append({"path": path.relative_to(root).as_posix(), "bytes": stat.st_size, "sha256": digest,
                     "problem": ""})
    for path, reason in walk.problems:
        relative = os.path.relpath(path, printable(root)) if root is not None else path
        rows.append({"path": relative, "bytes": 0, "sha256": "", "problem": reason})
    if hash_cache is not None:
        atomic_write(hash_cache, lambda file: file.write(json.dumps(fresh).encode()))
    return sorted(rows, key=lambda row: str(row["path"]))


def write_index(path: Path, rows: list[dict[str, object]]) -> None:
    """Writes :func:`index_folder`'s rows as CSV, atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=INDEX_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda file: file.write(text.getvalue().encode()))


def labelled_strip(images: Sequence[np.ndarray], labels: Sequence[str]) -> np.ndarray:
    """Images side by side under a white band naming each, for the compare image.

    Shape:
        images: (H, W_i, 3) each, in [0, 1] -> (H + band, sum W_i, 3)
    """
    from PIL import Image, ImageDraw, ImageFont

    height = images[0].shape[0]
    band = max(14, min(32, height // 12))
    font = ImageFont.load_default(size=band * 0.7)
    panels = []
    for image, label in zip(images, labels):
        header = Image.new("L", (image.shape[1], band), 255)
        ImageDraw.Draw(header).text((4, band * 0.12), label, fill=0, font=font)
        grey = np.asarray(header, dtype=np.float32)[..., None].repeat(3, axis=-1) / 255
        panels.append(np.concatenate([grey, image], axis=0))
    return np.concatenate(panels, axis=1)


def labelled_grid(rows: Sequence[tuple[str, Sequence[np.ndarray]]], titles: Sequence[str], *,
                  zoom: int = 1) -> np.ndarray:
    """Rows of images, each row named on its left and each column titled on top, enlarged ``zoom`` times (pixel
    repetition, so the pixels stay what they are), for sample grids a person reads.

    Shape:
        each image (H, W, 3) in [0, 1], alike within a row -> (title band + sum of rows' H, label + sum W, 3)
    """
    from PIL import Image, ImageDraw, ImageFont

    def band(text: str, width: int, height: int) -> np.ndarray:
        header = Image.new("L", (width, height), 255)
        font = ImageFont.load_default(size=max(10, int(min(height, 28) * 0.6)))
        ImageDraw.Draw(header).text((4, height * 0.15), text, fill=0, font=font)
        return np.asarray(header, dtype=np.float32)[..., None].repeat(3, axis=-1) / 255

    enlarged = [(label, [np.clip(image, 0, 1).repeat(zoom, axis=0).repeat(zoom, axis=1) for image in images])
                for label, images in rows]
    label_width = 10 + 7 * max(len(label) for label, _ in rows)
    width = enlarged[0][1][0].shape[1]
    lines = [np.concatenate([np.ones((22, label_width, 3), np.float32)]
                            + [band(title, width, 22) for title in titles], axis=1)]
    for label, images in enlarged:
        height = images[0].shape[0]
        lines.append(np.concatenate([band(label, label_width, height)] + images, axis=1))
    return np.concatenate(lines, axis=0)
