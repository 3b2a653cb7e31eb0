"""The training loop behind the ``train`` stage: one process, or many under ``torchrun``.

The one loop (:func:`run_steps`) trains the restorers here and the sensor in
:mod:`pip_model.engine.sensor_training`: it steps, reads the figures back once per read
point, and calls back to report, sample and checkpoint.

The recipe is the paper's, scaled by ``params.yaml: train``: AdamW with linear warm-up and
cosine decay (by step, or by epoch as the published code: :func:`lr_schedule`), a pixel loss (L1, smooth-L1 or
PSNR) plus the prompt regulariser, gradient clipping, a fixed number of steps, seeded. A step may go through in
micro-batches (``train_run.accumulate``), so that one device takes the published global batch.

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
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from pip_model import cpu_kernels
from pip_model.data.degradations import DegradationRanges
from pip_model.data.images import real_training_pairs, split_files
from pip_model.data.loaders import OfflineBatches
from pip_model.data.sampling import OfflinePairDataset, OnlineBatches, OnlinePairSampler, PairBatch
from pip_model.engine.distributed import Distributed, read_figures
from pip_model.engine.losses import auxiliary_loss, pixel_loss, prompt_regularization
from pip_model.engine.previews import preview_grid, preview_pairs
from pip_model.engine.progress import Progress
from pip_model.engine.recipes import CURVE_COLUMNS, TrainConfig
from pip_model.engine.resume import _rng_state, _set_rng_state, resumable_state
from pip_model.networks.checkpoints import atomic_save, save_model_file
from pip_model.networks.moce_ir import ExpertRouter
from pip_model.networks.registry import ModelSpec, build_model, call_model, model_spec, spec_of_model
from pip_model.tasks import classes_for


def lr_factor(step: int, *, warmup: int, total: int, floor: float, start: float = 0.1) -> float:
    """Multiplier of the peak lr: linear from ``start`` to 1 over ``warmup``, then cosine down to ``floor``."""
    if step < warmup:
        return start + (1 - start) * step / max(warmup, 1)
    progress = (step - warmup) / max(total - warmup, 1)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def epoch_lr_factor(epoch: int, *, warmup: int, horizon: int, floor: float, start: float) -> float:
    """Multiplier of the peak lr in epoch ``epoch``, as the published ``LinearWarmupCosineAnnealingLR`` stepped once
    per epoch (PromptIR's ``train.py``, PIP's ``PIPNet_Trainer.py``): linear from ``start`` in epoch 0 to 1 in epoch
    ``warmup - 1``, then a cosine from 1 in epoch ``warmup`` to ``floor`` in epoch ``horizon``. Past ``horizon`` the
    cosine goes on and rises again, as the published one does (PIP's code trains 200 epochs on a 120-epoch cosine).
    """
    if epoch < warmup:
        return start + (1 - start) * epoch / max(warmup - 1, 1)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / max(horizon - warmup, 1)))


def lr_schedule(config: TrainConfig) -> Callable[[int], float]:
    """The lr multiplier of each optimiser step of ``config``: by step, or, with ``train.epoch_samples``, by the
    epoch the step's samples fall in (constant within an epoch, as the published schedules)."""
    if config.epoch_samples:
        def by_epoch(step: int) -> float:
            return epoch_lr_factor(step * config.batch_size // config.epoch_samples, warmup=config.warmup_epochs,
                                   horizon=config.schedule_epochs, floor=config.min_lr_ratio,
                                   start=config.warmup_start)
        return by_epoch
    return lambda step: lr_factor(step, warmup=config.warmup_steps, total=config.steps, floor=config.min_lr_ratio,
                                  start=config.warmup_start)


@dataclass
class Optimisation:
    """AdamW and its warm-up/cosine schedule, stepped together."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler

    @classmethod
    def adamw(cls, model: nn.Module, *, lr: float, weight_decay: float, steps: int, warmup: int = 0,
              floor: float = 0.01, betas: tuple[float, float] = (0.9, 0.999),
              schedule: Callable[[int], float] | None = None) -> Optimisation:
        """AdamW with the warm-up/cosine of :func:`lr_factor`, or with ``schedule`` (step -> lr multiplier)."""
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
        return cls(optimizer, torch.optim.lr_scheduler.LambdaLR(
            optimizer, schedule or (lambda step: lr_factor(step, warmup=warmup, total=steps, floor=floor))))

    def step(self, model: nn.Module, loss: torch.Tensor, *, grad_clip: float = 0.0) -> float:
        """Back-propagates ``loss`` and takes one step; returns the lr the next step will use."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return self.apply(model, grad_clip=grad_clip)

    def apply(self, model: nn.Module, *, grad_clip: float = 0.0) -> float:
        """Takes one step with the gradients back-propagated since the last one; returns the next step's lr."""
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return self.scheduler.get_last_lr()[0]

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


@dataclass(frozen=True)
class Cadence:
    """When the loop stops to read its figures back (every ``log_every`` steps and the last), to draw samples and to
    save a checkpoint (never at the last step: the model file is written then). 0 turns samples or checkpoints off."""

    steps: int
    log_every: int
    sample_every: int = 0
    checkpoint_every: int = 0

    def due(self, step: int) -> tuple[bool, bool, bool]:
        """(log, sample, checkpoint) at ``step``."""
        last = step == self.steps
        return (step % self.log_every == 0 or last,
                bool(self.sample_every) and (step % self.sample_every == 0 or last),
                bool(self.checkpoint_every) and step % self.checkpoint_every == 0 and not last)


@dataclass
class StepFigures:
    """What one step measured: its figures averaged over the ranks (in the order the step returned them) and the lr
    after it."""

    step: int
    values: list[float]
    lr: float


def run_steps(
    take_step: Callable[[int], tuple[torch.Tensor, float]], *, start: int, cadence: Cadence,
    distributed: Distributed, report: Callable[[list[StepFigures], bool], None],
    sample: Callable[[int], None] | None = None, checkpoint: Callable[[int], None] | None = None,
) -> None:
    """Takes steps ``start + 1`` to ``cadence.steps``.

    ``take_step(step)`` takes one optimiser step and returns its figures, left on the device, and the lr. At each
    read point the figures since the last one are read back in one transfer (one all-reduce under DDP) and handed
    to ``report`` with whether this is a log step; ``sample`` and ``checkpoint`` are then called when due (every
    rank reads at the same steps, so the all-reduce never waits for a rank that skipped it).

    Shape:
        take_step returns (K,) figures per step
    """
    pending: list[torch.Tensor] = []
    rates: list[float] = []
    for step in range(start + 1, cadence.steps + 1):
        figures, lr = take_step(step)
        pending.append(figures)
        rates.append(lr)
        log, draw, save = cadence.due(step)
        if not (log or draw or save):
            continue
        first = step - len(pending) + 1
        report([StepFigures(first + k, row, lr)
                for k, (row, lr) in enumerate(zip(read_figures(pending, distributed), rates))], log)
        pending, rates = [], []
        if draw and sample is not None:
            sample(step)
        if save and checkpoint is not None:
            checkpoint(step)
            if distributed.world_size > 1:
                dist.barrier()


class StepClock:
    """Patches per second since the loop began, and the share of that time spent getting batches."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size, self.steps, self.data_time = batch_size, 0, 0.0
        self.started = time.perf_counter()

    def fetch(self, get: Callable[[int], Any], step: int) -> Any:
        fetch_started = time.perf_counter()
        batch = get(step)
        self.data_time += time.perf_counter() - fetch_started
        self.steps += 1
        return batch

    def elapsed(self) -> float:
        return max(time.perf_counter() - self.started, 1e-9)

    def rate(self) -> float:
        return self.steps * self.batch_size / self.elapsed()

    def data_share(self) -> float:
        return self.data_time / self.elapsed()


def psnr_of(mean_squared_error: float) -> float:
    """PSNR in dB of images in [0, 1] from their mean squared error."""
    return 10 * math.log10(1 / max(mean_squared_error, 1e-12))


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


def micro_batches(batch: PairBatch, count: int) -> list[PairBatch]:
    """``batch`` cut into ``count`` equal consecutive micro-batches (``train_run.accumulate``).

    Raises:
        ValueError: ``count`` does not divide the batch.

    Shape:
        (B, ...) -> count x (B / count, ...)
    """
    size = len(batch.tasks)
    if size % count:
        raise ValueError(f"train_run.accumulate ({count}) must divide the {size} images of each process's batch "
                         "(train.batch_size over the DDP processes)")
    if count == 1:
        return [batch]
    part = size // count
    return [PairBatch(batch.degraded[start : start + part], batch.clean[start : start + part],
                      batch.prompts[start : start + part], batch.tasks[start : start + part])
            for start in range(0, size, part)]


def training_step(
    network: nn.Module, model: nn.Module, batch: PairBatch, *, optimisation: Optimisation, config: TrainConfig,
    restoration_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], spec: ModelSpec | None = None,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One optimiser step on ``batch``; reads nothing back from the device.

    With ``config.accumulate`` > 1 the batch goes through in that many micro-batches whose gradients add up (each
    loss divided by their number, so the step is the step of the whole batch's mean loss; under DDP only the last
    one is all-reduced). The batch is the same either way: the step's global batch, cut.

    Returns:
        (loss, mean squared error of the clamped output), detached, as one tensor on the
        device; the restored batch; the lr of the next step.

    Shape:
        batch (B, 3, P, P) -> (2,), (B, 3, P, P)
    """
    spec = spec or spec_of_model(model)
    on_cuda = batch.degraded.device.type == "cuda"
    autocast = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if on_cuda and config.bf16
                else contextlib.nullcontext)
    parts = micro_batches(batch, config.accumulate)
    optimisation.optimizer.zero_grad(set_to_none=True)
    losses, outputs = [], []
    for index, part in enumerate(parts):
        inputs = part.degraded.to(memory_format=torch.channels_last) if config.channels_last else part.degraded
        last = index == len(parts) - 1
        sync = contextlib.nullcontext() if last or not hasattr(network, "no_sync") else network.no_sync()
        with sync:
            with autocast():
                restored = call_model(network, inputs, spec.steering(part.tasks, part.prompts))
                loss = restoration_loss(restored.float(), part.clean)
                if config.prompt_regularizer != "none":
                    loss = loss + config.regularizer_weight * prompt_regularization(model, config.prompt_regularizer)
                if config.auxiliary_weight and (term := auxiliary_loss(model)) is not None:
                    loss = loss + config.auxiliary_weight * term
            (loss if len(parts) == 1 else loss / len(parts)).backward()
        losses.append(loss.detach().float())
        outputs.append(restored.detach())
    lr = optimisation.apply(model, grad_clip=config.grad_clip)
    restored = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
    mean_loss = losses[0] if len(losses) == 1 else torch.stack(losses).mean()
    with torch.no_grad():
        error = F.mse_loss(restored.float().clamp(0, 1), batch.clean)
    return torch.stack([mean_loss, error]), restored, lr


def training_batches(config: TrainConfig, *, seed: int, start: int, target: torch.device, prepared_dir: Path,
                     pairs_dir: Path | None, ranges: DegradationRanges | None, distributed: Distributed,
                     classes: Sequence[str] | None = None) -> OnlineBatches | OfflineBatches:
    """The batches of steps ``start`` on: degraded online from the prepared images, or cut from offline pairs; their
    prompts are over ``classes`` (the model's)."""
    slots = distributed.slots(config.batch_size)
    if config.source == "online":
        sampler = OnlinePairSampler(
            split_files(prepared_dir, "train", cache=config.image_cache), tasks=config.tasks, patch=config.patch,
            batch_size=config.batch_size, seed=seed, device=target, task_weights=config.task_weights, ranges=ranges,
            augment=config.augment, real_pairs=real_training_pairs(prepared_dir) if config.real_pairs else None,
            real_share=config.real_pairs, slots=slots, task_draw=config.task_draw, classes=classes)
        return OnlineBatches(sampler, start=start, steps=config.steps,
                             workers=distributed.loader_workers(config.workers) if config.workers else 0)
    if pairs_dir is None:
        raise ValueError("train.source is offline but no training-pairs folder was given")
    return OfflineBatches(OfflinePairDataset(pairs_dir, patch=config.patch, seed=seed, classes=classes),
                          batch_size=config.batch_size, seed=seed, start=start, steps=config.steps,
                          task_weights=config.task_weights, device=target, slots=slots,
                          workers=distributed.loader_workers(4))


def resume_into(model: nn.Module, optimisation: Optimisation, checkpoint_path: Path,
                resume: tuple[Mapping[str, Any] | None, list[str]], *, verbose: bool) -> tuple[int, list]:
    """Loads a checkpoint's weights, optimiser and random states (``resume``: what :func:`resumable_state` read, and
    the settings that stop it); returns its step and curve rows, (0, []) without one."""
    state, mismatch = resume
    if mismatch and verbose:
        print(f"train: ignoring {checkpoint_path}: it was written with other settings ({', '.join(mismatch)})",
              flush=True)
    if state is None:
        return 0, []
    model.load_state_dict(state["model"])
    optimisation.load_state_dict(state)
    _set_rng_state(state["rng"])
    if verbose:
        print(f"train: resuming from {checkpoint_path} at step {state['step']}", flush=True)
    return int(state["step"]), list(state["curve"])


def wrap_network(model: nn.Module, config: TrainConfig, distributed: Distributed, target: torch.device) -> nn.Module:
    """The module the steps call: ``model`` under DDP with several ranks, compiled if asked."""
    network: nn.Module = model
    if distributed.world_size > 1:
        # A mixture of experts (MoCE-IR) leaves the experts no image chose out of a step: DDP must look for them.
        experts = any(isinstance(module, ExpertRouter) for module in model.modules())
        network = nn.parallel.DistributedDataParallel(model, device_ids=[target.index] if target.type == "cuda"
                                                      else None, find_unused_parameters=experts)
    return torch.compile(network) if config.compile else network


def seeded_model(config: TrainConfig, *, seed: int, target: torch.device, distributed: Distributed,
                 classes: Sequence[str] | None = None) -> nn.Module:
    """The untrained model on ``target`` (with ``classes``, its prompt classes), after the run's threads and seeds
    are set (its initial weights follow from ``seed``); checks first that ``accumulate`` divides this process's share
    of the batch."""
    if (local := len(distributed.slots(config.batch_size))) % config.accumulate:
        raise ValueError(f"train_run.accumulate ({config.accumulate}) must divide the {local} images each of the "
                         f"{distributed.world_size} processes builds of train.batch_size {config.batch_size}")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(seed)
    random.seed(seed)
    model = build_model(config.model, classes=classes).to(target)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def train(
    config: TrainConfig, *, seed: int, device: str, prepared_dir: Path, pairs_dir: Path | None, model_path: Path,
    curve_path: Path, checkpoint_path: Path, ranges: DegradationRanges | None = None, tracker: Any = None,
    distributed: Distributed | None = None, progress: bool = True,
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
    config = config.for_its_model()
    spec = model_spec(config.model)
    target = torch.device(device)
    classes = classes_for(config.tasks, spec.classes)  # its own, and those of the tasks it learns beyond them
    model = seeded_model(config, seed=seed, target=target, distributed=distributed, classes=classes)
    kernels = cpu_kernels.check()  # after the thread count is set: both decide the bits
    optimisation = Optimisation.adamw(model, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay,
                                      steps=config.steps, schedule=lr_schedule(config))
    step, curve_rows = resume_into(model, optimisation, checkpoint_path,
                                   resume if resume is not None else resumable_state(checkpoint_path, config, seed),
                                   verbose=distributed.is_main and progress)
    resumed_from = step
    network = wrap_network(model, config, distributed, target)
    data = training_batches(config, seed=seed, start=step, target=target, prepared_dir=prepared_dir,
                            pairs_dir=pairs_dir, ranges=ranges, distributed=distributed, classes=classes)
    restoration_loss = pixel_loss(config.loss, fft_weight=config.fft_loss_weight)
    logging = distributed.is_main and tracker is not None
    if logging:
        tracker.log_params({"cpu_kernels": kernels})
    if progress and distributed.is_main and target.type == "cpu":
        print(f"train: {cpu_kernels.describe(kernels)}", flush=True)
    previews = (preview_pairs(split_files(prepared_dir, "train"), config.tasks, seed=seed, ranges=ranges)
                if logging else [])
    bar = Progress(config.steps, step, config.log_every, progress and distributed.is_main)
    clock = StepClock(config.batch_size)

    def take_step(step: int) -> tuple[torch.Tensor, float]:
        batch = clock.fetch(data.batch, step - 1)
        figures, _, lr = training_step(network, model, batch, optimisation=optimisation, config=config,
                                       restoration_loss=restoration_loss, spec=spec)
        return figures, lr

    def report(rows: list[StepFigures], log: bool) -> None:
        curve_rows.extend({"step": row.step, "loss": row.values[0], "psnr": psnr_of(row.values[1]), "lr": row.lr}
                          for row in rows)
        latest = {**curve_rows[-1], "patches_per_s": clock.rate()}
        bar.update(latest["step"], latest)
        if logging and log:
            tracker.log_metrics({f"train/{key}": latest[key] for key in ("loss", "psnr", "lr", "patches_per_s")},
                                step=latest["step"])

    def save_checkpoint(step: int) -> None:
        if distributed.is_main:
            atomic_save({"model": model.state_dict(), **optimisation.state_dict(), "step": step, "rng": _rng_state(),
                         "curve": curve_rows, "config": asdict(config), "seed": seed,
                         "run_id": getattr(tracker, "run_id", None)}, checkpoint_path)

    model.train()
    run_steps(take_step, start=step, distributed=distributed, report=report, checkpoint=save_checkpoint,
              cadence=Cadence(config.steps, config.log_every, config.sample_every, config.checkpoint_every),
              sample=(lambda step: tracker.log_image(preview_grid(model, previews), key="samples", step=step))
              if logging else None)
    bar.close()
    curve = pd.DataFrame(curve_rows, columns=CURVE_COLUMNS)
    if distributed.is_main:
        curve_path.parent.mkdir(parents=True, exist_ok=True)
        curve.to_csv(curve_path, index=False)
        save_model_file(model_path, model, model_name=config.model, step=config.steps, cpu_kernels=kernels,
                        **(model_metadata or dict)())
        checkpoint_path.unlink(missing_ok=True)
    trained = config.steps > resumed_from
    return TrainResult(model=model.eval(), curve=curve, patches_per_s=clock.rate() if trained else 0.0,
                       resumed_from=resumed_from, data_share=clock.data_share() if trained else 0.0)
