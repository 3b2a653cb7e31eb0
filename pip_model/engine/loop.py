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
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from pip_model.data.degradations import DegradationRanges
from pip_model.data.images import real_training_pairs, split_files
from pip_model.data.loaders import OfflineBatches
from pip_model.data.sampling import OfflinePairDataset, OnlineBatches, OnlinePairSampler, PairBatch
from pip_model.engine.distributed import Distributed, read_figures
from pip_model.engine.losses import pixel_loss, prompt_regularization
from pip_model.engine.previews import preview_grid, preview_pairs
from pip_model.engine.progress import Progress
from pip_model.engine.recipes import CURVE_COLUMNS, TrainConfig
from pip_model.engine.resume import _rng_state, _set_rng_state, resumable_state
from pip_model.networks.checkpoints import atomic_save, save_model_file
from pip_model.networks.registry import build_model


def lr_factor(step: int, *, warmup: int, total: int, floor: float) -> float:
    """Multiplier of the peak lr: linear from 0.1 to 1 over ``warmup``, then cosine down to ``floor``."""
    if step < warmup:
        return 0.1 + 0.9 * step / max(warmup, 1)
    progress = (step - warmup) / max(total - warmup, 1)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))



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

