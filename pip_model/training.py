"""The training loop behind the ``train`` stage: one process, or many under ``torchrun``.

The recipe is the paper's, scaled by ``params.yaml: train``: AdamW with linear warm-up and
cosine decay, a pixel loss (L1, smooth-L1 or PSNR) plus the prompt regulariser, gradient clipping, a
fixed number of steps, seeded.

The batch of step ``s`` is a pure function of (seed, s), and each of its slots of (seed, s,
slot): every rank builds only its own slots of the global batch. So a resumed run sees
exactly the batches it would have seen, and a DDP run with N ranks computes the same
update as one process with the same global batch.

Between log steps a step never waits for the device: the loss and PSNR stay on it and are
read back (and averaged over the ranks) once per ``log_every`` steps.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from pip_model.checkpoints import atomic_save, safe_load, save_model_file
from pip_model.data import (
    ImageSet,
    OfflinePairDataset,
    OnlineBatches,
    OnlinePairSampler,
    PairBatch,
    dead_leaves_images,
    real_training_pairs,
    split_files,
    to_array,
)
from pip_model.degradations import DegradationRanges, degrade, derive_seed
from pip_model.image_files import labelled_grid
from pip_model.losses import PixelLoss, pixel_loss, prompt_regularization
from pip_model.registry import build_model, model_spec
from pip_model.tasks import TASKS, task_class, task_classes, task_components, task_prompt

CURVE_COLUMNS = ["step", "loss", "psnr", "lr"]
PREVIEW_SIDE, PREVIEW_ROWS = 96, 6
DEAD_LEAVES_SIDE = 256


@dataclass(frozen=True)
class TrainConfig:
    """``params.yaml: train``.

    Attributes:
        models: registry names the pipeline trains, one ``train`` stage each (``dvc.yaml`` foreach).
        model: registry name of the model to train (the stage's ``--model`` overrides it).
        source: ``online`` degrades clean crops on the fly; ``offline`` reads ``degrade``'s pairs.
        augment: online crops are randomly flipped, rotated and channel-permuted.
        tasks: tasks mixed into every batch.
        task_weights: relative share of each task (missing tasks weigh 1).
        steps: optimiser steps.
        batch_size: global batch (split across ranks under DDP).
        patch: side of the training crops.
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        warmup_steps: linear warm-up from lr/10 to lr.
        min_lr_ratio: the cosine decay ends at ``lr * min_lr_ratio``.
        loss: pixel loss, ``l1``, ``smooth_l1`` or ``psnr`` (see :mod:`pip_model.losses`).
        prompt_regularizer: ``cosine``, ``angle``, ``gram`` or ``none``.
        regularizer_weight: weight of the prompt regulariser in the loss.
        grad_clip: maximum gradient norm (0 disables clipping).
        checkpoint_every: steps between checkpoints.
        log_every: steps between progress lines and logged metrics.
        sample_every: steps between logged (degraded | restored | clean) grids.
        compile: wrap the model in ``torch.compile``.
        bf16: bf16 autocast on CUDA.
        channels_last: channels-last memory format on CUDA.
        threads: CPU threads (0: all cores).
        workers: DataLoader worker processes that read and cut training crops ahead (0: the training process).
        real_pairs: share of each task's batch slots filled with crops of its real training pairs (``prepare``'s
            ``pairs.csv``, ``split: train``) instead of synthetic degradations, e.g. ``{derain: 1.0}``.
        image_cache: decoded clean images kept per process (the rest are read from disk when cropped).
    """

    models: tuple[str, ...] = ("pip_restormer_tiny", "restormer_tiny")
    model: str = "pip_restormer_tiny"
    source: Literal["online", "offline"] = "online"
    augment: bool = True
    tasks: tuple[str, ...] = TASKS
    task_weights: dict[str, float] = field(default_factory=dict)
    steps: int = 300
    batch_size: int = 8
    patch: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 20
    min_lr_ratio: float = 0.01
    loss: PixelLoss = "l1"
    prompt_regularizer: Literal["cosine", "angle", "gram", "none"] = "cosine"
    regularizer_weight: float = 0.1
    grad_clip: float = 1.0
    checkpoint_every: int = 50
    log_every: int = 10
    sample_every: int = 100
    compile: bool = False
    bf16: bool = True
    channels_last: bool = True
    threads: int = 0
    workers: int = 2
    real_pairs: dict[str, float] = field(default_factory=dict)
    image_cache: int = 64

    def __post_init__(self) -> None:
        for name in (*self.models, self.model):
            model_spec(name)
        for task in (*self.tasks, *self.task_weights):
            task_components(task)
        for task in self.real_pairs:
            task_class(task)
        for task, share in self.real_pairs.items():
            if not 0 <= share <= 1:
                raise ValueError(f"train.real_pairs.{task} must be a share in [0, 1], got {share}")
        if self.workers < 0 or self.image_cache < 0:
            raise ValueError(f"train.workers ({self.workers}) and train.image_cache ({self.image_cache}) must be >= 0")
        if self.steps < 1 or self.batch_size < 1 or self.patch < 8:
            raise ValueError(f"train: steps ({self.steps}) and batch_size ({self.batch_size}) must be >= 1, "
                             f"patch ({self.patch}) >= 8")


@dataclass
class Distributed:
    """Where this process sits in a ``torchrun`` job (a single process is rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def from_environment(cls) -> Distributed:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("LOCAL_WORLD_SIZE", 1)))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def slots(self, batch_size: int) -> range:
        """This rank's share of a global batch."""
        if batch_size % self.world_size:
            raise ValueError(f"train.batch_size ({batch_size}) must divide by the {self.world_size} ranks")
        local = batch_size // self.world_size
        return range(self.rank * local, (self.rank + 1) * local)

    def cuda_device(self) -> str:
        """The GPU of this rank: its local rank among the GPUs it sees (one each when a launcher binds them)."""
        return f"cuda:{self.local_rank % max(torch.cuda.device_count(), 1)}"

    def loader_workers(self, wanted: int) -> int:
        """DataLoader workers for this rank: ``wanted``, but no more than its share of the node's cores."""
        return max(1, min(wanted, (os.cpu_count() or 1) // self.local_world_size))


def lr_factor(step: int, *, warmup: int, total: int, floor: float) -> float:
    """Multiplier of the peak lr: linear from 0.1 to 1 over ``warmup``, then cosine down to ``floor``."""
    if step < warmup:
        return 0.1 + 0.9 * step / max(warmup, 1)
    progress = (step - warmup) / max(total - warmup, 1)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


class StepBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Index lists for steps ``start..steps-1``, each drawn by task weight from a (seed, step) generator.

    With ``slots``, only that share of each global batch (a DDP rank's) is yielded.
    """

    def __init__(self, weights: torch.Tensor, *, batch_size: int, seed: int, start: int, steps: int,
                 slots: range | None = None) -> None:
        self.weights, self.batch_size, self.seed, self.start, self.steps = weights, batch_size, seed, start, steps
        self.slots = slots or range(batch_size)

    def __len__(self) -> int:
        return self.steps - self.start

    def __iter__(self):
        for step in range(self.start, self.steps):
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "offline-batch", step))
            drawn = torch.multinomial(self.weights, self.batch_size, replacement=True, generator=generator)
            yield drawn[self.slots.start : self.slots.stop].tolist()


class OfflineBatches:
    """Offline pairs through a DataLoader (worker processes, pinned memory on CUDA), one batch per step."""

    def __init__(self, dataset: OfflinePairDataset, *, batch_size: int, seed: int, start: int, steps: int,
                 task_weights: Mapping[str, float], device: torch.device, slots: range, workers: int) -> None:
        sampler = StepBatchSampler(dataset.sample_weights(task_weights), batch_size=batch_size, seed=seed,
                                   start=start, steps=steps, slots=slots)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                             pin_memory=device.type == "cuda")
        self.batches, self.tasks, self.device = iter(loader), dataset.manifest["task"], device
        self.indices = iter(sampler)

    def batch(self, step: int) -> PairBatch:
        degraded, clean, prompts = next(self.batches)
        tasks = [self.tasks.iloc[i] for i in next(self.indices)]
        return PairBatch(degraded.to(self.device, non_blocking=True), clean.to(self.device, non_blocking=True),
                         prompts.to(self.device, non_blocking=True), tasks)


PROGRESS_FORMATS = {"loss": "loss {:.4f}", "psnr": "psnr {:.2f} dB", "accuracy": "accuracy {:.3f}",
                    "lr": "lr {:.2e}", "patches_per_s": "{:.1f} patches/s"}


class Progress:
    """A progress bar on a terminal; plain periodic lines otherwise (CI, DVC, logs)."""

    def __init__(self, total: int, start: int, every: int, enabled: bool) -> None:
        self.every, self.enabled, self.bar = every, enabled, None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)
        self.total = total

    def update(self, step: int, figures: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        text = " ".join(PROGRESS_FORMATS[key].format(value) for key, value in figures.items()
                        if key in PROGRESS_FORMATS)
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix_str(text)
        elif step % self.every == 0 or step == self.total:
            print(f"train: step {step}/{self.total} {text}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _rng_state() -> dict[str, Any]:
    # Batches and degradations come from their own (seed, step) generators; the CUDA generators are never used, and
    # saving one state per visible GPU would stop a resume on a machine with fewer GPUs.
    return {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))


# Settings that change how a run is executed or reported, not what it computes: a checkpoint written under other
# values of these still resumes.
RESUME_NEUTRAL = frozenset({"models", "compile", "threads", "workers", "image_cache", "log_every", "sample_every",
                            "checkpoint_every"})


def resume_mismatch(saved: Mapping[str, Any] | None, config: TrainConfig) -> list[str]:
    """The settings (``name old -> new``) that stop a checkpoint written with ``saved`` from resuming ``config``."""
    current = asdict(config)
    saved = saved or {}
    return [f"{name} {saved.get(name)!r} -> {value!r}" for name, value in current.items()
            if name not in RESUME_NEUTRAL and saved.get(name) != value]


def resumable_state(checkpoint_path: Path, config: TrainConfig, seed: int) -> tuple[dict[str, Any] | None, list[str]]:
    """The checkpoint's content if it resumes ``config`` under ``seed`` (else None), and the settings that stop it.

    Its ``run_id`` is the MLflow run the interrupted training logged to, which the resumed one continues.
    """
    if not checkpoint_path.is_file():
        return None, []
    state = safe_load(checkpoint_path)
    mismatch = resume_mismatch(state.get("config"), config)
    if state.get("seed") != seed:
        mismatch.append(f"base.seed {state.get('seed')!r} -> {seed!r}")
    return (None if mismatch else state), mismatch


def preview_pairs(images: Sequence[torch.Tensor], tasks: Sequence[str], *, seed: int,
                  ranges: DegradationRanges | None) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """The fixed samples a training run shows: one task per degradation class (composites after, up to
    PREVIEW_ROWS), each a centre crop of a training photograph degraded with a seed of its own, without the
    colour shuffles and turns of training (nothing here draws from the training's random streams).

    Shape:
        -> (task, degraded (1, 3, S, S), clean (1, 3, S, S)) each, S at most PREVIEW_SIDE
    """
    chosen, seen = [], set()
    for task in tasks:  # denoise_15, _25 and _50 share a class: the first of them stands for it
        if task_classes(task) not in seen:
            seen.add(task_classes(task))
            chosen.append(task)
    rows = []
    for index, task in enumerate(chosen[:PREVIEW_ROWS]):
        image = images[index % len(images)]
        side = min(PREVIEW_SIDE, *image.shape[-2:])
        top, left = (image.shape[-2] - side) // 2, (image.shape[-1] - side) // 2
        clean = image[:, top : top + side, left : left + side][None]
        degraded, _ = degrade(clean, task, seed=derive_seed(seed, "preview", task), ranges=ranges)
        rows.append((task, degraded.clamp(0, 1), clean))
    return rows


@torch.no_grad()
def preview_grid(model: nn.Module, previews: Sequence[tuple[str, torch.Tensor, torch.Tensor]]) -> np.ndarray:
    """degraded | restored | clean, one labelled row per task (its PSNRs beside it), enlarged twice.

    Shape:
        -> (H, W, 3) in [0, 1]
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    rows = []
    for task, degraded, clean in previews:
        prompt = task_prompt(task)[None].to(device) if getattr(model, "uses_prompts", False) else None
        restored = model(degraded.to(device), prompt).float().clamp(0, 1).cpu()
        before, after = (float(-10 * torch.log10(F.mse_loss(x, clean).clamp_min(1e-10))) for x in (degraded, restored))
        rows.append((f"{task} {before:.1f} -> {after:.1f} dB",
                     [to_array(x[0]) for x in (degraded, restored, clean)]))
    model.train(was_training)
    return labelled_grid(rows, ["degraded", "restored", "clean"], zoom=2)


@dataclass
class TrainResult:
    """What a finished training run produced.

    Attributes:
        data_share: share of the wall time the loop spent getting batches (waiting for loader workers, copying,
            launching the degradations; on the CPU, degrading too).
    """

    model: nn.Module
    curve: pd.DataFrame
    patches_per_s: float
    resumed_from: int
    data_share: float = 0.0


def training_step(
    network: nn.Module, model: nn.Module, batch: PairBatch, *, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler, config: TrainConfig,
    restoration_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on ``batch``; reads nothing back from the device.

    Returns:
        (loss, mean squared error of the clamped output), detached, as one tensor on the
        device, and the restored batch.

    Shape:
        batch (B, 3, P, P) -> (2,), (B, 3, P, P)
    """
    on_cuda = batch.degraded.device.type == "cuda"
    inputs = batch.degraded.to(memory_format=torch.channels_last) if on_cuda and config.channels_last else batch.degraded
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda and config.bf16
                else contextlib.nullcontext())
    with autocast:
        restored = network(inputs, batch.prompts)
        loss = restoration_loss(restored.float(), batch.clean)
        if config.prompt_regularizer != "none":
            loss = loss + config.regularizer_weight * prompt_regularization(model, config.prompt_regularizer)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    scheduler.step()
    with torch.no_grad():
        error = F.mse_loss(restored.detach().float().clamp(0, 1), batch.clean)
    return torch.stack([loss.detach().float(), error]), restored


def read_figures(pending: list[torch.Tensor], distributed: Distributed) -> list[tuple[float, float]]:
    """(loss, PSNR) of each pending step, averaged over the ranks: one device read (and one all-reduce)."""
    values = torch.stack(pending)
    if distributed.world_size > 1:
        dist.all_reduce(values)
        values = values / distributed.world_size
    return [(loss, 10 * math.log10(1 / max(error, 1e-12))) for loss, error in values.tolist()]


def train(
    config: TrainConfig,
    *,
    seed: int,
    device: str,
    prepared_dir: Path,
    pairs_dir: Path | None,
    model_path: Path,
    curve_path: Path,
    checkpoint_path: Path,
    ranges: DegradationRanges | None = None,
    tracker: Any = None,
    distributed: Distributed | None = None,
    progress: bool = True,
    model_metadata: Callable[[], Mapping[str, Any]] | None = None,
    resume: tuple[dict[str, Any] | None, list[str]] | None = None,
) -> TrainResult:
    """Trains ``config.model`` and writes the model file, the curve table and checkpoints.

    Resumes from ``checkpoint_path`` when it exists (``resume``: what :func:`resumable_state`
    already read from it, so a caller that looked at it does not read it twice). Under DDP (``distributed.world_size
    > 1``, process group already initialised) each rank builds its own slots of every batch,
    and only rank 0 writes and logs.
    """
    distributed = distributed or Distributed()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(seed)
    random.seed(seed)
    target = torch.device(device)
    on_cuda = target.type == "cuda"
    slots = distributed.slots(config.batch_size)

    model = build_model(config.model).to(target)
    if on_cuda and config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup=config.warmup_steps, total=config.steps,
                                          floor=config.min_lr_ratio))
    step, curve_rows = 0, []
    state, mismatch = resume if resume is not None else resumable_state(checkpoint_path, config, seed)
    if mismatch and distributed.is_main and progress:
        print(f"train: ignoring {checkpoint_path}: it was written with other settings ({', '.join(mismatch)})",
              flush=True)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        step, curve_rows = int(state["step"]), list(state["curve"])
        if distributed.is_main and progress:
            print(f"train: resuming from {checkpoint_path} at step {step}", flush=True)
    resumed_from = step

    network: nn.Module = model
    if distributed.world_size > 1:
        network = nn.parallel.DistributedDataParallel(model, device_ids=[target.index] if on_cuda else None)
    if config.compile:
        network = torch.compile(network)

    if config.source == "online":
        sampler = OnlinePairSampler(
            split_files(prepared_dir, "train", cache=config.image_cache), tasks=config.tasks, patch=config.patch,
            batch_size=config.batch_size, seed=seed, device=target, task_weights=config.task_weights, ranges=ranges,
            augment=config.augment, real_pairs=real_training_pairs(prepared_dir) if config.real_pairs else None,
            real_share=config.real_pairs, slots=slots)
        data = OnlineBatches(sampler, start=step, steps=config.steps,
                             workers=distributed.loader_workers(config.workers) if config.workers else 0)
    else:
        if pairs_dir is None:
            raise ValueError("train.source is offline but no training-pairs folder was given")
        data = OfflineBatches(OfflinePairDataset(pairs_dir, patch=config.patch, seed=seed),
                              batch_size=config.batch_size, seed=seed, start=step, steps=config.steps,
                              task_weights=config.task_weights, device=target, slots=slots,
                              workers=distributed.loader_workers(4))

    restoration_loss = pixel_loss(config.loss)
    previews = (preview_pairs(split_files(prepared_dir, "train"), config.tasks, seed=seed, ranges=ranges)
                if distributed.is_main and tracker is not None else [])
    bar = Progress(config.steps, step, config.log_every, progress and distributed.is_main)
    model.train()
    started, patches, data_time = time.perf_counter(), 0, 0.0
    pending: list[torch.Tensor] = []  # (loss, error) of the steps since the last read, still on the device
    rates: list[float] = []
    while step < config.steps:
        fetch_started = time.perf_counter()
        batch = data.batch(step)
        data_time += time.perf_counter() - fetch_started
        figures, _ = training_step(network, model, batch, optimizer=optimizer, scheduler=scheduler,
                                   config=config, restoration_loss=restoration_loss)
        step += 1
        patches += config.batch_size
        pending.append(figures)
        rates.append(scheduler.get_last_lr()[0])
        sample = distributed.is_main and tracker is not None and (step % config.sample_every == 0
                                                                  or step == config.steps)
        checkpoint = step % config.checkpoint_every == 0 and step < config.steps
        if not (step % config.log_every == 0 or step == config.steps or checkpoint or sample):
            continue
        first = step - len(pending) + 1
        read = read_figures(pending, distributed)
        curve_rows += [{"step": first + k, "loss": loss, "psnr": psnr, "lr": lr}
                       for k, ((loss, psnr), lr) in enumerate(zip(read, rates))]
        pending, rates = [], []
        latest = curve_rows[-1]
        rate = patches / max(time.perf_counter() - started, 1e-9)
        bar.update(step, {"loss": latest["loss"], "psnr": latest["psnr"], "lr": latest["lr"], "patches_per_s": rate})
        if distributed.is_main and tracker is not None:
            if step % config.log_every == 0 or step == config.steps:
                tracker.log_metrics({"train/loss": latest["loss"], "train/psnr": latest["psnr"],
                                     "train/lr": latest["lr"], "train/patches_per_s": rate}, step=step)
            if sample:
                tracker.log_image(preview_grid(model, previews), key="samples", step=step)
        if checkpoint:
            if distributed.is_main:
                atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "step": step, "rng": _rng_state(),
                             "curve": curve_rows, "config": asdict(config), "seed": seed,
                             "run_id": getattr(tracker, "run_id", None)}, checkpoint_path)
            if distributed.world_size > 1:
                dist.barrier()
    bar.close()

    curve = pd.DataFrame(curve_rows, columns=CURVE_COLUMNS)
    if distributed.is_main:
        curve_path.parent.mkdir(parents=True, exist_ok=True)
        curve.to_csv(curve_path, index=False)
        save_model_file(model_path, model, model_name=config.model, step=step,
                        **(dict(model_metadata()) if model_metadata else {}))
        checkpoint_path.unlink(missing_ok=True)
    elapsed = max(time.perf_counter() - started, 1e-9)
    rate = patches / elapsed if step > resumed_from else 0.0
    return TrainResult(model=model.eval(), curve=curve, patches_per_s=rate, resumed_from=resumed_from,
                       data_share=data_time / elapsed if step > resumed_from else 0.0)


@dataclass(frozen=True)
class SensorConfig:
    """``params.yaml: sensor``.

    Attributes:
        model: registry name of the sensor (``sensor`` or ``sensor_tiny``).
        tasks: tasks whose degradations it learns to tell apart (composites teach it several at once).
        task_weights: relative share per task; missing tasks weigh 1.
        steps: optimiser steps.
        batch_size: images per step.
        patch: side of the training crops.
        exposure: range of the factor that scales each clean crop before it is degraded, so that dim but normally
            exposed scenes (which only the low-light degradation makes dark and grainy) are in the training.
        scales: range of the factor each training photograph is seen at (a crop ``patch / scale`` wide is
            resized to ``patch``), so sharp detail and soft bokeh at every size are in the training.
        dead_leaves: procedural dead-leaves images added to the training photographs (edges and flat areas of
            every size, no photograph's content).
        clean_share: share of every batch left undegraded with no class to find, so that the sensor can say an
            image has nothing to restore.
        lr: AdamW learning rate (cosine decay, no warm-up).
        weight_decay: AdamW weight decay.
        log_every: steps between progress lines and logged metrics.
    """

    model: str = "sensor_tiny"
    tasks: tuple[str, ...] = TASKS
    task_weights: dict[str, float] = field(default_factory=dict)
    steps: int = 200
    batch_size: int = 16
    patch: int = 64
    exposure: tuple[float, float] = (1.0, 1.0)
    scales: tuple[float, float] = (1.0, 1.0)
    dead_leaves: int = 0
    clean_share: float = 0.0
    lr: float = 2e-3
    weight_decay: float = 0.01
    log_every: int = 20

    def __post_init__(self) -> None:
        if not 0 < self.exposure[0] <= self.exposure[1] <= 1:
            raise ValueError(f"sensor.exposure must be [low, high] with 0 < low <= high <= 1, "
                             f"got {list(self.exposure)}")
        if not 0 < self.scales[0] <= self.scales[1] <= 1:
            raise ValueError(f"sensor.scales must be [low, high] with 0 < low <= high <= 1, got {list(self.scales)}")
        if not 0 <= self.clean_share < 1:
            raise ValueError(f"sensor.clean_share must be in [0, 1), got {self.clean_share}")
        if self.dead_leaves < 0:
            raise ValueError(f"sensor.dead_leaves must be 0 or more, got {self.dead_leaves}")
        if model_spec(self.model).kind != "sensor":
            raise ValueError(f"sensor.model must be a sensor (sensor, sensor_tiny), got {self.model!r}")
        for task in (*self.tasks, *self.task_weights):
            task_components(task)


def train_sensor(
    config: SensorConfig, *, seed: int, device: str, prepared_dir: Path, ranges: DegradationRanges | None = None,
    tracker: Any = None, progress: bool = True,
) -> nn.Module:
    """Trains the degradation sensor on online degraded crops: one binary cross-entropy per class, so a
    composite crop teaches every class it holds, and a crop left clean (``config.clean_share``) teaches that none
    is there."""
    torch.manual_seed(seed)
    target = torch.device(device)
    model = build_model(config.model).to(target).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup=0, total=config.steps, floor=0.01))
    images = ImageSet(split_files(prepared_dir, "train"),
                      dead_leaves_images(config.dead_leaves, side=DEAD_LEAVES_SIDE, seed=seed))
    data = OnlinePairSampler(images, tasks=config.tasks, patch=config.patch,
                             batch_size=config.batch_size, seed=derive_seed(seed, "sensor"), device=target,
                             ranges=ranges, augment=True, task_weights=config.task_weights,
                             exposure=None if config.exposure == (1.0, 1.0) else config.exposure,
                             scales=config.scales)
    bar = Progress(config.steps, 0, config.log_every, progress)
    started = time.perf_counter()
    for step in range(1, config.steps + 1):
        batch = data.batch(step)
        degraded, present = batch.degraded, (batch.prompts > 0).float()
        if config.clean_share:
            draws = torch.rand(config.batch_size, generator=torch.Generator().manual_seed(
                derive_seed(seed, "sensor-clean", step)))
            left_clean = (draws < config.clean_share).to(target)
            degraded = torch.where(left_clean[:, None, None, None], batch.clean, degraded)
            present = torch.where(left_clean[:, None], torch.zeros_like(present), present)
        logits = model.logits(degraded)
        loss = F.binary_cross_entropy_with_logits(logits, present)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        accuracy = float(((logits > 0) == (present > 0)).all(dim=1).float().mean())
        rate = step * config.batch_size / (time.perf_counter() - started)
        bar.update(step, {"loss": float(loss.detach()), "accuracy": accuracy, "lr": scheduler.get_last_lr()[0],
                          "patches_per_s": rate})
        if tracker is not None and (step % config.log_every == 0 or step == config.steps):
            tracker.log_metrics({"sensor/train_loss": float(loss.detach()), "sensor/train_accuracy": accuracy},
                                step=step)
    bar.close()
    return model.eval()
