"""The paper's datasets in their published layouts: found, paired completely, split by role, ids unique."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from pip_model.data.corpus import PairedSource, PrepareConfig, file_digest, prepare_corpus
from pip_model.data.datasets import discover
from pip_model.data.datasets.standins import procedural_image, write_standins
from pip_model.image_files import read_image, write_png
from tests.helpers.stages import QUIET

COUNT = 3  # images or pairs per dataset and split


@pytest.fixture(scope="module")
def standins(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    write_standins(root, count=COUNT, size=40)
    return root


def test_every_published_layout_pairs_completely(standins):
    found = discover(standins)
    assert found.skipped == []
    pairs = Counter((p.dataset, p.task, p.split) for p in found.pairs)
    gopro = 2 * (COUNT // 2 + 1)  # two sequences per split
    assert pairs == {
        ("Rain100L", "derain", "train"): COUNT, ("Rain100L", "derain", "test"): COUNT,
        ("Rain100H", "derain", "train"): COUNT, ("Rain100H", "derain", "test"): COUNT,
        ("OTS", "dehaze", "train"): 2 * COUNT,  # two hazy renderings of each scene
        ("SOTS", "dehaze", "test"): COUNT,
        ("GoPro", "deblur", "train"): gopro, ("GoPro", "deblur", "test"): gopro,
        ("LOL", "lowlight", "train"): COUNT, ("LOL", "lowlight", "test"): COUNT,
    }
    clean = Counter((c.dataset, c.split) for c in found.clean)
    assert clean == {("BSD400", "train"): COUNT, ("WED", "train"): COUNT, ("BSD68", "test"): COUNT,
                     ("Urban100", "test"): COUNT, ("Kodak24", "test"): COUNT}
    # Each degraded file found its own clean partner, by the dataset's naming rule.
    for pair in found.pairs:
        if pair.dataset == "OTS":
            assert pair.clean.name == pair.degraded.name.split("_")[0] + ".jpg"
            assert pair.clean.parent.name == "original" and pair.degraded.parent.parent.name == "synthetic"
        elif pair.dataset == "SOTS":
            assert (pair.degraded.name, pair.clean.name) == (pair.clean.stem + "_0.8_0.2.jpg", pair.clean.name)
        elif pair.degraded.stem.startswith("rain-"):
            assert pair.clean.name == "norain-" + pair.degraded.name.removeprefix("rain-")
        else:
            assert pair.clean.name == pair.degraded.name and pair.clean.parent.parent == pair.degraded.parent.parent
    assert "Rain100L (derain, train): 3 pairs" in found.summary()
    assert "BSD68 (clean, test): 3 images" in found.summary()


def test_promptir_layout_and_flat_rain_folders(tmp_path):
    """PromptIR's data folder (Train/Derain, Train/Dehaze, Train/Denoise, test/...) and Rain100L as flat files."""
    image = procedural_image(0, 32)
    files = ["Train/Derain/rainy/rain-1.png", "Train/Derain/gt/norain-1.png",
             "Train/Dehaze/synthetic/part1/0025_0.8_0.04.jpg", "Train/Dehaze/original/0025.jpg",
             "Train/Denoise/00001.bmp", "Train/Denoise/test_001.png",
             "test/derain/Rain100L/input/1.png", "test/derain/Rain100L/target/1.png",
             "test/dehaze/input/0001_0.8_0.2.jpg", "test/dehaze/target/0001.png",
             "test/denoise/bsd68/test001.png", "test/denoise/urban100/img_001.png",
             "flat/Rain100L/rain-7.png", "flat/Rain100L/norain-7.png"]
    for name in files:
        write_png(tmp_path / name, image)
    found = discover(tmp_path)
    assert found.skipped == []
    assert sorted((p.task, p.split, p.degraded.relative_to(tmp_path).as_posix()) for p in found.pairs) == [
        ("dehaze", "test", "test/dehaze/input/0001_0.8_0.2.jpg"),
        ("dehaze", "train", "Train/Dehaze/synthetic/part1/0025_0.8_0.04.jpg"),
        ("derain", "test", "flat/Rain100L/rain-7.png"),
        ("derain", "test", "test/derain/Rain100L/input/1.png"),
        ("derain", "train", "Train/Derain/rainy/rain-1.png"),
    ]
    assert sorted((c.dataset, c.split) for c in found.clean) == [
        ("Denoise", "train"), ("Denoise", "train"), ("bsd68", "test"), ("urban100", "test")]


def test_unmatched_files_are_skipped_with_the_reason(tmp_path):
    image = procedural_image(0, 32)
    write_png(tmp_path / "LOL" / "eval15" / "low" / "1.png", image)
    write_png(tmp_path / "LOL" / "eval15" / "high" / "1.png", image)
    write_png(tmp_path / "LOL" / "eval15" / "low" / "2.png", image)  # no partner
    write_png(tmp_path / "Rain100L" / "rain-3.png", image)  # flat, no norain-3
    found = discover(tmp_path)
    assert [p.degraded.name for p in found.pairs] == ["1.png"]
    reasons = {Path(path).relative_to(tmp_path).as_posix(): reason for path, reason in found.skipped}
    assert reasons.keys() == {"LOL/eval15/low/2.png", "Rain100L/rain-3.png"}
    assert "no clean image named 2.* in" in reasons["LOL/eval15/low/2.png"]
    assert "no norain-3.* beside it" in reasons["Rain100L/rain-3.png"]
    with pytest.raises(FileNotFoundError, match="prepare.datasets_root: .*nowhere is not a folder"):
        discover(tmp_path / "nowhere")


def test_one_walk_of_the_root_skips_hidden_folders_and_never_follows_a_loop(tmp_path):
    """discover() walks the root once with the one folder walk: a hidden folder inside a dataset is no role folder,
    and a link from a dataset back to the root is a loop (listed), not a way to read the other datasets again."""
    for i in range(2):
        write_png(tmp_path / "BSD400" / f"{i}.png", procedural_image(i, 32))
        write_png(tmp_path / "BSD68" / f"test{i}.png", procedural_image(10 + i, 32))
    (tmp_path / "BSD400" / "loop").symlink_to(tmp_path)
    for side in ("low", "high"):
        write_png(tmp_path / "LOL" / "eval15" / side / "1.png", procedural_image(20, 32))
        write_png(tmp_path / "LOL" / ".old" / side / "1.png", procedural_image(21, 32))
    found = discover(tmp_path)
    assert sorted((c.dataset, c.key) for c in found.clean) == [("BSD400", "0.png"), ("BSD400", "1.png"),
                                                               ("BSD68", "test0.png"), ("BSD68", "test1.png")]
    assert [p.key for p in found.pairs] == ["eval15/low/1.png"]
    assert [(Path(path).name, reason.split(":")[0]) for path, reason in found.skipped] == [("loop", "link loop")]


def test_prepare_reads_a_datasets_root_with_roles_and_a_corrupt_file(standins, tmp_path):
    root = tmp_path / "datasets"
    root.symlink_to(standins)
    # A corrupt file inside a dataset is named in the rejects; the rest is processed.
    broken = tmp_path / "extra" / "LOL" / "eval15"
    write_png(broken / "high" / "99.png", procedural_image(99, 40))
    (broken / "low").mkdir(parents=True)
    (broken / "low" / "99.png").write_bytes(b"\x89PNG truncated")
    config = PrepareConfig(datasets_root=str(tmp_path), min_side=32)
    result = prepare_corpus(config, seed=0, out_dir=tmp_path / "out", **QUIET)

    # The clean sets keep their roles (no scikit-image photographs, no val split drawn from BSD68).
    dataset_of = [Path(origin).relative_to(standins.resolve()).parts[0] for origin in result.manifest["origin"]]
    splits = Counter(dataset_of)
    assert splits == {"BSD400": COUNT, "WED": COUNT, "BSD68": COUNT, "Urban100": COUNT, "Kodak24": COUNT}
    by_set = result.manifest.assign(dataset=dataset_of)
    assert set(by_set.query("dataset in ['BSD400', 'WED']")["split"]) == {"train"}
    assert set(by_set.query("dataset not in ['BSD400', 'WED']")["split"]) == {"test"}

    assert result.pairs["id"].is_unique and len(result.pairs) == len(discover(root).pairs)
    assert Counter(result.pairs["task"]) == {"derain": 4 * COUNT, "dehaze": 3 * COUNT,
                                             "deblur": 4 * (COUNT // 2 + 1), "lowlight": 2 * COUNT}
    rejected = pd.read_csv(tmp_path / "out" / "rejects.csv")
    assert list(rejected["path"]) == [str(broken / "low" / "99.png")]
    assert "paired lowlight" in rejected["reason"].iloc[0]

    # Nothing was copied: images and pairs are listed where they lie, with their sizes and file hashes.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.csv", "pairs.csv", "rejects.csv"]
    assert all(Path(path).is_absolute() and Path(path).is_file() for path in result.manifest["path"])
    for row in result.pairs.itertuples():
        degraded = Path(row.degraded_path)
        assert degraded.is_absolute() and read_image(degraded).size == (row.height, row.width)
        assert row.degraded_bytes == degraded.stat().st_size and row.degraded_sha256 == file_digest(degraded)
        assert row.clean_sha256 == file_digest(Path(row.clean_path))


def test_an_edited_dataset_file_changes_only_its_own_row(tmp_path):
    """The manifest records each file's hash, so an edited file changes the prepared data (and DVC reruns what
    follows) while every other row stays as it was."""
    write_standins(tmp_path / "datasets", count=2, size=40)
    config = PrepareConfig(datasets_root=str(tmp_path / "datasets"), min_side=32)
    before = prepare_corpus(config, seed=0, out_dir=tmp_path / "a", **QUIET).pairs.set_index("id")
    edited = tmp_path / "datasets" / "LOL" / "eval15" / "low" / "1.png"
    write_png(edited, procedural_image(1234, 40))
    after = prepare_corpus(config, seed=0, out_dir=tmp_path / "b", **QUIET).pairs.set_index("id")
    changed = before.index[(before["degraded_sha256"] != after["degraded_sha256"])]
    assert list(changed) == ["lowlight-lol-eval15_low_1"]
    assert after.loc[changed[0], "degraded_path"] == str(edited.resolve())


def test_two_sources_with_the_same_names_never_overwrite_each_other(tmp_path):
    """Rain100L from two mirrors: same file names, different pixels; both kept, under different ids."""
    for mirror, seed in (("mirror_a", 1), ("mirror_b", 2)):
        for i in (1, 2):
            write_png(tmp_path / mirror / "Rain100L" / f"rain-{i:03d}.png", procedural_image(seed * 10 + i, 32))
            write_png(tmp_path / mirror / "Rain100L" / f"norain-{i:03d}.png", procedural_image(seed * 10 + i + 5, 32))
    corpus = tmp_path / "corpus"
    for i in range(3):
        write_png(corpus / f"{i}.png", procedural_image(100 + i, 40))
    config = PrepareConfig(source=str(corpus), min_side=16, paired=tuple(
        PairedSource(task="derain", degraded_dir=str(tmp_path / mirror / "Rain100L"),
                     clean_dir=str(tmp_path / mirror / "Rain100L"))
        for mirror in ("mirror_a", "mirror_b")))
    result = prepare_corpus(config, seed=0, out_dir=tmp_path / "out", **QUIET)
    assert len(result.pairs) == 4 and result.pairs["id"].is_unique
    # Each id points at its own source's files, whose hashes differ.
    assert len(set(result.pairs["degraded_path"])) == 4 and result.pairs["degraded_sha256"].is_unique
    assert {Path(p).parent.parent.name for p in result.pairs["degraded_path"]} == {"mirror_a", "mirror_b"}
