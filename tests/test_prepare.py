"""The prepare stage: default corpus, user folders with bad files, stable splits, paired datasets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from pip_model.data.corpus import (
    NotEnoughImagesError,
    PairedSource,
    PrepareConfig,
    assign_splits,
    pair_source,
    prepare_corpus,
)
from pip_model.data.images import load_split, split_files, to_array
from pip_model.data.pairs import DegradeConfig, build_benchmark
from pip_model.evaluation.benchmark import load_benchmark
from pip_model.image_files import read_image, write_png
from tests.helpers.stages import QUIET

ROOT = Path(__file__).resolve().parents[1]


def _photo(path: Path, seed: int, size: tuple[int, int] = (40, 48), mode: str = "RGB") -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


@pytest.fixture
def messy_folder(tmp_path) -> Path:
    source = tmp_path / "photos"
    for i in range(6):
        _photo(source / ("nested" if i % 2 else ".") / f"photo{i}.png", seed=i)
    _photo(source / "grey.jpg", seed=10, mode="L")
    _photo(source / "rgba.webp", seed=11, mode="RGBA")
    (source / "copy.png").write_bytes((source / "photo0.png").read_bytes())  # same pixels
    _photo(source / "tiny.png", seed=12, size=(8, 8))
    (source / "broken.png").write_bytes((source / "photo0.png").read_bytes()[:100])
    (source / "junk.jpg").write_bytes(b"not an image")
    (source / "readme.txt").write_text("notes")
    return source


def test_user_folder_keeps_good_images_and_explains_the_rest(messy_folder, tmp_path):
    out = tmp_path / "prepared"
    result = prepare_corpus(PrepareConfig(source=str(messy_folder), min_side=16), seed=0, out_dir=out, **QUIET)
    assert len(result.manifest) == 8
    reasons = dict(zip(result.rejects["path"].map(lambda p: Path(p).name), result.rejects["reason"]))
    # Files are read in sorted order, so copy.png is kept and photo0.png is its duplicate.
    assert set(reasons) == {"photo0.png", "tiny.png", "broken.png", "junk.jpg", "readme.txt"}
    assert reasons["photo0.png"].startswith("duplicate of") and reasons["photo0.png"].endswith("copy.png (same pixels)")
    assert "too small: 8x8" in reasons["tiny.png"]
    assert "corrupt" in reasons["broken.png"] and "not a supported image type" in reasons["readme.txt"]
    manifest = pd.read_csv(out / "manifest.csv")
    assert {"id", "path", "size", "hash", "split"} <= set(manifest.columns)
    assert manifest["hash"].is_unique and manifest["id"].is_unique
    assert set(manifest["split"]) == {"train", "val", "test"}
    for row in manifest.itertuples():
        # Listed where it lies, not copied; every source is 48 wide and 40 high, grey and RGBA read as RGB.
        assert Path(row.path).is_absolute() and Path(row.path).is_relative_to(messy_folder.resolve())
        image = read_image(row.path)
        assert image.rgb.shape == (row.height, row.width, 3) == (40, 48, 3) and row.size == "48x40"
    assert not (out / "images").exists()
    assert len(pd.read_csv(out / "rejects.csv")) == 5


def test_splits_are_disjoint_and_stable_when_images_are_added():
    digests = [f"image{i}" for i in range(60)]
    before = assign_splits(digests, seed=3, val_fraction=0.2, test_fraction=0.2, min_per_split=1)
    after = assign_splits(digests + [f"new{i}" for i in range(20)], seed=3, val_fraction=0.2, test_fraction=0.2,
                          min_per_split=1)
    assert after[:60] == before
    assert set(before) == {"train", "val", "test"}
    other_seed = assign_splits(digests, seed=4, val_fraction=0.2, test_fraction=0.2, min_per_split=1)
    assert other_seed != before


def test_small_corpora_still_fill_every_split():
    splits = assign_splits(["a", "b", "c"], seed=0, val_fraction=0.1, test_fraction=0.1, min_per_split=1)
    assert sorted(splits) == ["test", "train", "val"]
    with pytest.raises(NotEnoughImagesError, match=r"only 2 usable image\(s\).*at least 3"):
        assign_splits(["a", "b"], seed=0, val_fraction=0.1, test_fraction=0.1, min_per_split=1)


def test_too_few_usable_images_fail_clearly_and_keep_the_rejects(tmp_path):
    source = tmp_path / "few"
    _photo(source / "one.png", seed=0)
    (source / "bad.png").write_bytes(b"broken")
    with pytest.raises(NotEnoughImagesError, match="only 1 usable image"):
        prepare_corpus(PrepareConfig(source=str(source), min_side=16), seed=0, out_dir=tmp_path / "out", **QUIET)
    assert "bad.png" in (tmp_path / "out" / "rejects.csv").read_text()


def test_default_corpus_is_scikit_image_photographs(default_prepared):
    manifest = pd.read_csv(default_prepared / "manifest.csv")
    assert {"skimage.data.astronaut", "skimage.data.chelsea", "skimage.data.coffee", "skimage.data.rocket",
            "skimage.data.motorcycle_left", "skimage.data.motorcycle_right"} <= set(manifest["origin"])
    assert pd.read_csv(default_prepared / "rejects.csv").empty and set(manifest["split"]) == {"train", "val", "test"}


def _pair(degraded: Path, clean: Path, seed: int, size=(32, 32)) -> None:
    _photo(degraded, seed, size)
    _photo(clean, seed + 100, size)


def test_pairing_rules_for_the_paper_datasets(tmp_path):
    rain = tmp_path / "Rain100L"
    _pair(rain / "rain-001.png", rain / "norain-001.png", 1)
    _pair(rain / "rain-002.png", rain / "norain-002.png", 2)
    sots = tmp_path / "SOTS"
    _pair(sots / "hazy" / "0001_0.8_0.2.jpg", sots / "gt" / "0001.png", 3)
    gopro = tmp_path / "GoPro"
    _pair(gopro / "scene_a" / "blur" / "000001.png", gopro / "scene_a" / "sharp" / "000001.png", 4)
    _pair(gopro / "scene_b" / "blur" / "000001.png", gopro / "scene_b" / "sharp" / "000001.png", 5)
    lol = tmp_path / "LOL"
    _pair(lol / "low" / "1.png", lol / "high" / "1.png", 6)
    _photo(lol / "low" / "2.png", 7)  # no partner

    def names(pairs):
        return sorted((d.relative_to(tmp_path).as_posix(), c.relative_to(tmp_path).as_posix()) for d, c in pairs)

    def pair_files(task: str, degraded: Path, clean: Path):
        pairs, unpaired, problems = pair_source(PairedSource(task=task, degraded_dir=str(degraded),
                                                             clean_dir=str(clean)))
        assert problems == []
        return pairs, unpaired

    assert names(pair_files("derain", rain, rain)[0]) == [("Rain100L/rain-001.png", "Rain100L/norain-001.png"),
                                                          ("Rain100L/rain-002.png", "Rain100L/norain-002.png")]
    assert names(pair_files("dehaze", sots / "hazy", sots / "gt")[0]) == [
        ("SOTS/hazy/0001_0.8_0.2.jpg", "SOTS/gt/0001.png")]
    assert names(pair_files("deblur", gopro, gopro)[0]) == [
        ("GoPro/scene_a/blur/000001.png", "GoPro/scene_a/sharp/000001.png"),
        ("GoPro/scene_b/blur/000001.png", "GoPro/scene_b/sharp/000001.png"),
    ]
    pairs, unpaired = pair_files("lowlight", lol / "low", lol / "high")
    assert names(pairs) == [("LOL/low/1.png", "LOL/high/1.png")] and [p.name for p in unpaired] == ["2.png"]
    # Sub-folders of role folders keep their own partners: the same names in two scenes never cross.
    sub = tmp_path / "scenes"
    _pair(sub / "input" / "a" / "1.png", sub / "target" / "a" / "1.png", 8)
    _pair(sub / "input" / "b" / "1.png", sub / "target" / "b" / "1.png", 9)
    assert names(pair_files("derain", sub, sub)[0]) == [("scenes/input/a/1.png", "scenes/target/a/1.png"),
                                                        ("scenes/input/b/1.png", "scenes/target/b/1.png")]


def test_paired_datasets_are_listed_where_they_lie(tmp_path):
    rain = tmp_path / "Rain100L"
    _pair(rain / "rain-1.png", rain / "norain-1.png", 1)
    _pair(rain / "rain-2.png", rain / "norain-2.png", 2, size=(32, 32))
    _photo(rain / "rain-3.png", 3, size=(32, 32))
    _photo(rain / "norain-3.png", 4, size=(16, 16))  # sizes differ
    (rain / "rain-4.png").symlink_to(rain / "gone.png")  # a bad entry, rejected as everywhere else
    _pair(rain / ".trash" / "rain-5.png", rain / ".trash" / "norain-5.png", 5)  # hidden: never listed
    corpus = tmp_path / "corpus"
    for i in range(3):
        _photo(corpus / f"{i}.png", seed=20 + i)
    config = PrepareConfig(source=str(corpus), min_side=16,
                           paired=(PairedSource(task="derain", degraded_dir=str(rain), clean_dir=str(rain)),))
    result = prepare_corpus(config, seed=0, out_dir=tmp_path / "out", **QUIET)
    assert list(result.pairs["task"]) == ["derain", "derain"] and set(result.pairs["class_id"]) == {1}
    assert sorted(Path(p).name for p in result.pairs["degraded_path"]) == ["rain-1.png", "rain-2.png"]
    assert not (tmp_path / "out" / "pairs").exists()  # listed, not copied
    assert result.rejects["reason"].str.contains("differs from its clean image").any()
    reasons = dict(zip(result.rejects["path"], result.rejects["reason"]))
    assert reasons[str(rain / "rain-4.png")].startswith("paired derain: broken link to ")
    assert not any(".trash" in path for path in reasons)


def _exif_rotated_jpeg(path: Path, seed: int, size: tuple[int, int] = (40, 48)) -> Path:
    """A JPEG whose EXIF says: rotate by 90 degrees to view it (orientation 6)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    image, exif = Image.fromarray(pixels), Image.Exif()
    exif[0x0112] = 6
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, exif=exif, quality=90)
    return path


def test_a_source_folder_is_listed_in_place_and_read_with_the_same_pixels(tmp_path):
    """prepare.source: its JPEGs are listed where they lie (no PNG written, the manifest names the original file),
    and training and the benchmark read from them exactly the pixels that read_image gives (EXIF orientation
    applied), which are the pixels an 8-bit PNG copy of them used to give."""
    source = tmp_path / "jpegs"
    originals = [_exif_rotated_jpeg(source / "rotated.jpg", seed=0)]
    originals += [_photo(source / "nested" / f"photo{i}.jpg", seed=1 + i, size=(36, 44)) for i in range(4)]
    out = tmp_path / "prepared"
    result = prepare_corpus(PrepareConfig(source=str(source), min_side=16), seed=0, out_dir=out, **QUIET)
    assert sorted(result.manifest["path"]) == sorted(str(path.resolve()) for path in originals)
    assert not (out / "images").exists() and not list(out.rglob("*.png"))
    rotated = result.manifest[result.manifest["origin"] == str(source / "rotated.jpg")].iloc[0]
    assert (rotated.width, rotated.height) == (40, 48)  # as viewed: 40 wide once turned

    expected = {row.id: read_image(row.path).rgb for row in result.manifest.itertuples()}
    for image_id, rgb in expected.items():  # the old copy, an 8-bit PNG of the checked pixels, reads the same
        write_png(tmp_path / "copy" / f"{image_id}.png", rgb)
        np.testing.assert_array_equal(read_image(tmp_path / "copy" / f"{image_id}.png").rgb, rgb)
    for split in ("train", "val", "test"):
        ids = list(result.manifest.loc[result.manifest["split"] == split, "id"])
        files = split_files(out, split)
        assert len(files) == len(ids) > 0
        for image_id, image in zip(ids, files):
            np.testing.assert_array_equal(to_array(image), expected[image_id])
        for image_id, image in load_split(out, split):
            np.testing.assert_array_equal(to_array(image), expected[image_id])
    whole = build_benchmark(out, DegradeConfig(tasks=("denoise_15",), benchmark_crop=0), seed=0,
                            out_dir=tmp_path / "benchmark", **QUIET)
    listed = {str(path.resolve()) for path in originals}
    assert len(whole) and set(whole["clean_path"]) <= listed  # whole images: the clean side is the original file
    for pair in load_benchmark(tmp_path / "benchmark"):
        np.testing.assert_array_equal(to_array(pair.clean[0]), expected[pair.row.image_id])


def _run_stage(tmp_path: Path, params: dict) -> subprocess.CompletedProcess:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run([sys.executable, str(ROOT / "stages" / "prepare.py"), "--params", "params.yaml",
                           "--out", "out"], cwd=tmp_path, capture_output=True, text=True)


@pytest.mark.integration
def test_stage_reports_bad_parameters_by_key(tmp_path):
    done = _run_stage(tmp_path, {"base": {"seed": 0}, "prepare": {"min_sid": 5}})
    assert done.returncode == 1 and "prepare: unknown key(s) min_sid" in done.stderr
    done = _run_stage(tmp_path, {"base": {"seed": 0}, "prepare": {"val_fraction": 0.7, "test_fraction": 0.5}})
    assert done.returncode == 1 and "must be >= 0 and sum to less than 1" in done.stderr
    done = _run_stage(tmp_path, {"base": {"seed": 0}, "prepare": {"source": "nowhere"}})
    assert done.returncode == 1 and "nowhere is not a folder" in done.stderr


def _bad_entries(root: Path) -> dict[str, str]:
    """A broken link, a link loop, a link to itself and a file whose name is not UTF-8, under ``root``; returns
    each entry's path as rejects.csv prints it, with a word of the reason it must give."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "gone.png").symlink_to(root / "nowhere.png")
    (root / "BSD400" / "loop").symlink_to(root)
    (root / "self.png").symlink_to(root / "self.png")
    bad_name = os.path.join(os.fsencode(root), b"bad\xffname.png")
    with open(bad_name, "wb") as file:
        file.write(b"x")
    return {str(root / "gone.png"): "broken link", str(root / "BSD400" / "loop"): "link loop",
            str(root / "self.png"): "cannot be read", os.fsencode(bad_name).decode("utf-8", "backslashreplace"):
            "not valid UTF-8"}


def _clean_sets(root: Path) -> None:
    for i in range(3):
        _photo(root / "BSD400" / f"{i}.png", seed=i, size=(130, 130))
    for i in range(2):
        _photo(root / "BSD68" / f"test{i}.png", seed=10 + i, size=(130, 130))


def test_bad_entries_of_a_datasets_folder_are_rejected_and_the_rest_is_prepared(tmp_path):
    root = tmp_path / "datasets"
    _clean_sets(root)
    expected = _bad_entries(root)
    config = PrepareConfig(datasets_root=str(root), min_side=16)
    result = prepare_corpus(config, seed=0, out_dir=tmp_path / "out", **QUIET)
    assert len(result.manifest) == 5
    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv")  # written: no name broke the CSV
    reasons = dict(zip(rejects["path"], rejects["reason"]))
    for path, word in expected.items():
        assert word in reasons[path], (path, reasons)


@pytest.mark.integration
def test_dvc_repro_prepares_a_datasets_folder_with_bad_entries(tmp_path):
    """The same folder under a real `dvc repro`: DVC never hashes the folder itself (it would stop at the broken
    link or the name before any stage runs), `scan` lists it, and `prepare` rejects the bad entries."""
    from tests.helpers.pipeline import make_pipeline_repo

    repo = make_pipeline_repo(tmp_path / "repo", {"prepare": {"datasets_root": "datasets", "min_side": 16}})
    _clean_sets(repo.path / "datasets")
    expected = _bad_entries(repo.path / "datasets")
    repo.dvc("repro", "prepare")
    index = pd.read_csv(repo.path / "data" / "datasets_index.csv", keep_default_na=False)
    assert sorted(index[index["problem"] == ""]["path"]) == ["BSD400/0.png", "BSD400/1.png", "BSD400/2.png",
                                                              "BSD68/test0.png", "BSD68/test1.png"]
    assert (index["problem"] != "").sum() == 4
    rejects = pd.read_csv(repo.path / "data" / "prepared" / "rejects.csv")
    assert len(pd.read_csv(repo.path / "data" / "prepared" / "manifest.csv")) == 5
    assert {Path(path).name for path in rejects["path"]} >= {"gone.png", "loop", "self.png"}
    # Nothing changed: prepare stays up to date though scan runs again; a new image reruns it.
    assert "Running stage 'prepare'" not in repo.dvc("repro", "prepare").stdout
    _photo(repo.path / "datasets" / "BSD400" / "3.png", seed=3, size=(130, 130))
    assert "Running stage 'prepare'" in repo.dvc("repro", "prepare").stdout
    assert expected
