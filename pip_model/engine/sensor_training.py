"""Training the degradation sensor: the restorers' loop with a classification loss and the sensor's own batches.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pip_model.data.degradations import DegradationRanges, derive_seed
from pip_model.data.images import ImageSet, dead_leaves_images, split_files
from pip_model.data.sampling import OnlinePairSampler
from pip_model.engine.loop import lr_factor
from pip_model.engine.progress import Progress
from pip_model.engine.recipes import DEAD_LEAVES_SIDE, SensorConfig
from pip_model.networks.registry import build_model


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

