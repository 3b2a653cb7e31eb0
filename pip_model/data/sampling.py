"""Training pairs drawn by step: seeded crops and augmentation, balanced tasks, online and offline batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import torch
from torch.utils.data import Dataset

from pip_model.data.degradations import (
    DegradationDraw,
    DegradationRanges,
    apply_degradation,
    derive_seed,
    draw_degradation,
    equal_runs,
)
from pip_model.data.images import to_tensor
from pip_model.image_files import read_image
from pip_model.tasks import classes_for, task_prompt


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


def augment(crop: torch.Tensor, generator: torch.Generator, *, channels: bool = True) -> torch.Tensor:
    """One of 48 rearrangements (channel order, quarter turns, mirror) of a crop, drawn from ``generator``.

    With k images stacked along the channels (a degraded and a clean crop), each gets the same
    one. Channel orders keep a small corpus from teaching the network its colour cast. Without ``channels``, one of
    the 7 turns and mirrors other than the identity, as the published loaders draw them (``random_augmentation``:
    ``random.randint(1, 7)``, PromptIR and PIP ``utils/image_utils.py``).

    Shape:
        (3k, P, P) -> (3k, P, P)
    """
    if not channels:
        draw = int(torch.randint(1, 8, (1,), generator=generator))
        crop = torch.rot90(crop, k=draw // 2, dims=(-2, -1))
        return crop.flip(-2) if draw % 2 else crop
    draw = int(torch.randint(0, 48, (1,), generator=generator))
    order = [3 * image + channel for image in range(crop.shape[0] // 3) for channel in CHANNEL_ORDERS[draw % 6]]
    crop = torch.rot90(crop[order], k=(draw // 6) % 4, dims=(-2, -1))
    return crop.flip(-1) if draw >= 24 else crop


def balanced_tasks(
    tasks: Sequence[str], weights: Mapping[str, float] | None, batch_size: int, generator: torch.Generator,
    *, draw: Literal["weights", "fractions"] = "weights",
) -> list[str]:
    """Task of each slot of a batch: counts proportional to ``weights``, remainder drawn, grouped by task.

    Each task gets the whole part of its share of the batch. With ``draw="fractions"`` the slots left over go to
    the tasks by their fractional parts, drawn systematically (one uniform offset, points one apart), so a task
    gets one more slot with a probability equal to its fractional part: over many steps every task's share of the
    slots is its weight's share exactly, at any batch size. ``"weights"`` (what the committed demo results were
    trained with) draws them by the whole weights, which favours large shares (3task at batch 32: haze 52.5%
    for 50.6%).
    With equal weights and a batch at least as large as the task list, every task appears.
    Each task's slots are neighbours, so a task's degradation applies to a slice of the batch.
    """
    share = torch.tensor([float((weights or {}).get(task, 1.0)) for task in tasks],
                         dtype=torch.float32 if draw == "weights" else torch.float64)
    if (share < 0).any() or share.sum() <= 0:
        raise ValueError(f"task weights must be >= 0 and not all 0, got {dict(zip(tasks, share.tolist()))}")
    exact = share / share.sum() * batch_size
    counts = torch.floor(exact).long()
    remainder = batch_size - int(counts.sum())
    if remainder and draw == "weights":
        extra = torch.multinomial(share / share.sum(), remainder, replacement=remainder > len(tasks),
                                  generator=generator)
        counts += torch.bincount(extra, minlength=len(tasks))
    elif remainder:
        edges = torch.cumsum(exact - counts, dim=0)
        points = torch.rand((), generator=generator, dtype=torch.float64) + torch.arange(remainder)
        picks = torch.searchsorted(edges, points, right=True).clamp(max=len(tasks) - 1)
        counts += torch.bincount(picks, minlength=len(tasks))
    return [task for task, count in zip(tasks, counts.tolist()) for _ in range(count)]


@dataclass
class PairBatch:
    """A training batch.

    Attributes:
        degraded: degraded images (B, 3, P, P).
        clean: the clean images (B, 3, P, P).
        prompts: true prompt weights of each image (B, C) over the sampler's classes: one-hot, a mixture for
            composites.
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
        prompts: true prompt weights of each slot (B, C) over the sampler's classes.
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
    With ``augment``, crops are randomly flipped, rotated and channel-permuted first (``"published"``: flipped and
    rotated only, never left as they are, as the published loaders; a pair's
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
        ranges: DegradationRanges | None = None, augment: bool | Literal["published"] = False,
        real_pairs: Mapping[str, Sequence[tuple[Path, Path]]] | None = None,
        real_share: Mapping[str, float] | None = None, slots: range | None = None,
        exposure: tuple[float, float] | None = None, scales: tuple[float, float] | None = None,
        task_draw: Literal["weights", "fractions"] = "weights", classes: Sequence[str] | None = None,
    ) -> None:
        if not len(images):
            raise ValueError("online training needs at least one clean training image")
        self.images, self.tasks, self.patch, self.batch_size = images, list(tasks), patch, batch_size
        # The prompt classes of the model it feeds: the paper's five and any class of its tasks beyond them.
        self.classes = tuple(classes) if classes else classes_for(self.tasks)
        self.seed, self.device, self.task_weights = seed, torch.device(device), task_weights
        self.ranges = ranges or DegradationRanges()
        self.augment, self.exposure, self.task_draw = augment, exposure, task_draw
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
        tasks = balanced_tasks(self.tasks, self.task_weights, self.batch_size, generator, draw=self.task_draw)
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
                crop = augment(crop, generator, channels=self.augment is True)
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
                         prompts=torch.stack([task_prompt(task, self.classes) for task in tasks]), runs=runs)

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

    def __init__(self, pairs_dir: Path, *, patch: int, seed: int = 0, classes: Sequence[str] | None = None) -> None:
        self.pairs_dir, self.patch, self.seed = Path(pairs_dir), patch, seed
        self.manifest = pd.read_csv(self.pairs_dir / "manifest.csv")
        if self.manifest.empty:
            raise ValueError(f"{self.pairs_dir / 'manifest.csv'} lists no training pairs; set "
                             "degrade.train_pairs_per_task > 0 or train online")
        self.classes = tuple(classes) if classes else classes_for(self.manifest["task"].unique())

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
        return degraded, clean, task_prompt(row.task, self.classes)

    def sample_weights(self, task_weights: Mapping[str, float] | None = None) -> torch.Tensor:
        """Per-pair weights that balance tasks as ``task_weights`` sets (equal by default)."""
        counts = self.manifest["task"].value_counts()
        return torch.tensor([float((task_weights or {}).get(t, 1.0)) / counts[t] for t in self.manifest["task"]])

