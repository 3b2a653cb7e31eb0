"""Training data as published: the published list files select the training images and pairs, and no training image
or pair copies a test image's pixels."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pip_model.config import ConfigError, load_section
from pip_model.data.corpus import PrepareConfig, prepare_corpus
from pip_model.data.datasets.standins import procedural_image, write_standins
from pip_model.data.train_lists import TrainListSource
from pip_model.image_files import write_png


def _lists(root: Path) -> dict[str, str]:
    """Lists in the published format (PromptIR data_dir/: names, or paths below the dataset's folder; the last line
    without a newline, as the published files end), each with one line that names no file."""
    data_dir = root / "data_dir"
    for name, lines in {"noisy/denoise.txt": ["00002.bmp", "bsd400_0001.png", "03000.bmp"],
                        "rainy/rainTrain.txt": ["rainy/rain-1.png", "rainy/rain-3.png", "rainy/rain-99.png"],
                        "hazy/hazy_outside.txt": ["synthetic/part1/0001_0.8_0.04.jpg",
                                                  "synthetic/part2/0002_0.9_0.08.jpg", ""]}.items():
        (data_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / name).write_text("\n".join(lines))
    return {"denoise": "data_dir/noisy/denoise.txt", "derain": "data_dir/rainy/rainTrain.txt",
            "dehaze": "data_dir/hazy/hazy_outside.txt"}


def test_a_published_list_trains_exactly_its_files_and_rejects_what_it_misses(tmp_path):
    root = tmp_path / "datasets"
    write_standins(root, count=3, size=32)
    lists = _lists(root)
    said: list[str] = []
    config = PrepareConfig(datasets_root=str(root), min_side=16, train_lists=lists)
    # Rain100L and Rain100H both hold train/rainy/rain-1.png: the line is ambiguous until the list names its folder.
    with pytest.raises(ConfigError, match=r"rainTrain.txt\): line 1 \(rainy/rain-1.png\) names 2 training files"):
        prepare_corpus(config, seed=0, out_dir=tmp_path / "refused", progress=lambda line: None)
    lists["derain"] = TrainListSource(file=lists["derain"], folder="Rain100L")
    config = PrepareConfig(datasets_root=str(root), min_side=16, train_lists=lists)
    result = prepare_corpus(config, seed=0, out_dir=tmp_path / "prepared", progress=said.append)

    train = result.manifest[result.manifest["split"] == "train"]
    assert sorted(Path(path).name for path in train["path"]) == ["00002.bmp", "bsd400_0001.png"]
    assert (result.manifest["split"] == "test").sum() == 9  # BSD68, Urban100, Kodak24: the lists leave tests alone
    pairs = result.pairs[result.pairs["split"] == "train"]
    names = {task: sorted(Path(path).relative_to(root).as_posix() for path in group["degraded_path"])
             for task, group in pairs.groupby("task")}
    assert names["derain"] == ["Rain100L/train/rainy/rain-1.png", "Rain100L/train/rainy/rain-3.png"]
    assert names["dehaze"] == ["OTS/synthetic/part1/0001_0.8_0.04.jpg", "OTS/synthetic/part2/0002_0.9_0.08.jpg"]
    assert len(names["deblur"]) == 4 and len(names["lowlight"]) == 3  # no list: every training pair, as PIP's code
    assert (result.pairs["split"] == "test").groupby(result.pairs["task"]).sum().to_dict() == {
        "deblur": 4, "dehaze": 3, "derain": 6, "lowlight": 3}

    rejects = pd.read_csv(tmp_path / "prepared" / "rejects.csv")
    reasons = dict(zip(rejects["path"], rejects["reason"]))
    assert reasons["03000.bmp"].startswith(f"listed in {root / 'data_dir/noisy/denoise.txt'} (line 3)")
    assert reasons["rainy/rain-99.png"].endswith("(line 3), but no such file among the derain training pairs")
    assert len([line for line in said if "prepare.train_lists." in line]) == 3
    assert any("prepare.train_lists.dehaze (hazy_outside.txt): 2 lines, 2 dehaze training pairs found, 0 not found"
               " (see rejects.csv), 4 unlisted left out" in line for line in said)
    assert any("prepare.train_lists.denoise (denoise.txt): 3 lines, 2 clean training images found, 1 not found"
               in line and "4 unlisted left out" in line for line in said)


def test_the_lists_are_read_from_params_and_a_missing_one_is_named(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("prepare:\n  datasets_root: data\n  train_lists:\n    denoise: data_dir/noisy/denoise.txt\n"
                      "    derain: {file: data_dir/rainy/rainTrain.txt, folder: Rain100L}\n")
    config = load_section(PrepareConfig, "prepare", params)
    assert config.train_lists == {"denoise": "data_dir/noisy/denoise.txt",
                                  "derain": TrainListSource(file="data_dir/rainy/rainTrain.txt", folder="Rain100L")}
    with pytest.raises(ConfigError, match="prepare.train_lists.denoise: .*denoise.txt is not a file"):
        prepare_corpus(PrepareConfig(datasets_root=str(tmp_path), train_lists={"denoise": "noisy/denoise.txt"}), seed=0,
                       out_dir=tmp_path / "out", progress=lambda line: None)
    with pytest.raises(ConfigError, match="prepare.train_lists.denoise_25: unknown list"):
        load_section(PrepareConfig, "prepare", _written(tmp_path, "prepare:\n  train_lists: {denoise_25: x.txt}\n"))


def _written(folder: Path, text: str) -> Path:
    path = folder / "other.yaml"
    path.write_text(text)
    return path


def _image(path: Path, seed: int) -> np.ndarray:
    pixels = procedural_image(seed, 32)
    write_png(path, pixels)
    return pixels


def test_training_images_and_pairs_that_copy_a_test_image_are_kept_out(tmp_path):
    """OTS (training) and SOTS (test) render the same scenes: a training pair whose clean image has a test image's
    pixels is rejected with the test image it copies, and so is a clean training image; the test image stays, even
    when its copy is read first (BSD400 before BSD68)."""
    root = tmp_path / "datasets"
    scene = _image(root / "SOTS" / "outdoor" / "gt" / "0001.png", 1)
    _image(root / "SOTS" / "outdoor" / "hazy" / "0001_0.8_0.2.png", 2)
    write_png(root / "OTS" / "original" / "0007.png", scene)  # the same scene under another name
    for part, seed in ((1, 3), (2, 4)):
        _image(root / "OTS" / "synthetic" / f"part{part}" / f"0007_0.8_0.0{part}.png", seed)
    _image(root / "OTS" / "original" / "0008.png", 5)
    _image(root / "OTS" / "synthetic" / "part1" / "0008_0.8_0.04.png", 6)
    shared = _image(root / "BSD400" / "a0001.png", 7)
    write_png(root / "BSD68" / "0001.png", shared)
    _image(root / "BSD400" / "a0002.png", 8)
    write_png(root / "WED" / "00003.png", scene)  # a clean training image equal to a test pair's clean image
    said: list[str] = []
    result = prepare_corpus(PrepareConfig(datasets_root=str(root), min_side=16), seed=0, out_dir=tmp_path / "out",
                            progress=said.append)

    trained = result.pairs[result.pairs["split"] == "train"]
    assert [Path(path).name for path in trained["clean_path"]] == ["0008.png"]
    assert sorted(Path(path).name for path in result.manifest["path"]) == ["0001.png", "a0002.png"]
    assert result.manifest.set_index("split").loc["test", "path"].endswith("BSD68/0001.png")
    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv")
    reasons = {Path(path).relative_to(root.resolve()).as_posix(): reason
               for path, reason in zip(rejects["path"], rejects["reason"])}
    sots = (root / "SOTS" / "outdoor" / "gt" / "0001.png").resolve()
    for part in (1, 2):
        assert reasons[f"OTS/synthetic/part{part}/0007_0.8_0.0{part}.png"] == \
            f"paired dehaze: same pixels as test image {sots}"
    assert reasons["BSD400/a0001.png"] == f"same pixels as test image {(root / 'BSD68' / '0001.png').resolve()}"
    assert reasons["WED/00003.png"] == f"same pixels as test image {sots}"
    assert any(line.startswith("prepare: OTS: 2 training image(s) or pair(s) left out") for line in said)
    assert any(line.startswith("prepare: BSD400: 1 image(s) left out of training") for line in said)


def test_a_copy_between_two_training_sets_is_still_a_plain_duplicate(tmp_path):
    root = tmp_path / "datasets"
    pixels = _image(root / "BSD400" / "a0001.png", 1)
    write_png(root / "WED" / "00001.png", pixels)
    for name, seed in (("BSD400/a0002.png", 2), ("BSD68/0001.png", 3), ("BSD68/0002.png", 4)):
        _image(root / name, seed)
    result = prepare_corpus(PrepareConfig(datasets_root=str(root), min_side=16), seed=0, out_dir=tmp_path / "out",
                            progress=lambda line: None)
    assert result.rejects["reason"].tolist() == [f"duplicate of {(root / 'BSD400' / 'a0001.png').resolve()} "
                                                 "(same pixels)"]
    shutil.rmtree(root)
