"""The ``degrade`` stage's logic and the training data: benchmark pairs, offline and online pairs.

* :func:`build_benchmark` writes the fixed evaluation benchmark: for every val/test image
  and task, seeded crops degraded with a seed derived from the base seed, the image and the
  task, so ``dvc repro`` rebuilds it byte for byte. Real paired datasets join it too.
* :func:`write_offline_pairs` writes a fixed set of degraded training patches.
* :class:`OnlinePairSampler` degrades random clean crops on the fly, on the training
  device, seeded per step and slot (a DDP rank builds only its own slots of the global
  batch), and mixes in crops of real training pairs; :class:`OnlineBatches` reads, cuts and
  draws them ahead in DataLoader workers. Clean images are read from disk
  (:class:`ImageFiles`), so memory does not grow with the dataset.
* :class:`OfflinePairDataset` reads the offline patches; its ``sample_weights`` balance tasks.

Both training sources mix tasks in every batch, balanced by ``task_weights``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from pip_model.degradations import (
    DegradationDraw,
    DegradationRanges,
    apply_degradation,
    degrade,
    derive_seed,
    draw_degradation,
    equal_runs,
)
from pip_model.image_files import read_image, write_png
from pip_model.tasks import TASKS, task_class, task_components, task_label, task_prompt

BENCHMARK_COLUMNS = ["id", "image_id", "task", "class_id", "split", "source", "seed", "degraded_path",
                     "clean_path", "params"]
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
    """

    tasks: tuple[str, ...] = TASKS
    real_only: tuple[str, ...] = ()
    benchmark_crop: int = 128
    crops_per_image: int = 2
    train_pairs_per_task: int = 0
    train_patch: int = 128
    ranges: DegradationRanges = field(default_factory=DegradationRanges)

    def __post_init__(self) -> None:
        for task in self.tasks:
            task_components(task)
        for task in self.real_only:
            task_class(task)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) array in [0, 1] -> (3, H, W) float tensor."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()


def to_array(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor -> (H, W, 3) float array, on the CPU."""
    return image.detach().float().cpu().permute(1, 2, 0).numpy()


class ImageFiles(Sequence[torch.Tensor]):
    """Clean images read from disk when indexed, so memory does not grow with the dataset.

    The last ``cache`` images decoded are kept (a small corpus then stays in memory, a large one
    costs at most ``cache`` images).

    Shape:
        each item (3, H, W), values in [0, 1]
    """

    def __init__(self, paths: Sequence[Path], *, cache: int = 64) -> None:
        self.paths, self.cache = list(paths), cache
        self._decoded: OrderedDict[int, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:  # type: ignore[override]
        if index in self._decoded:
            self._decoded.move_to_end(index)
            return self._decoded[index]
        image = to_tensor(read_image(self.paths[index]).rgb)
        if self.cache:
            self._decoded[index] = image
            if len(self._decoded) > self.cache:
                self._decoded.popitem(last=False)
        return image


class ImageSet(Sequence[torch.Tensor]):
    """Several image sequences seen as one (the training photographs, then procedural images).

    Shape:
        each item (3, H, W), values in [0, 1]
    """

    def __init__(self, *parts: Sequence[torch.Tensor]) -> None:
        self.parts = [part for part in parts if len(part)]

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def __getitem__(self, index: int) -> torch.Tensor:  # type: ignore[override]
        for part in self.parts:
            if index < len(part):
                return part[index]
            index -= len(part)
        raise IndexError(index)


def dead_leaves(side: int, generator: torch.Generator, *, discs: int = 1500, smallest: float = 3.0) -> torch.Tensor:
    """A dead-leaves image: opaque discs of random colour dropped one over another until they nearly cover it, their
    radii drawn from a power law (density r^-3, the scale statistics of natural images), so that edges and flat
    areas of every size occur and no photograph's content is learnt. Drawn at twice the size and area-averaged
    down, so that the edges are soft as a lens makes them.

    Shape:
        -> (3, side, side), values in [0, 1]
    """
    canvas, smallest, largest = 2 * side, 2 * smallest, side / 2
    # Inverse CDF of a density proportional to r^-3 on [smallest, largest].
    uniform = torch.rand(discs, generator=generator)
    radii = (smallest ** -2 - uniform * (smallest ** -2 - largest ** -2)) ** -0.5
    centres = torch.rand(discs, 2, generator=generator) * canvas
    colours = torch.rand(discs, 3, generator=generator) ** 1.5  # more dark than light tones, like photographs
    image = torch.rand(3, 1, 1, generator=generator).expand(3, canvas, canvas).clone()
    for (y, x), radius, colour in zip(centres.tolist(), radii.tolist(), colours):
        top, bottom = max(0, int(y - radius)), min(canvas, int(y + radius) + 1)
        left, right = max(0, int(x - radius)), min(canvas, int(x + radius) + 1)
        if top >= bottom or left >= right:
            continue
        rows = torch.arange(top, bottom, dtype=torch.float32)[:, None]
        columns = torch.arange(left, right, dtype=torch.float32)[None, :]
        window = image[:, top:bottom, left:right]  # a view: painting it paints the image
        window[:, (rows - y) ** 2 + (columns - x) ** 2 <= radius ** 2] = colour[:, None]
    return torch.nn.functional.avg_pool2d(image[None], 2)[0]


def dead_leaves_images(count: int, *, side: int, seed: int) -> list[torch.Tensor]:
    """``count`` seeded dead-leaves images (:func:`dead_leaves`).

    Shape:
        -> count x (3, side, side)
    """
    return [dead_leaves(side, torch.Generator().manual_seed(derive_seed(seed, "dead-leaves", index)))
            for index in range(count)]


def split_files(prepared_dir: Path, split: str, *, cache: int = 64) -> ImageFiles:
    """The clean images of one split of the ``prepare`` output, read lazily (see :class:`ImageFiles`)."""
    manifest = pd.read_csv(prepared_dir / "manifest.csv")
    return ImageFiles([prepared_dir / path for path in manifest.loc[manifest["split"] == split, "path"]], cache=cache)


def real_training_pairs(prepared_dir: Path) -> dict[str, list[tuple[Path, Path]]]:
    """(degraded, clean) files of every ``split: train`` real pair of ``prepare``'s ``pairs.csv``, by task."""
    pairs_file = prepared_dir / "pairs.csv"
    if not pairs_file.is_file():
        return {}
    pairs = pd.read_csv(pairs_file)
    by_task: dict[str, list[tuple[Path, Path]]] = {}
    for pair in pairs[pairs["split"] == "train"].itertuples():
        by_task.setdefault(pair.task, []).append((Path(pair.degraded_path), Path(pair.clean_path)))
    return by_task


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


CHANNEL_ORDERS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


def augment(crop: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One of 48 rearrangements (channel order, quarter turns, mirror) of a crop, drawn from ``generator``.

    With k images stacked along the channels (a degraded and a clean crop), each gets the same
    one. Channel orders keep a small corpus from teaching the network its colour cast.

    Shape:
        (3k, P, P) -> (3k, P, P)
    """
    draw = int(torch.randint(0, 48, (1,), generator=generator))
    order = [3 * image + channel for image in range(crop.shape[0] // 3) for channel in CHANNEL_ORDERS[draw % 6]]
    crop = torch.rot90(crop[order], k=(draw // 6) % 4, dims=(-2, -1))
    return crop.flip(-1) if draw >= 24 else crop


def build_benchmark(
    prepared_dir: Path, config: DegradeConfig, *, seed: int, out_dir: Path, progress: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Writes the evaluation benchmark and its ``manifest.csv`` under ``out_dir``.

    It is built on the CPU on every machine, so its files are byte for byte those that
    ``dvc.lock`` records (a GPU's float rounding could move a pixel by one level).

    Synthetic pairs come from the val and test images; real pairs of ``split: test`` from
    the ``prepare`` stage's ``pairs.csv`` join their task, listed by their absolute paths.
    """
    rows: list[dict[str, object]] = []
    manifest = pd.read_csv(prepared_dir / "manifest.csv")
    for split in ("val", "test"):
        listed = manifest[manifest["split"] == split]
        for number, (image_id, path) in enumerate(zip(listed["id"], listed["path"]), start=1):
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
                task_seed = derive_seed(seed, image_id, task)
                degraded, records = degrade(crops, task, seed=task_seed, ranges=config.ranges)
                for k, (image_degraded, record) in enumerate(zip(degraded, records)):
                    relative = Path(task) / f"{image_id}_c{k}.png"
                    write_png(out_dir / relative, to_array(image_degraded))
                    rows.append({"id": f"{task}/{image_id}_c{k}", "image_id": image_id, "task": task,
                                 "class_id": task_label(task), "split": split, "source": "synthetic",
                                 "seed": task_seed, "degraded_path": relative.as_posix(),
                                 "clean_path": clean_paths[k].as_posix(), "params": json.dumps(record)})
    rows += _real_pairs(prepared_dir, config)
    manifest = pd.DataFrame(rows, columns=BENCHMARK_COLUMNS)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(out_dir / "manifest.csv", index=False)
    return manifest


def _real_pairs(prepared_dir: Path, config: DegradeConfig) -> list[dict[str, object]]:
    """The ``split: test`` pairs of ``prepare``'s ``pairs.csv``, listed where they lie (never copied).

    Their file hashes go into the benchmark's manifest, so an edited dataset file changes it.
    """
    pairs_file = prepared_dir / "pairs.csv"
    if not pairs_file.is_file():
        return []
    pairs = pd.read_csv(pairs_file)
    return [{"id": f"{pair.task}/{pair.id}", "image_id": pair.id, "task": pair.task, "class_id": pair.class_id,
             "split": "test", "source": "paired", "seed": -1, "degraded_path": pair.degraded_path,
             "clean_path": pair.clean_path,
             "params": json.dumps({"degraded_sha256": pair.degraded_sha256, "clean_sha256": pair.clean_sha256})}
            for pair in pairs[(pairs["split"] == "test") & pairs["task"].isin(config.tasks)].itertuples()]


def write_offline_pairs(
    prepared_dir: Path, config: DegradeConfig, *, seed: int, out_dir: Path, progress: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Writes ``train_pairs_per_task`` degraded training patches per task, and ``manifest.csv`` (on the CPU, as
    :func:`build_benchmark`).

    Real pairs of ``split: train`` from ``prepare`` are listed too (whole images).
    """
    images = split_files(prepared_dir, "train")
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


def balanced_tasks(
    tasks: Sequence[str], weights: Mapping[str, float] | None, batch_size: int, generator: torch.Generator
) -> list[str]:
    """Task of each slot of a batch: counts proportional to ``weights``, remainder drawn, grouped by task.

    With equal weights and a batch at least as large as the task list, every task appears.
    Each task's slots are neighbours, so a task's degradation applies to a slice of the batch.
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
    return [task for task, count in zip(tasks, counts.tolist()) for _ in range(count)]


@dataclass
class PairBatch:
    """A training batch.

    Attributes:
        degraded: degraded images (B, 3, P, P).
        clean: the clean images (B, 3, P, P).
        prompts: true prompt weights of each image (B, NUM_CLASSES): one-hot, a mixture for composites.
        tasks: task name of each image.
    """

    degraded: torch.Tensor
    clean: torch.Tensor
    prompts: torch.Tensor
    tasks: list[str]


@dataclass
class SyntheticRun:
    """Neighbouring slots of one task that are degraded synthetically, with their draws (CPU)."""

    task: str
    start: int
    stop: int
    draw: DegradationDraw


@dataclass
class StepCrops:
    """The CPU half of an online batch: crops read and cut, and every random draw of their degradation made.

    Attributes:
        step: the training step they belong to.
        tasks: task name of each slot.
        clean: clean crops (B, 3, P, P).
        degraded: degraded crops of real pairs (B, 3, P, P); zeros in the slots of ``runs``.
        prompts: true prompt weights of each slot (B, NUM_CLASSES).
        runs: the synthetic slots, as runs of one task, with their draws.
    """

    step: int
    tasks: list[str]
    clean: torch.Tensor
    degraded: torch.Tensor
    prompts: torch.Tensor
    runs: list[SyntheticRun]

    def pin_memory(self) -> StepCrops:
        """Page-locked copies, so the copies to the GPU run asynchronously (DataLoader calls this)."""
        return StepCrops(self.step, self.tasks, self.clean.pin_memory(), self.degraded.pin_memory(),
                         self.prompts.pin_memory(),
                         [SyntheticRun(run.task, run.start, run.stop, run.draw.pin_memory()) for run in self.runs])


class OnlinePairSampler:
    """Training batches degraded on the fly, on ``device``, seeded by (seed, step).

    Random crops of the clean images (a sequence of tensors, or :class:`ImageFiles` that reads
    them from disk) are degraded by this project's degradations. With ``real_pairs`` and
    ``real_share``, that share of a task's slots is instead a crop of one of its real
    training pairs (the same window of the degraded and the clean file, read from disk).
    With ``augment``, crops are randomly flipped, rotated and channel-permuted first (a pair's
    two crops alike). With ``exposure`` (low, high), each synthetic crop is scaled by a factor
    drawn from that range before it is degraded: dim scenes that are not low-light images. With ``scales``
    (low, high), each synthetic crop is cut ``patch / scale`` pixels wide (at most the image) and area-resized to
    ``patch``: the photographs at several sizes, so their textures do not teach one scale.

    ``batch(step)`` is a pure function of its arguments, so a resumed run sees the same
    batches as an uninterrupted one. Each slot of the global batch draws from its own
    generator, so ``slots`` (a DDP rank's share) builds exactly that share of the global
    batch and nothing more. It is ``finish(crops(step))``: ``crops`` reads, cuts and draws on
    the CPU (in DataLoader workers with :class:`OnlineBatches`); ``finish`` copies to the
    device and degrades there without ever reading a device value back.
    """

    def __init__(
        self, images: Sequence[torch.Tensor], *, tasks: Sequence[str], patch: int, batch_size: int, seed: int,
        device: str | torch.device = "cpu", task_weights: Mapping[str, float] | None = None,
        ranges: DegradationRanges | None = None, augment: bool = False,
        real_pairs: Mapping[str, Sequence[tuple[Path, Path]]] | None = None,
        real_share: Mapping[str, float] | None = None, slots: range | None = None,
        exposure: tuple[float, float] | None = None, scales: tuple[float, float] | None = None,
    ) -> None:
        if not len(images):
            raise ValueError("online training needs at least one clean training image")
        self.images, self.tasks, self.patch, self.batch_size = images, list(tasks), patch, batch_size
        self.seed, self.device, self.task_weights = seed, torch.device(device), task_weights
        self.ranges = ranges or DegradationRanges()
        self.augment, self.exposure = augment, exposure
        self.scales = scales if scales and tuple(scales) != (1.0, 1.0) else None  # 1: the plain crop, no draw
        self.slots = slots if slots is not None else range(batch_size)
        if not 0 <= self.slots.start < self.slots.stop <= batch_size or self.slots.step != 1:
            raise ValueError(f"slots {self.slots} is not a share of a batch of {batch_size}")
        self.real_share = {task: share for task, share in (real_share or {}).items() if share > 0}
        self.real_pairs = {task: list((real_pairs or {}).get(task, ())) for task in self.real_share}
        missing = [task for task, pairs in self.real_pairs.items() if not pairs]
        if missing:
            raise ValueError(f"train.real_pairs asks for real training pairs of {', '.join(missing)}, but prepare "
                             "found none (see prepare.datasets_root and data/prepared/pairs.csv)")

    def plan(self, step: int) -> list[tuple[str, bool]]:
        """(task, real pair?) of every slot of the global batch of ``step``: grouped by task, synthetic first."""
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "online", step))
        tasks = balanced_tasks(self.tasks, self.task_weights, self.batch_size, generator)
        draws = torch.rand(self.batch_size, generator=generator).tolist()
        real = [draw < self.real_share.get(task, 0.0) for task, draw in zip(tasks, draws)]
        return sorted(zip(tasks, real), key=lambda slot: (self.tasks.index(slot[0]), slot[1]))

    def crops(self, step: int) -> StepCrops:
        """Reads and cuts this sampler's slots of step ``step`` and draws their degradations (CPU only; safe in a
        DataLoader worker)."""
        plan = self.plan(step)[self.slots.start : self.slots.stop]
        clean, degraded = [], []
        for slot, (task, real) in zip(self.slots, plan):
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "online", step, slot))
            if real:
                options = self.real_pairs[task]
                degraded_path, clean_path = options[int(torch.randint(len(options), (1,), generator=generator))]
                image = torch.cat([to_tensor(read_image(degraded_path).rgb), to_tensor(read_image(clean_path).rgb)])
            else:
                image = self.images[int(torch.randint(len(self.images), (1,), generator=generator))]
            if self.scales and not real:
                crop = self._scaled_crop(image, generator)
            else:
                crop = random_crops([image], 1, self.patch, generator, which=[0])[0]
            if self.augment:
                crop = augment(crop, generator)
            if self.exposure and not real:
                low, high = self.exposure
                crop = crop * (low + (high - low) * float(torch.rand((), generator=generator)))
            clean.append(crop[-3:])
            degraded.append(crop[:3] if real else torch.zeros_like(crop))
        runs = [SyntheticRun(task, start, stop, draw_degradation(
                    task, height=self.patch, width=self.patch, ranges=self.ranges,
                    image_seeds=[derive_seed(self.seed, "degrade", step, self.slots.start + slot)
                                 for slot in range(start, stop)]))
                for start, stop, (task, real) in equal_runs(plan) if not real]
        tasks = [task for task, _ in plan]
        return StepCrops(step=step, tasks=tasks, clean=torch.stack(clean), degraded=torch.stack(degraded),
                         prompts=torch.stack([task_prompt(task) for task in tasks]), runs=runs)

    def _scaled_crop(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        low, high = self.scales
        scale = low + (high - low) * float(torch.rand((), generator=generator))
        side = max(self.patch, min(round(self.patch / scale), *image.shape[-2:]))
        crop = random_crops([image], 1, side, generator, which=[0])
        if side == self.patch:
            return crop[0]
        return torch.nn.functional.interpolate(crop, size=(self.patch, self.patch), mode="area")[0]

    def finish(self, crops: StepCrops) -> PairBatch:
        """Copies the crops to the device and degrades the synthetic slots there, one batched call per run.

        Nothing here waits for the device: copies are asynchronous (from page-locked memory on
        CUDA) and the runs are slices, never masks.
        """
        if self.device.type == "cuda" and not crops.clean.is_pinned():
            crops = crops.pin_memory()
        clean, degraded, prompts = (tensor.to(self.device, non_blocking=True)
                                    for tensor in (crops.clean, crops.degraded, crops.prompts))
        for run in crops.runs:
            degraded[run.start : run.stop] = apply_degradation(clean[run.start : run.stop], run.task, run.draw)
        return PairBatch(degraded=degraded, clean=clean, prompts=prompts, tasks=crops.tasks)

    def batch(self, step: int) -> PairBatch:
        return self.finish(self.crops(step))


class _StepCropsDataset(Dataset):
    """Step ``s`` -> ``sampler.crops(s)``, for DataLoader workers."""

    def __init__(self, sampler: OnlinePairSampler) -> None:
        self.sampler = sampler

    def __getitem__(self, step: int) -> StepCrops:
        return self.sampler.crops(step)


def _as_is(crops: StepCrops) -> StepCrops:
    return crops


class OnlineBatches:
    """One online batch per step; with ``workers``, its files are read and cut ahead in worker processes."""

    def __init__(self, sampler: OnlinePairSampler, *, start: int, steps: int, workers: int) -> None:
        self.sampler, self.crops = sampler, None
        if workers > 0:
            loader = torch.utils.data.DataLoader(_StepCropsDataset(sampler), sampler=range(start, steps),
                                                 batch_size=None, num_workers=workers, prefetch_factor=2,
                                                 collate_fn=_as_is, pin_memory=sampler.device.type == "cuda")
            self.crops = iter(loader)

    def batch(self, step: int) -> PairBatch:
        crops = next(self.crops) if self.crops is not None else self.sampler.crops(step)
        if crops.step != step:
            raise RuntimeError(f"online batches out of order: step {step} got the crops of step {crops.step}")
        return self.sampler.finish(crops)


class OfflinePairDataset(Dataset):
    """The offline pairs written by :func:`write_offline_pairs`, as (degraded, clean, true prompt weights).

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

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        row = self.manifest.iloc[index]
        degraded = to_tensor(read_image(self.pairs_dir / row.degraded_path).rgb)
        clean = to_tensor(read_image(self.pairs_dir / row.clean_path).rgb)
        if degraded.shape[-1] != self.patch or degraded.shape[-2] != self.patch:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "offline-crop", index))
            both = random_crops([torch.cat([degraded, clean])], 1, self.patch, generator, which=[0])[0]
            degraded, clean = both[:3], both[3:]
        return degraded, clean, task_prompt(row.task)

    def sample_weights(self, task_weights: Mapping[str, float] | None = None) -> torch.Tensor:
        """Per-pair weights that balance tasks as ``task_weights`` sets (equal by default)."""
        counts = self.manifest["task"].value_counts()
        return torch.tensor([float((task_weights or {}).get(t, 1.0)) / counts[t] for t in self.manifest["task"]])
