"""The ``degrade`` stage's logic and the training data: benchmark pairs, offline and online pairs.

* :func:`build_benchmark` writes the fixed evaluation benchmark: for every val/test image
  and task, seeded crops degraded with a seed derived from the base seed, the image and the
  task, so ``dvc repro`` rebuilds it byte for byte. Real paired datasets join it too.
* :func:`write_offline_pairs` writes a fixed set of degraded training patches.
* :class:`OnlinePairSampler` degrades random clean crops on the fly, on the training
  device, seeded per step (every DDP rank builds the same global batch and takes its slice).
* :class:`OfflinePairDataset` reads the offline patches; its ``sample_weights`` balance tasks.

Both training sources mix tasks in every batch, balanced by ``task_weights``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from pip_model.degradations import DegradationRanges, degrade, derive_seed
from pip_model.image_files import read_image, write_png
from pip_model.tasks import TASKS, task_class

BENCHMARK_COLUMNS = ["id", "image_id", "task", "class_id", "split", "source", "seed", "degraded_path",
                     "clean_path", "params"]
PAIR_COLUMNS = ["id", "image_id", "task", "class_id", "degraded_path", "clean_path", "params"]


@dataclass(frozen=True)
class DegradeConfig:
    """``params.yaml: degrade``.

    Attributes:
        tasks: the tasks of the benchmark and of offline training pairs.
        benchmark_crop: side of the square benchmark crops.
        crops_per_image: benchmark crops per val/test image and task.
        train_pairs_per_task: offline training patches per task (0: online training only).
        train_patch: side of the offline training patches.
        ranges: sampling ranges of the degradations.
    """

    tasks: tuple[str, ...] = TASKS
    benchmark_crop: int = 128
    crops_per_image: int = 2
    train_pairs_per_task: int = 0
    train_patch: int = 128
    ranges: DegradationRanges = field(default_factory=DegradationRanges)

    def __post_init__(self) -> None:
        for task in self.tasks:
            task_class(task)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) array in [0, 1] -> (3, H, W) float tensor."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()


def to_array(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor -> (H, W, 3) float array, on the CPU."""
    return image.detach().float().cpu().permute(1, 2, 0).numpy()


def load_split(prepared_dir: Path, split: str) -> list[tuple[str, torch.Tensor]]:
    """(id, image) of every clean image of one split of the ``prepare`` output.

    Shape:
        each image (3, H, W), values in [0, 1]
    """
    manifest = pd.read_csv(prepared_dir / "manifest.csv")
    rows = manifest[manifest["split"] == split]
    return [(row.id, to_tensor(read_image(prepared_dir / row.path).rgb)) for row in rows.itertuples()]


def random_crops(
    images: Sequence[torch.Tensor], count: int, size: int, generator: torch.Generator,
    *, which: Sequence[int] | None = None,
) -> torch.Tensor:
    """``count`` random square crops, from random images (or from the images listed in ``which``).

    Images smaller than ``size`` are padded by reflection first.

    Shape:
        -> (count, 3, size, size)
    """
    if which is None:
        which = torch.randint(0, len(images), (count,), generator=generator).tolist()
    crops = []
    for index in which:
        image = images[index]
        short = max(size - image.shape[-2], size - image.shape[-1], 0)
        if short:
            image = torch.nn.functional.pad(image[None], (0, short, 0, short), mode="replicate")[0]
        top = int(torch.randint(0, image.shape[-2] - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, image.shape[-1] - size + 1, (1,), generator=generator))
        crops.append(image[:, top : top + size, left : left + size])
    return torch.stack(crops)


def augment(crops: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips, 90-degree rotations and colour-channel orders, one draw per crop.

    Channel orders keep a small corpus from teaching the network its colour cast.

    Shape:
        (B, 3, P, P) -> (B, 3, P, P)
    """
    draws = torch.randint(0, 48, (crops.shape[0],), generator=generator).tolist()
    orders = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
    out = []
    for crop, draw in zip(crops, draws):
        crop = crop[list(orders[draw % 6])]
        crop = torch.rot90(crop, k=(draw // 6) % 4, dims=(-2, -1))
        out.append(crop.flip(-1) if draw >= 24 else crop)
    return torch.stack(out)


def build_benchmark(
    prepared_dir: Path, config: DegradeConfig, *, seed: int, out_dir: Path, device: str = "cpu",
    progress: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Writes the evaluation benchmark and its ``manifest.csv`` under ``out_dir``.

    Synthetic pairs come from the val and test images; real pairs of ``split: test`` from
    the ``prepare`` stage's ``pairs.csv`` join their task.
    """
    rows: list[dict[str, object]] = []
    for split in ("val", "test"):
        images = load_split(prepared_dir, split)
        for number, (image_id, image) in enumerate(images, start=1):
            progress(f"degrade: benchmark {split} [{number}/{len(images)}] {image_id}")
            generator = torch.Generator().manual_seed(derive_seed(seed, image_id, "crop"))
            crops = random_crops([image], config.crops_per_image, config.benchmark_crop, generator,
                                 which=[0] * config.crops_per_image)
            clean_paths = []
            for k, crop in enumerate(crops):
                clean_paths.append(Path("clean") / f"{image_id}_c{k}.png")
                write_png(out_dir / clean_paths[-1], to_array(crop))
            for task in config.tasks:
                task_seed = derive_seed(seed, image_id, task)
                degraded, records = degrade(crops.to(device), task, seed=task_seed, ranges=config.ranges)
                for k, (image_degraded, record) in enumerate(zip(degraded, records)):
                    relative = Path(task) / f"{image_id}_c{k}.png"
                    write_png(out_dir / relative, to_array(image_degraded))
                    rows.append({"id": f"{task}/{image_id}_c{k}", "image_id": image_id, "task": task,
                                 "class_id": task_class(task), "split": split, "source": "synthetic",
                                 "seed": task_seed, "degraded_path": relative.as_posix(),
                                 "clean_path": clean_paths[k].as_posix(), "params": json.dumps(record)})
    rows += _real_pairs(prepared_dir, config, out_dir)
    manifest = pd.DataFrame(rows, columns=BENCHMARK_COLUMNS)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(out_dir / "manifest.csv", index=False)
    return manifest


def _real_pairs(prepared_dir: Path, config: DegradeConfig, out_dir: Path) -> list[dict[str, object]]:
    pairs_file = prepared_dir / "pairs.csv"
    if not pairs_file.is_file():
        return []
    pairs = pd.read_csv(pairs_file)
    rows = []
    for pair in pairs[(pairs["split"] == "test") & pairs["task"].isin(config.tasks)].itertuples():
        paths = {}
        for role in ("degraded", "clean"):
            relative = Path("paired") / pair.task / Path(getattr(pair, f"{role}_path")).name
            (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            (out_dir / relative).write_bytes((prepared_dir / getattr(pair, f"{role}_path")).read_bytes())
            paths[role] = relative.as_posix()
        rows.append({"id": f"{pair.task}/{pair.id}", "image_id": pair.id, "task": pair.task,
                     "class_id": pair.class_id, "split": "test", "source": "paired", "seed": -1,
                     "degraded_path": paths["degraded"], "clean_path": paths["clean"], "params": "{}"})
    return rows


def write_offline_pairs(
    prepared_dir: Path, config: DegradeConfig, *, seed: int, out_dir: Path, device: str = "cpu",
    progress: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Writes ``train_pairs_per_task`` degraded training patches per task, and ``manifest.csv``.

    Real pairs of ``split: train`` from ``prepare`` are listed too (whole images).
    """
    images = [image for _, image in load_split(prepared_dir, "train")]
    rows: list[dict[str, object]] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for task in config.tasks if config.train_pairs_per_task else ():
        progress(f"degrade: offline training pairs for {task}")
        generator = torch.Generator().manual_seed(derive_seed(seed, "offline", task))
        clean = random_crops(images, config.train_pairs_per_task, config.train_patch, generator)
        degraded, records = degrade(clean.to(device), task, seed=derive_seed(seed, "offline", task, "degrade"),
                                    ranges=config.ranges)
        for k, (image_clean, image_degraded, record) in enumerate(zip(clean, degraded, records)):
            paths = {role: Path(task) / f"p{k:05d}_{role}.png" for role in ("degraded", "clean")}
            write_png(out_dir / paths["clean"], to_array(image_clean))
            write_png(out_dir / paths["degraded"], to_array(image_degraded))
            rows.append({"id": f"{task}/p{k:05d}", "image_id": "", "task": task, "class_id": task_class(task),
                         "degraded_path": paths["degraded"].as_posix(), "clean_path": paths["clean"].as_posix(),
                         "params": json.dumps(record)})
    pairs_file = prepared_dir / "pairs.csv"
    if pairs_file.is_file():
        pairs = pd.read_csv(pairs_file)
        for pair in pairs[(pairs["split"] == "train") & pairs["task"].isin(config.tasks)].itertuples():
            rows.append({"id": f"{pair.task}/{pair.id}", "image_id": pair.id, "task": pair.task,
                         "class_id": pair.class_id, "degraded_path": str((prepared_dir / pair.degraded_path).resolve()),
                         "clean_path": str((prepared_dir / pair.clean_path).resolve()), "params": "{}"})
    manifest = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    manifest.to_csv(out_dir / "manifest.csv", index=False)
    return manifest


def balanced_tasks(
    tasks: Sequence[str], weights: Mapping[str, float] | None, batch_size: int, generator: torch.Generator
) -> list[str]:
    """Task of each slot of a batch: counts proportional to ``weights``, remainder drawn, order shuffled.

    With equal weights and a batch at least as large as the task list, every task appears.
    """
    share = torch.tensor([float((weights or {}).get(task, 1.0)) for task in tasks])
    if (share < 0).any() or share.sum() <= 0:
        raise ValueError(f"task weights must be >= 0 and not all 0, got {dict(zip(tasks, share.tolist()))}")
    share = share / share.sum()
    counts = torch.floor(share * batch_size).long()
    remainder = batch_size - int(counts.sum())
    if remainder:
        extra = torch.multinomial(share, remainder, replacement=remainder > len(tasks), generator=generator)
        counts += torch.bincount(extra, minlength=len(tasks))
    slots = [task for task, count in zip(tasks, counts.tolist()) for _ in range(count)]
    order = torch.randperm(batch_size, generator=generator).tolist()
    return [slots[i] for i in order]


@dataclass
class PairBatch:
    """A training batch.

    Attributes:
        degraded: degraded images (B, 3, P, P).
        clean: the clean images (B, 3, P, P).
        class_ids: degradation class of each image (B,).
        tasks: task name of each image.
    """

    degraded: torch.Tensor
    clean: torch.Tensor
    class_ids: torch.Tensor
    tasks: list[str]

    def slice(self, start: int, stop: int) -> PairBatch:
        """Samples ``start`` to ``stop`` (a DDP rank's share of the global batch)."""
        return PairBatch(self.degraded[start:stop], self.clean[start:stop], self.class_ids[start:stop],
                         self.tasks[start:stop])


class OnlinePairSampler:
    """Degrades random clean crops on the fly, on ``device``, seeded by (seed, step).

    With ``augment``, crops are randomly flipped, rotated and channel-permuted first.

    ``batch(step)`` is a pure function of its arguments, so a resumed run sees the same
    batches as an uninterrupted one.
    """

    def __init__(
        self, images: Sequence[torch.Tensor], *, tasks: Sequence[str], patch: int, batch_size: int, seed: int,
        device: str | torch.device = "cpu", task_weights: Mapping[str, float] | None = None,
        ranges: DegradationRanges | None = None, augment: bool = False,
    ) -> None:
        if not images:
            raise ValueError("online training needs at least one clean training image")
        self.images, self.tasks, self.patch, self.batch_size = list(images), list(tasks), patch, batch_size
        self.seed, self.device, self.task_weights = seed, torch.device(device), task_weights
        self.ranges = ranges or DegradationRanges()
        self.augment = augment

    def batch(self, step: int) -> PairBatch:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "online", step))
        tasks = balanced_tasks(self.tasks, self.task_weights, self.batch_size, generator)
        clean = random_crops(self.images, self.batch_size, self.patch, generator)
        if self.augment:
            clean = augment(clean, generator)
        if self.device.type == "cuda":
            clean = clean.pin_memory()
        clean = clean.to(self.device, non_blocking=True)
        degraded = torch.empty_like(clean)
        for task in dict.fromkeys(tasks):  # one batched call per task present
            chosen = torch.tensor([t == task for t in tasks], device=self.device)
            degraded[chosen], _ = degrade(clean[chosen], task, seed=derive_seed(self.seed, step, task),
                                          ranges=self.ranges)
        class_ids = torch.tensor([task_class(task) for task in tasks], device=self.device)
        return PairBatch(degraded=degraded, clean=clean, class_ids=class_ids, tasks=tasks)


class OfflinePairDataset(Dataset):
    """The offline pairs written by :func:`write_offline_pairs`, as (degraded, clean, class id).

    Whole-image real pairs are randomly cropped to ``patch``.
    """

    def __init__(self, pairs_dir: Path, *, patch: int, seed: int = 0) -> None:
        self.pairs_dir, self.patch, self.seed = Path(pairs_dir), patch, seed
        self.manifest = pd.read_csv(self.pairs_dir / "manifest.csv")
        if self.manifest.empty:
            raise ValueError(f"{self.pairs_dir / 'manifest.csv'} lists no training pairs; set "
                             "degrade.train_pairs_per_task > 0 or train online")

    def __len__(self) -> int:
        return len(self.manifest)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        row = self.manifest.iloc[index]
        degraded = to_tensor(read_image(self.pairs_dir / row.degraded_path).rgb)
        clean = to_tensor(read_image(self.pairs_dir / row.clean_path).rgb)
        if degraded.shape[-1] != self.patch or degraded.shape[-2] != self.patch:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "offline-crop", index))
            both = random_crops([torch.cat([degraded, clean])], 1, self.patch, generator, which=[0])[0]
            degraded, clean = both[:3], both[3:]
        return degraded, clean, int(row.class_id)

    def sample_weights(self, task_weights: Mapping[str, float] | None = None) -> torch.Tensor:
        """Per-pair weights that balance tasks as ``task_weights`` sets (equal by default)."""
        counts = self.manifest["task"].value_counts()
        return torch.tensor([float((task_weights or {}).get(t, 1.0)) / counts[t] for t in self.manifest["task"]])
