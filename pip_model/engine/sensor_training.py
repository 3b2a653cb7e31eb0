"""Training the degradation sensor: the restorers' loop with a classification loss and the sensor's own batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pip_model.data.degradations import DegradationRanges, derive_seed
from pip_model.data.images import ImageSet, dead_leaves_images, split_files
from pip_model.data.sampling import OnlinePairSampler, PairBatch
from pip_model.engine.distributed import Distributed
from pip_model.engine.loop import Cadence, Optimisation, StepClock, StepFigures, run_steps
from pip_model.engine.progress import Progress
from pip_model.engine.recipes import DEAD_LEAVES_SIDE, SensorConfig
from pip_model.networks.registry import build_model, model_spec
from pip_model.tasks import classes_for


def train_sensor(
    config: SensorConfig, *, seed: int, device: str, prepared_dir: Path, ranges: DegradationRanges | None = None,
    tracker: Any = None, progress: bool = True,
) -> nn.Module:
    """Trains the degradation sensor on online degraded crops: one binary cross-entropy per class, so a
    composite crop teaches every class it holds, and a crop left clean (``config.clean_share``) teaches that none
    is there."""
    torch.manual_seed(seed)
    target = torch.device(device)
    classes = classes_for(config.tasks, model_spec(config.model).classes)  # it learns every class of its tasks
    model = build_model(config.model, classes=classes).to(target).train()
    optimisation = Optimisation.adamw(model, lr=config.lr, weight_decay=config.weight_decay, steps=config.steps)
    images = ImageSet(split_files(prepared_dir, "train"),
                      dead_leaves_images(config.dead_leaves, side=DEAD_LEAVES_SIDE, seed=seed))
    data = OnlinePairSampler(images, tasks=config.tasks, patch=config.patch,
                             batch_size=config.batch_size, seed=derive_seed(seed, "sensor"), device=target,
                             ranges=ranges, augment=True, task_weights=config.task_weights,
                             exposure=None if config.exposure == (1.0, 1.0) else config.exposure,
                             scales=config.scales, classes=classes)
    bar = Progress(config.steps, 0, config.log_every, progress)
    clock = StepClock(config.batch_size)

    def take_step(step: int) -> tuple[torch.Tensor, float]:
        degraded, present = sensor_batch(clock.fetch(data.batch, step), step, config=config, seed=seed)
        logits = model.logits(degraded)
        loss = F.binary_cross_entropy_with_logits(logits, present)
        lr = optimisation.step(model, loss)
        accuracy = ((logits.detach() > 0) == (present > 0)).all(dim=1).float().mean()
        return torch.stack([loss.detach(), accuracy]), lr

    def report(rows: list[StepFigures], log: bool) -> None:
        latest = rows[-1]
        loss, accuracy = latest.values
        bar.update(latest.step, {"loss": loss, "accuracy": accuracy, "lr": latest.lr, "patches_per_s": clock.rate()})
        if tracker is not None and log:
            tracker.log_metrics({"sensor/train_loss": loss, "sensor/train_accuracy": accuracy}, step=latest.step)

    run_steps(take_step, start=0, cadence=Cadence(config.steps, config.log_every), distributed=Distributed(),
              report=report)
    bar.close()
    return model.eval()


def sensor_batch(batch: PairBatch, step: int, *, config: SensorConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The crops of one sensor step and the classes present in each: a seeded ``config.clean_share`` of them is
    swapped for its clean crop, with no class present.

    Shape:
        batch (B, 3, P, P) -> (B, 3, P, P), (B, C)
    """
    degraded, present = batch.degraded, (batch.prompts > 0).float()
    if config.clean_share:
        draws = torch.rand(config.batch_size, generator=torch.Generator().manual_seed(
            derive_seed(seed, "sensor-clean", step)))
        left_clean = (draws < config.clean_share).to(degraded.device)
        degraded = torch.where(left_clean[:, None, None, None], batch.clean, degraded)
        present = torch.where(left_clean[:, None], torch.zeros_like(present), present)
    return degraded, present
