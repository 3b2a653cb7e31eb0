"""The degrade stage's benchmark and the training pair sources."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pip_model.data.corpus import PairedSource, PrepareConfig, prepare_corpus
from pip_model.data.images import (
    ImageSet,
    dead_leaves,
    dead_leaves_images,
    load_split,
    real_training_pairs,
    split_files,
)
from pip_model.data.loaders import StepBatchSampler
from pip_model.data.pairs import DegradeConfig, build_benchmark, write_offline_pairs
from pip_model.data.sampling import OfflinePairDataset, OnlineBatches, OnlinePairSampler, augment, balanced_tasks
from pip_model.image_files import write_png
from pip_model.tasks import TASK_TO_CLASS, TASKS
from tests.helpers.stages import QUIET


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    for i in range(8):
        gradient = np.linspace(0, 255, 72)[None, :, None] * rng.uniform(0.3, 1.0, 3)
        pixels = np.clip(gradient + rng.normal(0, 20, (64, 72, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"photo{i}.png")
    rain = root.parent / "rain"
    rain.mkdir()
    for name, seed in (("rain-1.png", 1), ("norain-1.png", 2), ("rain-2.png", 3), ("norain-2.png", 4)):
        Image.fromarray(np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(rain / name)
    config = PrepareConfig(source=str(root), min_side=32, paired=(
        PairedSource(task="derain", degraded_dir=str(rain), clean_dir=str(rain), split="test"),))
    out = root.parent / "prepared"
    prepare_corpus(config, seed=0, out_dir=out, **QUIET)
    return out


SMALL = DegradeConfig(benchmark_crop=32, crops_per_image=2, train_pairs_per_task=3, train_patch=24)


def test_benchmark_covers_every_task_and_is_reproducible_byte_for_byte(prepared, tmp_path):
    first = build_benchmark(prepared, SMALL, seed=0, out_dir=tmp_path / "a", **QUIET)
    build_benchmark(prepared, SMALL, seed=0, out_dir=tmp_path / "b", **QUIET)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)

    synthetic = first[first["source"] == "synthetic"]
    evaluated = pd.read_csv(prepared / "manifest.csv").query("split != 'train'")
    assert set(synthetic["image_id"]) == set(evaluated["id"])
    assert Counter(synthetic["task"]) == {task: 2 * len(evaluated) for task in TASKS}
    assert (synthetic["class_id"].astype(int) == synthetic["task"].map(TASK_TO_CLASS)).all()
    record = json.loads(synthetic[synthetic["task"] == "deblur"]["params"].iloc[0])
    assert {"kernel_size", "angle", "direction", "image_seed", "seed"} <= set(record)
    paired = first[first["source"] == "paired"]
    assert list(paired["task"]) == ["derain", "derain"]
    image = Image.open(tmp_path / "a" / synthetic["degraded_path"].iloc[0])
    assert image.size == (32, 32) and image.mode == "RGB"


def test_the_float_noise_protocol_keeps_the_noise_unclipped_and_is_scored_as_such(prepared, tmp_path):
    """`degrade.test_noise: float`, the task experts' classic protocol: the test images' noise tasks are the clean
    crop plus float Gaussian noise, neither clipped nor rounded (.npy), seeded and recorded; the other tasks and the
    val images are as before, and the benchmark reads them back as they were written."""
    from pip_model.evaluation.benchmark import load_benchmark

    floating = build_benchmark(prepared, DegradeConfig(benchmark_crop=32, crops_per_image=1, test_noise="float"),
                               seed=0, out_dir=tmp_path / "f", **QUIET)
    usual = build_benchmark(prepared, DegradeConfig(benchmark_crop=32, crops_per_image=1), seed=0,
                            out_dir=tmp_path / "u", **QUIET)
    noisy = floating[(floating["task"] == "denoise_50") & (floating["split"] == "test")]
    assert len(noisy) and noisy["degraded_path"].str.endswith(".npy").all()
    assert {json.loads(params)["noise"] for params in noisy["params"]} == {"float"}
    others = floating[~floating.index.isin(noisy.index) & ~floating["degraded_path"].str.endswith(".npy")]
    assert all((tmp_path / "f" / path).read_bytes() == (tmp_path / "u" / path).read_bytes()
               for path in others["degraded_path"] if not Path(path).is_absolute())
    pair = next(pair for pair in load_benchmark(tmp_path / "f") if pair.row.id == noisy["id"].iloc[0])
    noise = pair.degraded - pair.clean
    assert pair.degraded.min() < 0 or pair.degraded.max() > 1  # not clipped
    assert 0.9 < float(noise.std()) * 255 / 50 < 1.1 and not torch.equal(noise * 255, (noise * 255).round())


def test_another_seed_gives_another_benchmark(prepared, tmp_path):
    build_benchmark(prepared, SMALL, seed=0, out_dir=tmp_path / "a", **QUIET)
    other = build_benchmark(prepared, SMALL, seed=1, out_dir=tmp_path / "b", **QUIET)
    path = other["degraded_path"].iloc[0]
    assert (tmp_path / "a" / path).read_bytes() != (tmp_path / "b" / path).read_bytes()


def test_balanced_tasks_mix_every_task_into_a_batch():
    generator = torch.Generator().manual_seed(0)
    slots = balanced_tasks(list(TASKS), None, 2 * len(TASKS), generator)
    assert Counter(slots) == {task: 2 for task in TASKS}
    weighted = balanced_tasks(["derain", "dehaze"], {"derain": 3, "dehaze": 1}, 8, generator)
    assert Counter(weighted) == {"derain": 6, "dehaze": 2}
    with pytest.raises(ValueError, match="task weights must be >= 0"):
        balanced_tasks(["derain"], {"derain": 0}, 4, generator)


def test_online_sampler_is_seeded_per_step(prepared):
    images = [image for _, image in load_split(prepared, "train")]
    sampler = OnlinePairSampler(images, tasks=TASKS, patch=24, batch_size=len(TASKS), seed=0)
    batch = sampler.batch(5)
    assert batch.degraded.shape == batch.clean.shape == (len(TASKS), 3, 24, 24)
    assert sorted(batch.tasks) == sorted(TASKS)
    assert batch.prompts.argmax(dim=1).tolist() == [TASK_TO_CLASS[t] for t in batch.tasks]
    assert torch.equal(batch.prompts.sum(dim=1), torch.ones(len(TASKS)))
    assert (batch.degraded != batch.clean).flatten(1).any(dim=1).all()
    again = sampler.batch(5)
    assert torch.equal(batch.degraded, again.degraded) and batch.tasks == again.tasks
    assert not torch.equal(sampler.batch(6).clean, batch.clean)
    other_seed = OnlinePairSampler(images, tasks=TASKS, patch=24, batch_size=len(TASKS), seed=1).batch(5)
    assert not torch.equal(other_seed.clean, batch.clean)


def test_the_sensor_sees_dim_scenes_that_are_not_low_light(prepared, tmp_path):
    """``exposure`` scales each synthetic clean crop by a factor from its range (drawn after the crop, so the
    crops are the same as without it) before the degradation; real pairs stay as they are."""
    images = [image for _, image in load_split(prepared, "train")]
    common = {"tasks": ["derain", "lowlight"], "patch": 24, "batch_size": 6, "seed": 0}
    plain = OnlinePairSampler(images, **common).batch(3)
    dim = OnlinePairSampler(images, exposure=(0.5, 0.5), **common).batch(3)
    torch.testing.assert_close(dim.clean, 0.5 * plain.clean)
    assert dim.tasks == plain.tasks and (dim.degraded.mean() < 0.8 * plain.degraded.mean())
    spread = OnlinePairSampler(images, exposure=(0.5, 1.0), **common).batch(3).clean.flatten(1).amax(dim=1)
    ratios = spread / plain.clean.flatten(1).amax(dim=1)
    assert ((ratios >= 0.5 - 1e-6) & (ratios <= 1 + 1e-6)).all() and ratios.std() > 0.01  # one factor per crop
    real = {"derain": _inverted_pairs(tmp_path, 2)}
    paired = OnlinePairSampler(split_files(prepared, "train"), exposure=(0.5, 0.5), real_pairs=real,
                               real_share={"derain": 1.0}, **common).batch(3)
    for task, degraded, clean in zip(paired.tasks, paired.degraded, paired.clean):
        if task == "derain":  # a window of a real pair, as it is on disk
            assert (degraded - (1 - clean)).abs().max() < 1e-5


def test_the_sensor_sees_photographs_at_several_scales_and_dead_leaves(prepared):
    """``scales`` cuts each synthetic crop patch / scale wide and resizes it down (scale 1 is the plain crop, and a
    smaller scale is a smoother, wider view); dead-leaves images are seeded, in [0, 1], and made of flat discs."""
    images = [image for _, image in load_split(prepared, "train")]
    common = {"tasks": ["derain"], "patch": 24, "batch_size": 4, "seed": 0}
    plain = OnlinePairSampler(images, **common).batch(2)
    torch.testing.assert_close(OnlinePairSampler(images, scales=(1.0, 1.0), **common).batch(2).clean, plain.clean)
    wide = OnlinePairSampler(images, scales=(0.25, 0.25), **common).batch(2).clean
    assert wide.shape == plain.clean.shape and not torch.allclose(wide, plain.clean)

    first, again, other = (dead_leaves(64, torch.Generator().manual_seed(seed)) for seed in (1, 1, 2))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, other) and first.shape == (3, 64, 64) and 0 <= first.min() <= first.max() <= 1
    colours = torch.unique(first.flatten(1).T, dim=0)
    assert 10 < len(colours) < 64 * 64 / 4  # many discs, each of one colour
    both = ImageSet(images[:2], dead_leaves_images(3, side=32, seed=0))
    assert len(both) == 5 and torch.equal(both[1], images[1]) and both[4].shape == (3, 32, 32)


def test_offline_pairs_and_balanced_sampler(prepared, tmp_path):
    manifest = write_offline_pairs(prepared, SMALL, seed=0, out_dir=tmp_path / "pairs", **QUIET)
    assert Counter(manifest["task"]) == {task: 3 for task in TASKS}
    dataset = OfflinePairDataset(tmp_path / "pairs", patch=24)
    degraded, clean, prompt = dataset[0]
    assert degraded.shape == clean.shape == (3, 24, 24) and int(prompt.argmax()) == TASK_TO_CLASS[manifest["task"][0]]
    sampler = StepBatchSampler(dataset.sample_weights({"derain": 2.0}), batch_size=7, seed=0, start=0, steps=1000)
    drawn = [index for batch in sampler for index in batch]
    counts = Counter(manifest["task"][i] for i in drawn)
    assert counts["derain"] == pytest.approx(2 * counts["dehaze"], rel=0.2)
    assert counts["dehaze"] == pytest.approx(counts["lowlight"], rel=0.2)


def test_no_offline_pairs_by_default_and_a_clear_error(prepared, tmp_path):
    write_offline_pairs(prepared, DegradeConfig(), seed=0, out_dir=tmp_path / "pairs", **QUIET)
    with pytest.raises(ValueError, match="lists no training pairs; set degrade.train_pairs_per_task"):
        OfflinePairDataset(tmp_path / "pairs", patch=24)


def test_augment_only_rearranges_pixels():
    crops = torch.rand(32, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    augmented = torch.stack([augment(crop, generator) for crop in crops])
    for before, after in zip(crops, augmented):
        assert torch.equal(before.flatten().sort().values, after.flatten().sort().values)
    assert not torch.equal(crops, augmented)
    generator.manual_seed(1)
    assert torch.equal(augmented, torch.stack([augment(crop, generator) for crop in crops]))
    pair = torch.cat([crops[0], 1 - crops[0]])  # a degraded and a clean crop get the same rearrangement
    moved = augment(pair, generator)
    assert torch.equal(moved[3:], 1 - moved[:3])


def test_images_are_read_from_disk_with_a_bounded_cache(prepared):
    files = split_files(prepared, "train", cache=2)
    in_memory = [image for _, image in load_split(prepared, "train")]
    assert len(files) == len(in_memory) >= 3
    for index in [0, 1, 2, 0, 2, 1]:
        assert torch.equal(files[index], in_memory[index])
        assert len(files._decoded) <= 2  # memory stays flat however many images the split holds
    sampler = dict(tasks=TASKS, patch=24, batch_size=7, seed=0, augment=True)
    # Reading lazily changes nothing: the same batch as from images held in memory.
    lazy, held = OnlinePairSampler(files, **sampler).batch(3), OnlinePairSampler(in_memory, **sampler).batch(3)
    assert torch.equal(lazy.degraded, held.degraded) and lazy.tasks == held.tasks


def test_a_share_of_the_slots_is_that_share_of_the_global_batch(prepared):
    """A DDP rank builds only its slots (every slot draws from its own generator), and gets exactly the samples the
    one-process batch holds there; each task's slots are neighbours, real pairs after synthetic ones."""
    real = {"derain": _inverted_pairs(prepared.parent / "inverted", 2)}
    common = dict(tasks=TASKS, patch=24, batch_size=8, seed=3, augment=True, real_pairs=real,
                  real_share={"derain": 0.5}, task_weights={"derain": 5})
    whole = OnlinePairSampler(split_files(prepared, "train"), **common).batch(4)
    inverted = ((whole.degraded - (1 - whole.clean)).abs().flatten(1).amax(dim=1) < 1e-5).tolist()
    derain = [is_real for task, is_real in zip(whole.tasks, inverted) if task == "derain"]
    assert True in derain and False in derain and derain == sorted(derain)
    for slots in (range(0, 3), range(3, 8), range(5, 6)):
        share = OnlinePairSampler(split_files(prepared, "train"), slots=slots, **common)
        crops = share.crops(4)
        assert len(crops.tasks) == len(crops.clean) == len(slots)  # nothing beyond its share is built
        part = share.finish(crops)
        # Equal up to float rounding: a batch's blur kernels are zero-padded to its largest one.
        torch.testing.assert_close(part.degraded, whole.degraded[slots.start : slots.stop], rtol=0, atol=1e-5)
        assert torch.equal(part.clean, whole.clean[slots.start : slots.stop])
        assert part.tasks == whole.tasks[slots.start : slots.stop]
    assert whole.tasks == sorted(whole.tasks, key=list(TASKS).index)
    with pytest.raises(ValueError, match="not a share of a batch of 8"):
        OnlinePairSampler(split_files(prepared, "train"), slots=range(6, 9), **common)


def test_worker_processes_give_the_batches_of_the_training_process(prepared):
    sampler = OnlinePairSampler(split_files(prepared, "train"), tasks=TASKS, patch=24, batch_size=7, seed=0,
                                augment=True)
    ahead = OnlineBatches(sampler, start=2, steps=5, workers=2)
    for step in range(2, 5):
        expected, got = sampler.batch(step), ahead.batch(step)
        assert torch.equal(got.degraded, expected.degraded) and torch.equal(got.clean, expected.clean)
        assert got.tasks == expected.tasks


def _inverted_pairs(folder: Path, count: int) -> list[tuple[Path, Path]]:
    """Real pairs whose degraded image is the clean one inverted: no synthetic degradation gives that."""
    pairs = []
    for i in range(count):
        clean = np.random.default_rng(i).random((40, 50, 3), dtype=np.float32)
        pairs.append((folder / f"rain-{i}.png", folder / f"norain-{i}.png"))
        write_png(pairs[-1][1], clean)
        write_png(pairs[-1][0], 1 - np.round(clean * 255) / 255)
    return pairs


def test_real_training_pairs_fill_their_share_of_a_task(prepared, tmp_path):
    real = {"derain": _inverted_pairs(tmp_path, 3)}
    images = split_files(prepared, "train")

    def real_slots(share: float, steps: range) -> tuple[int, int]:
        sampler = OnlinePairSampler(images, tasks=["derain", "dehaze"], patch=24, batch_size=8, seed=0, augment=True,
                                    real_pairs=real, real_share={"derain": share})
        found = total = 0
        for step in steps:
            batch = sampler.batch(step)
            inverted = ((batch.degraded - (1 - batch.clean)).abs().flatten(1).amax(dim=1) < 1e-5).tolist()
            for task, is_real in zip(batch.tasks, inverted):
                assert not (is_real and task != "derain")  # only derain slots are filled from its pairs
                total += task == "derain"
                found += is_real
        return found, total

    found, total = real_slots(1.0, range(4))
    assert found == total == 16  # every derain slot: a window of a real pair, the same in both images
    found, total = real_slots(0.5, range(20))
    assert 0.3 * total < found < 0.7 * total
    with pytest.raises(ValueError, match="real training pairs of dehaze, but prepare found none"):
        OnlinePairSampler(images, tasks=["dehaze"], patch=24, batch_size=2, seed=0, real_pairs=real,
                          real_share={"dehaze": 1.0})


def test_the_training_pairs_of_prepare_are_listed_by_task(prepared):
    pairs = real_training_pairs(prepared)
    assert pairs == {}  # the module's corpus has test pairs only
    listed = pd.read_csv(prepared / "pairs.csv")
    listed.loc[0, "split"] = "train"
    (prepared.parent / "with_train").mkdir(exist_ok=True)
    listed.to_csv(prepared.parent / "with_train" / "pairs.csv", index=False)
    found = real_training_pairs(prepared.parent / "with_train")
    assert found == {"derain": [(Path(listed.loc[0, "degraded_path"]), Path(listed.loc[0, "clean_path"]))]}


def _promptir_test_noise(files: list[Path], sigma: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """PromptIR's BSD68 test images, written out from its test.py and utils/dataset_utils.py (for the test only):
    np.random.seed(0) once, then test_Denoise at sigma 15, 25, 50 in turn, each reading the set in order through
    DenoiseTestDataset: crop_img(base=16), then clip(image + randn(H, W, 3) * sigma, 0, 255).astype(uint8).
    Returns (noisy, cropped clean) by file name."""
    np.random.seed(0)
    noisy = {}
    for pass_sigma in (15, 25, 50):
        for path in files:
            image = np.array(Image.open(path).convert("RGB"))
            h, w = image.shape[0], image.shape[1]
            crop_h, crop_w = h % 16, w % 16
            image = image[crop_h // 2:h - crop_h + crop_h // 2, crop_w // 2:w - crop_w + crop_w // 2, :]
            noise = np.random.randn(*image.shape)
            if pass_sigma == sigma:
                noisy[path.name] = np.clip(image + noise * pass_sigma, 0, 255).astype(np.uint8), image
    return noisy


@pytest.fixture(scope="module")
def bsd68_prepared(tmp_path_factory) -> Path:
    """A stand-in BSD68 of two images (37x50 and 40x33, written out of name order) and a BSD400 to train on."""
    root = tmp_path_factory.mktemp("datasets")
    rng = np.random.default_rng(3)
    for name, (height, width) in (("test002.png", (37, 50)), ("test001.png", (40, 33))):
        (root / "BSD68").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(root / "BSD68" / name)
    (root / "BSD400").mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / "BSD400" / "1.png")
    out = root.parent / "prepared"
    prepare_corpus(PrepareConfig(datasets_root=str(root), min_side=16), seed=0, out_dir=out, **QUIET)
    return out


def test_the_published_test_noise_is_promptirs_seed_0_stream_in_file_order(bsd68_prepared, tmp_path):
    """`degrade.test_noise: published`: each noise task's test images equal PromptIR's to the last uint8 (one seed-0
    stream per test set, sigma 15's pass drawn though only 25 and 50 are benchmarked), scored against the same
    crop; the other tasks and the default are untouched."""
    config = DegradeConfig(tasks=("denoise_25", "denoise_50", "derain"), benchmark_crop=0, test_noise="published")
    manifest = build_benchmark(bsd68_prepared, config, seed=0, out_dir=tmp_path / "published", **QUIET)
    tests = pd.read_csv(bsd68_prepared / "manifest.csv").query("split == 'test'")
    origins = {image_id: Path(path) for image_id, path in zip(tests["id"], tests["path"])}
    files = sorted(origins.values(), key=lambda path: path.name)
    assert [path.name for path in files] == ["test001.png", "test002.png"]
    for sigma in (25, 50):
        expected = _promptir_test_noise(files, sigma)
        rows = manifest[manifest["task"] == f"denoise_{sigma}"]
        assert len(rows) == 2
        for row in rows.itertuples():
            name = origins[row.image_id].name
            noisy = np.array(Image.open(tmp_path / "published" / row.degraded_path))
            assert noisy.dtype == np.uint8 and np.array_equal(noisy, expected[name][0]), (sigma, name)
            clean = np.array(Image.open(tmp_path / "published" / row.clean_path))
            assert np.array_equal(clean, expected[name][1]), name
            assert clean.shape == noisy.shape == ((32, 32, 3) if name == "test001.png" else (32, 48, 3))
            record = json.loads(row.params)
            assert record["stream_seed"] == 0 and record["sigma"] == sigma and record["rounding"] == "truncate"
    first_25 = json.loads(manifest[manifest["task"] == "denoise_25"]["params"].iloc[0])
    assert first_25["stream_pass"] == 1 and first_25["stream_offset"] == 3 * (32 * 32 + 32 * 48)
    derain = manifest[manifest["task"] == "derain"]
    assert all(Path(path).is_absolute() for path in derain["clean_path"])  # whole prepared images, pipeline-made
    default = build_benchmark(bsd68_prepared, DegradeConfig(tasks=("denoise_25",), benchmark_crop=0), seed=0,
                              out_dir=tmp_path / "default", **QUIET)
    assert {np.array(Image.open(tmp_path / "default" / path)).shape[:2] for path in default["degraded_path"]} == {
        (37, 50), (40, 33)}
    with pytest.raises(ValueError, match="benchmark_crop: 0"):
        DegradeConfig(test_noise="published")
