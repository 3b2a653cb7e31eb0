"""Image files of every accepted format decode to RGB in [0, 1]; bad files are named and explained."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from pip_model.image_files import ImageFileError, read_image, write_png

RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)
RGB16 = RNG.integers(0, 65536, (24, 32, 3), dtype=np.uint16)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".tif"])
def test_eight_bit_formats(tmp_path, suffix):
    path = tmp_path / f"image{suffix}"
    options = {".jpg": {"quality": 100, "subsampling": 0}, ".webp": {"lossless": True}}.get(suffix, {})
    Image.fromarray(RGB8).save(path, **options)
    image = read_image(path)
    assert image.rgb.shape == (24, 32, 3) and image.rgb.dtype == np.float32 and image.bit_depth == 8
    tolerance = 0.03 if suffix == ".jpg" else 0
    assert np.abs(image.rgb - RGB8 / 255).max() <= tolerance + 1e-6


def test_sixteen_bit_png_and_tiff_keep_their_precision(tmp_path):
    write_png(tmp_path / "deep.png", RGB16 / 65535, bit_depth=16)
    tifffile.imwrite(tmp_path / "deep.tif", RGB16)
    for name in ("deep.png", "deep.tif"):
        image = read_image(tmp_path / name)
        assert image.bit_depth == 16
        np.testing.assert_array_equal(np.round(image.rgb * 65535).astype(np.uint16), RGB16)


def test_grey_and_alpha_layouts(tmp_path):
    Image.fromarray(RGB8[..., 0]).save(tmp_path / "grey.png")
    Image.fromarray(RGB8[..., :2], mode="LA").save(tmp_path / "grey_alpha.png")
    Image.fromarray(np.dstack([RGB8, RGB8[..., :1]]), mode="RGBA").save(tmp_path / "rgba.png")
    grey = read_image(tmp_path / "grey.png")
    assert grey.alpha is None and np.array_equal(grey.rgb[..., 0], grey.rgb[..., 2])
    grey_alpha = read_image(tmp_path / "grey_alpha.png")
    np.testing.assert_allclose(grey_alpha.alpha, RGB8[..., 1] / 255, atol=1e-6)
    rgba = read_image(tmp_path / "rgba.png")
    np.testing.assert_allclose(rgba.rgb, RGB8 / 255, atol=1e-6)
    np.testing.assert_allclose(rgba.alpha, RGB8[..., 0] / 255, atol=1e-6)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(tmp_path, orientation):
    path = tmp_path / "photo.jpg"
    picture = Image.fromarray(RGB8)
    exif = picture.getexif()
    exif[0x0112] = orientation
    picture.save(path, exif=exif, quality=100)
    with Image.open(path) as opened:
        expected = np.asarray(ImageOps.exif_transpose(opened)) / 255
    np.testing.assert_allclose(read_image(path).rgb, expected, atol=1e-6)


def test_bad_files_are_named_with_their_problem(tmp_path):
    Image.fromarray(RGB8).save(tmp_path / "good.png")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "good.png").read_bytes()[:150])
    (tmp_path / "junk.jpg").write_bytes(b"certainly not a jpeg")
    (tmp_path / "notes.txt").write_text("hello")
    cases = {
        "truncated.png": "corrupt or truncated",
        "junk.jpg": "not an image, or corrupt",
        "notes.txt": "not a supported image type (.txt)",
        "missing.png": "no such file",
    }
    for name, reason in cases.items():
        with pytest.raises(ImageFileError) as error:
            read_image(tmp_path / name)
        assert str(error.value).startswith(str(tmp_path / name)) and reason in str(error.value)


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_write_png_round_trips_atomically(tmp_path, bit_depth):
    rgb, alpha = RGB16[..., :3] / 65535, RGB16[..., 0] / 65535
    path = tmp_path / "out" / "restored.png"
    write_png(path, rgb, alpha=alpha, bit_depth=bit_depth)
    image = read_image(path)
    step = 1 / (65535 if bit_depth == 16 else 255)
    assert image.bit_depth == bit_depth
    np.testing.assert_allclose(image.rgb, rgb, atol=step / 2 + 1e-6)
    np.testing.assert_allclose(image.alpha, alpha, atol=step / 2 + 1e-6)
    assert [p.name for p in path.parent.iterdir()] == ["restored.png"]


def test_the_walk_lists_bad_entries_and_goes_on(tmp_path):
    from pip_model.image_files import walk_files

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.png").write_bytes(b"1")
    (tmp_path / "a" / ".hidden.png").write_bytes(b"1")
    (tmp_path / "a" / "b" / "up").symlink_to(tmp_path / "a")  # a loop
    (tmp_path / "linked").symlink_to(tmp_path / "a" / "b")  # a link to a folder is followed
    (tmp_path / "dangling.png").symlink_to(tmp_path / "missing.png")
    os.mkfifo(tmp_path / "pipe.png")
    walk = walk_files(tmp_path)
    assert walk.files == [tmp_path / "a" / "b" / "x.png", tmp_path / "linked" / "x.png"]
    problems = dict(walk.problems)
    assert problems[str(tmp_path / "dangling.png")].startswith("broken link to ")
    assert problems[str(tmp_path / "pipe.png")] == "not a regular file"
    assert "link loop" in problems[str(tmp_path / "a" / "b" / "up")]
    assert walk_files(tmp_path, suffixes=frozenset({".jpg"})).files == []
    # The folders it went into, hidden ones and loops left out; a part of the walk is what is inside a folder.
    (tmp_path / ".cache").mkdir()
    walk = walk_files(tmp_path)
    # (linked/up leads to a, which is not above linked's real folder: the loop shows one level further down)
    assert walk.folders == [tmp_path / "a", tmp_path / "a" / "b", tmp_path / "linked", tmp_path / "linked" / "up"]
    inside = walk.under(tmp_path / "a")
    assert inside.files == [tmp_path / "a" / "b" / "x.png"] and inside.folders == [tmp_path / "a" / "b"]
    assert [path for path, _ in inside.problems] == [str(tmp_path / "a" / "b" / "up")]


def test_written_files_take_the_umask_permissions(tmp_path):
    previous = os.umask(0o027)
    try:
        write_png(tmp_path / "x.png", np.zeros((4, 4, 3), np.float32))
    finally:
        os.umask(previous)
    assert (tmp_path / "x.png").stat().st_mode & 0o777 == 0o640
