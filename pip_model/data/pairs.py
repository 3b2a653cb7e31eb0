"""The ``degrade`` stage's logic: the benchmark and the offline training pairs.

* :func:`build_benchmark` writes the fixed evaluation benchmark: for every val/test image
  and task, seeded crops degraded with a seed derived from the base seed, the image and the
  task, so ``dvc repro`` rebuilds it byte for byte. Real paired datasets join it too. With
  ``degrade.test_noise: published`` the noise tasks of the test images are PromptIR's instead
  (:mod:`pip_model.data.published_noise`).
* :func:`write_offline_pairs` writes a fixed set of degraded training patches, which
  :class:`pip_model.data.sampling.OfflinePairDataset` reads; online pairs are drawn by
  :mod:`pip_model.data.sampling`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
import torch

from pip_model.data.degradations import (
    DegradationRanges,
    degrade,
    derive_seed,
)
from pip_model.data.images import split_files, to_array, to_tensor, write_degraded
from pip_model.data.published_noise import PUBLISHED_SEED, draw_test_set, group_test_sets
from pip_model.data.sampling import random_crops
from pip_model.image_files import read_image, write_png
from pip_model.tasks import NOISE_SIGMAS, TASKS, task_components, task_label

BENCHMARK_COLUMNS = ["id", "image_id", "task", "class_id", "split", "source", "seed", "degraded_path",
                     "clean_path", "params"]
# The test set of each pair (BSD68, Urban100, Rain100L...), as ``prepare`` named it: a column only when one is
# named, so a benchmark without named test sets is written as before.
TEST_SET_COLUMN = "test_set"


PAIR_COLUMNS = ["id", "image_id", "task", "class_id", "degraded_path", "clean_path", "params"]


@dataclass(frozen=True)
class DegradeConfig:
    """``params.yaml: degrade``.

    Attributes:
        tasks: the tasks of the benchmark and of offline training pairs.
        real_only: tasks benchmarked on real test pairs only (no synthetic pairs): the paper tests rain and haze
            on Rain100L and SOTS, and only noise on the clean test images.
        benchmark_crop: side of the square benchmark crops; 0 keeps whole images (the paper's full resolution).
        crops_per_image: benchmark crops per val/test image and task (one with whole images).
        train_pairs_per_task: offline training patches per task (0: online training only).
        train_patch: side of the offline training patches.
        ranges: sampling ranges of the degradations.
        test_noise: how the noise tasks (``denoise_15/25/50``) of the test images are made. ``pipeline``: as every
            other degradation (float noise, clamped, rounded, a seed per image and task); ``published``: as
            PromptIR's test code (uint8, truncated, one seed-0 stream per test set, the images cropped to a
            multiple of 16: :mod:`pip_model.data.published_noise`), on whole images only; ``float``: the classic
            denoising protocol of task experts (DnCNN, FFDNet, BM3D), Gaussian noise added in floating point,
            neither clipped nor rounded, saved as ``.npy`` (:func:`float_noise`). Val images keep ``pipeline``.
    """

    tasks: tuple[str, ...] = TASKS
    real_only: tuple[str, ...] = ()
    benchmark_crop: int = 128
    crops_per_image: int = 2
    train_pairs_per_task: int = 0
    train_patch: int = 128
    ranges: DegradationRanges = field(default_factory=DegradationRanges)
    test_noise: Literal["pipeline", "published", "float"] = "pipeline"

    def __post_init__(self) -> None:
        for task in self.tasks:
            task_components(task)
        for task in self.real_only:
            task_components(task)
        if self.test_noise == "published" and self.benchmark_crop != 0:
            raise ValueError(f"degrade.test_noise: published noises whole test images, as the published test code; "
                             f"set degrade.benchmark_crop: 0 (it is {self.benchmark_crop})")


def build_benchmark(
    prepared_dir: Path, config: DegradeConfig, *, seed: int, out_dir: Path, progress: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Writes the evaluation benchmark and its ``manifest.csv`` under ``out_dir``.

    It is built on the CPU on every machine, so its files are byte for byte those that
    ``dvc.lock`` records (a GPU's float rounding could move a pixel by one level).

    Synthetic pairs come from the val and test images; real pairs of ``split: test`` from
    the ``prepare`` stage's ``pairs.csv`` join their task, listed by their absolute paths. Each pair keeps the test
    set its image or pair comes from (``test_set``), so every test set is scored on its own.
    """
    rows: list[dict[str, object]] = []
    manifest = _with_test_set(pd.read_csv(prepared_dir / "manifest.csv"))
    published = _published_rows(prepared_dir, manifest, config, out_dir, progress)
    for split in ("val", "test"):
        listed = manifest[manifest["split"] == split]
        entries = zip(listed["id"], listed["path"], listed[TEST_SET_COLUMN])
        for number, (image_id, path, test_set) in enumerate(entries, start=1):
            progress(f"degrade: benchmark {split} [{number}/{len(listed)}] {image_id}")
            image = to_tensor(read_image(prepared_dir / path).rgb)  # one image in memory at a time
            generator = torch.Generator().manual_seed(derive_seed(seed, image_id, "crop"))
            if config.benchmark_crop == 0:  # whole images: the clean side is the prepared image itself
                crops, clean_paths = image[None], [(prepared_dir / path).resolve()]
            else:
                crops = random_crops([image], config.crops_per_image, config.benchmark_crop, generator,
                                     which=[0] * config.crops_per_image)
                clean_paths = [Path("clean") / f"{image_id}_c{k}.png" for k in range(len(crops))]
                for crop, clean_path in zip(crops, clean_paths):
                    write_png(out_dir / clean_path, to_array(crop))
            for task in (task for task in config.tasks if task not in config.real_only):
                if (split, image_id, task) in published:
                    rows.append(published[split, image_id, task])
                    continue
                task_seed = derive_seed(seed, image_id, task)
                unclipped = split == "test" and config.test_noise == "float" and task in NOISE_SIGMAS
                degraded, records = (float_noise(crops, NOISE_SIGMAS[task], seed=task_seed) if unclipped
                                     else degrade(crops, task, seed=task_seed, ranges=config.ranges))
                for k, (image_degraded, record) in enumerate(zip(degraded, records)):
                    relative = Path(task) / f"{image_id}_c{k}.{'npy' if unclipped else 'png'}"
                    write_degraded(out_dir / relative, to_array(image_degraded))
                    rows.append({"id": f"{task}/{image_id}_c{k}", "image_id": image_id, "task": task,
                                 "class_id": task_label(task), "split": split, "source": "synthetic",
                                 "seed": task_seed, "degraded_path": relative.as_posix(),
                                 "clean_path": clean_paths[k].as_posix(), "params": json.dumps(record),
                                 TEST_SET_COLUMN: test_set})
    rows += _real_pairs(prepared_dir, config)
    named = any(row[TEST_SET_COLUMN] for row in rows)
    manifest = pd.DataFrame(rows, columns=[*BENCHMARK_COLUMNS, TEST_SET_COLUMN] if named else BENCHMARK_COLUMNS)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(out_dir / "manifest.csv", index=False)
    return manifest


def float_noise(clean: torch.Tensor, sigma: float, *, seed: int) -> tuple[torch.Tensor, list[dict[str, object]]]:
    """The classic denoising protocol: ``clean + N(0, sigma / 255)`` in float32, neither clipped nor rounded (a
    published expert's row, DnCNN's or FFDNet's, was measured so), and what reproduces each image's noise.

    Shape:
        (B, 3, H, W) -> (B, 3, H, W), values outside [0, 1] kept
    """
    generator = torch.Generator().manual_seed(seed)
    noisy = clean + torch.randn(clean.shape, generator=generator) * (sigma / 255)
    return noisy, [{"sigma": sigma, "seed": seed, "noise": "float", "index": k} for k in range(len(clean))]


def _published_rows(prepared_dir: Path, manifest: pd.DataFrame, config: DegradeConfig, out_dir: Path,
                    progress: Callable[[str], None]) -> dict[tuple[str, str, str], dict[str, object]]:
    """With ``test_noise: published``, writes the noise tasks of the test images as the published test code makes
    them (:func:`pip_model.data.published_noise.draw_test_set`), and their cropped clean images where the crop cut
    pixels; returns their manifest rows by (split, image id, task)."""
    tasks = [task for task in config.tasks if task in NOISE_SIGMAS and task not in config.real_only]
    if config.test_noise != "published" or not tasks:
        return {}
    listed = manifest[manifest["split"] == "test"]
    test_sets = dict(zip(listed["id"], listed[TEST_SET_COLUMN]))
    rows: dict[tuple[str, str, str], dict[str, object]] = {}
    for members in group_test_sets([(image_id, prepared_dir / path)
                                    for image_id, path in zip(listed["id"], listed["path"])]):
        progress(f"degrade: published test noise on {len(members)} images of {members[0][1].parent}")
        paths = dict(members)
        for item in draw_test_set(members, tasks):
            clean_path = Path("clean") / f"{item.image_id}.png" if item.cropped else paths[item.image_id].resolve()
            if item.cropped:
                write_png(out_dir / clean_path, item.clean / 255.0)
            relative = Path(item.task) / f"{item.image_id}_c0.png"
            write_png(out_dir / relative, item.noisy / 255.0)
            rows["test", item.image_id, item.task] = {
                "id": f"{item.task}/{item.image_id}_c0", "image_id": item.image_id, "task": item.task,
                "class_id": task_label(item.task), "split": "test", "source": "synthetic", "seed": PUBLISHED_SEED,
                "degraded_path": relative.as_posix(), "clean_path": clean_path.as_posix(),
                "params": json.dumps(item.record), TEST_SET_COLUMN: test_sets[item.image_id]}
    return rows


def _with_test_set(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``test_set`` column of text ("" where none is named, or when ``prepare`` wrote none)."""
    names = table[TEST_SET_COLUMN].fillna("").astype(str) if TEST_SET_COLUMN in table else ""
    return table.assign(**{TEST_SET_COLUMN: names})


def _real_pairs(prepared_dir: Path, config: DegradeConfig) -> list[dict[str, object]]:
    """The ``split: test`` pairs of ``prepare``'s ``pairs.csv``, listed where they lie (never copied).

    Their file hashes go into the benchmark's manifest, so an edited dataset file changes it.
    """
    pairs_file = prepared_dir / "pairs.csv"
    if not pairs_file.is_file():
        return []
    pairs = _with_test_set(pd.read_csv(pairs_file))
    return [{"id": f"{pair.task}/{pair.id}", "image_id": pair.id, "task": pair.task, "class_id": pair.class_id,
             "split": "test", "source": "paired", "seed": -1, "degraded_path": pair.degraded_path,
             "clean_path": pair.clean_path,
             "params": json.dumps({"degraded_sha256": pair.degraded_sha256, "clean_sha256": pair.clean_sha256}),
             TEST_SET_COLUMN: pair.test_set}
            for pair in pairs[(pairs["split"] == "test") & pairs["task"].isin(config.tasks)].itertuples()]


def write_offline_pairs(
    prepared_dir: Path, config: DegradeConfig, *, seed: int, out_dir: Path, progress: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Writes ``train_pairs_per_task`` degraded training patches per task, and ``manifest.csv`` (on the CPU, as
    :func:`build_benchmark`).

    Real pairs of ``split: train`` from ``prepare`` are listed too (whole images).

    Raises:
        ValueError: patches are asked for, and there is no training image.
    """
    images = split_files(prepared_dir, "train")
    if config.train_pairs_per_task and not images:
        raise ValueError(f"degrade.train_pairs_per_task is {config.train_pairs_per_task}, but {prepared_dir} holds no "
                         "training image to cut them from; set it to 0 (train online, or score only)")
    rows: list[dict[str, object]] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for task in config.tasks if config.train_pairs_per_task else ():
        progress(f"degrade: offline training pairs for {task}")
        generator = torch.Generator().manual_seed(derive_seed(seed, "offline", task))
        clean = random_crops(images, config.train_pairs_per_task, config.train_patch, generator)
        degraded, records = degrade(clean, task, seed=derive_seed(seed, "offline", task, "degrade"),
                                    ranges=config.ranges)
        for k, (image_clean, image_degraded, record) in enumerate(zip(clean, degraded, records)):
            paths = {role: Path(task) / f"p{k:05d}_{role}.png" for role in ("degraded", "clean")}
            write_png(out_dir / paths["clean"], to_array(image_clean))
            write_png(out_dir / paths["degraded"], to_array(image_degraded))
            rows.append({"id": f"{task}/p{k:05d}", "image_id": "", "task": task, "class_id": task_label(task),
                         "degraded_path": paths["degraded"].as_posix(), "clean_path": paths["clean"].as_posix(),
                         "params": json.dumps(record)})
    pairs_file = prepared_dir / "pairs.csv"
    if pairs_file.is_file():
        pairs = pd.read_csv(pairs_file)
        for pair in pairs[(pairs["split"] == "train") & pairs["task"].isin(config.tasks)].itertuples():
            rows.append({"id": f"{pair.task}/{pair.id}", "image_id": pair.id, "task": pair.task,
                         "class_id": pair.class_id, "degraded_path": pair.degraded_path,
                         "clean_path": pair.clean_path, "params": "{}"})
    manifest = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    manifest.to_csv(out_dir / "manifest.csv", index=False)
    return manifest

