"""The training recipes as typed configs: the restorers' (``train``) and the sensor's (``sensor``), and which of their
settings only say how a run goes (resume-neutral).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

from pip_model.config import ConfigError, from_mapping, read_params
from pip_model.engine.losses import PixelLoss
from pip_model.networks.registry import model_spec
from pip_model.tasks import TASKS, task_components

T = TypeVar("T")

CURVE_COLUMNS = ["step", "loss", "psnr", "lr"]


DEAD_LEAVES_SIDE = 256


@dataclass(frozen=True)
class TrainConfig:
    """``params.yaml: train`` (the recipe) and ``train_run`` (how it runs: :data:`RESUME_NEUTRAL`).

    Attributes:
        models: registry names the pipeline trains, one ``train`` stage each (``dvc.yaml`` foreach).
        model: registry name of the model to train (the stage's ``--model`` overrides it).
        source: ``online`` degrades clean crops on the fly; ``offline`` reads ``degrade``'s pairs.
        augment: online crops are randomly flipped, rotated and channel-permuted; ``published``: flipped and rotated
            only, one of the 7 other than the identity, as the published loaders.
        tasks: tasks mixed into every batch.
        task_weights: relative share of each task (missing tasks weigh 1).
        task_draw: how a batch's slots left over after each task's whole share are drawn: ``fractions`` gives every
            task exactly its share over many steps (the paper protocols); ``weights``, the demo's (its committed
            results were trained so), favours the large shares.
        steps: optimiser steps; 0 = ``epochs * epoch_samples / batch_size`` (a budget in samples, as the published
            runs count it). A value > 0 sets the length itself (a short trial of an epoch recipe keeps its schedule).
        batch_size: global batch (split across ranks under DDP, and into ``accumulate`` micro-batches).
        patch: side of the training crops.
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        warmup_steps: linear warm-up from ``lr * warmup_start`` to lr (0 with ``epoch_samples``: see
            ``warmup_epochs``).
        min_lr_ratio: the cosine decay ends at ``lr * min_lr_ratio``.
        warmup_start: the lr of the first step (epoch) as a share of lr: PIP's code starts at lr/10, PromptIR's at 0.
        epoch_samples: samples in one epoch of the published loader (its training list, repeats included). > 0 makes
            the schedule the published one, by epoch: the lr is constant within an epoch, ``warmup_epochs`` of linear
            warm-up, then a cosine that reaches ``min_lr_ratio`` at epoch ``cosine_epochs`` (see
            :func:`pip_model.engine.loop.epoch_lr_factor`).
        epochs: the training length in epochs of ``epoch_samples`` (with ``steps: 0``).
        warmup_epochs: epochs of linear warm-up (with ``epoch_samples``).
        cosine_epochs: the epoch at which the cosine reaches its floor (0 = ``epochs``).
        loss: pixel loss, ``l1``, ``smooth_l1`` or ``psnr`` (see :mod:`pip_model.engine.losses`).
        prompt_regularizer: ``cosine``, ``angle``, ``gram`` or ``none``.
        regularizer_weight: weight of the prompt regulariser in the loss.
        fft_loss_weight: weight of the FFT loss added to the pixel loss
            (:func:`~pip_model.engine.losses.frequency_loss`, MoCE-IR's; 0: none).
        auxiliary_weight: weight of the terms the model's own modules ask to be trained with
            (:func:`~pip_model.engine.losses.auxiliary_loss`: MoCE-IR's expert balance); 0, or a model without any,
            adds none.
        grad_clip: maximum gradient norm (0 disables clipping).
        checkpoint_every: steps between checkpoints.
        log_every: steps between progress lines and logged metrics.
        sample_every: steps between logged (degraded | restored | clean) grids.
        compile: wrap the model in ``torch.compile``.
        bf16: bf16 autocast on CUDA.
        channels_last: channels-last memory format, on any device (on this project's CPU it made a training step of
            ``pip_restormer`` about 1.4x faster and the tiny models' 0-7%; the same maths up to float rounding).
        threads: CPU threads (0: all cores).
        workers: DataLoader worker processes that read and cut training crops ahead (0: the training process).
        real_pairs: share of each task's batch slots filled with crops of its real training pairs (``prepare``'s
            ``pairs.csv``, ``split: train``) instead of synthetic degradations, e.g. ``{derain: 1.0}``.
        image_cache: decoded clean images kept per process (the rest are read from disk when cropped).
        accumulate: micro-batches per optimiser step (gradients add up): the global batch of a step is the same,
            cut, so it changes memory, not the update (within float rounding), and is a run setting.
    """

    models: tuple[str, ...] = ("pip_restormer_tiny", "restormer_tiny", "promptir_tiny")
    model: str = "pip_restormer_tiny"
    source: Literal["online", "offline"] = "online"
    augment: bool | Literal["published"] = True
    tasks: tuple[str, ...] = TASKS
    task_weights: dict[str, float] = field(default_factory=dict)
    task_draw: Literal["weights", "fractions"] = "weights"
    steps: int = 300
    batch_size: int = 8
    patch: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 20
    min_lr_ratio: float = 0.01
    warmup_start: float = 0.1
    epoch_samples: int = 0
    epochs: float = 0.0
    warmup_epochs: int = 0
    cosine_epochs: int = 0
    loss: PixelLoss = "l1"
    prompt_regularizer: Literal["cosine", "angle", "gram", "none"] = "cosine"
    regularizer_weight: float = 0.1
    fft_loss_weight: float = 0.0
    auxiliary_weight: float = 0.0
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
    accumulate: int = 1

    def __post_init__(self) -> None:
        self._check_schedule()
        for name in (*self.models, self.model):
            model_spec(name)
        for task in (*self.tasks, *self.task_weights):
            task_components(task)
        for task in self.real_pairs:
            task_components(task)
        for task, share in self.real_pairs.items():
            if not 0 <= share <= 1:
                raise ValueError(f"train.real_pairs.{task} must be a share in [0, 1], got {share}")
        if self.fft_loss_weight < 0 or self.auxiliary_weight < 0:
            raise ValueError(f"train.fft_loss_weight ({self.fft_loss_weight}) and train.auxiliary_weight "
                             f"({self.auxiliary_weight}) must be >= 0")
        if self.workers < 0 or self.image_cache < 0:
            raise ValueError(f"train_run.workers ({self.workers}) and train_run.image_cache ({self.image_cache}) "
                             "must be >= 0")
        if self.steps < 1 or self.batch_size < 1 or self.patch < 8:
            raise ValueError(f"train: steps ({self.steps}) and batch_size ({self.batch_size}) must be >= 1, "
                             f"patch ({self.patch}) >= 8")
        if self.accumulate < 1 or self.batch_size % self.accumulate:
            raise ValueError(f"train_run.accumulate ({self.accumulate}) must be >= 1 and divide train.batch_size "
                             f"({self.batch_size})")

    def for_its_model(self) -> TrainConfig:
        """This config with ``tasks`` cut to those its model covers (a task expert trains on its tasks only).

        Raises:
            ValueError: the model covers none of ``tasks``.
        """
        spec = model_spec(self.model)
        covered = tuple(task for task in self.tasks if spec.covers(task))
        if not covered:
            raise ValueError(f"{self.model} restores {', '.join(spec.tasks)}: none of train.tasks "
                             f"({', '.join(self.tasks)})")
        return self if covered == self.tasks else replace(self, tasks=covered)

    def _check_schedule(self) -> None:
        """Checks the epoch settings and sets ``steps`` from ``epochs`` when it is 0 (the only field derived)."""
        if not 0 <= self.warmup_start <= 1:
            raise ValueError(f"train.warmup_start must be a share of train.lr in [0, 1], got {self.warmup_start}")
        by_epoch = {"epochs": self.epochs, "warmup_epochs": self.warmup_epochs, "cosine_epochs": self.cosine_epochs}
        if self.epoch_samples < 0 or any(value < 0 for value in by_epoch.values()):
            raise ValueError("train.epoch_samples, epochs, warmup_epochs and cosine_epochs must be >= 0")
        if not self.epoch_samples:
            if given := [name for name, value in by_epoch.items() if value]:
                raise ValueError(f"train.{given[0]} counts epochs, but train.epoch_samples is 0: set it to the "
                                 "samples of one epoch, or count in steps (train.steps, train.warmup_steps)")
            return
        if self.warmup_steps:
            raise ValueError(f"train.warmup_steps is {self.warmup_steps}, but train.epoch_samples makes the schedule "
                             "count epochs: set train.warmup_steps to 0 and the warm-up in train.warmup_epochs")
        if self.cosine_epochs and self.cosine_epochs <= self.warmup_epochs:
            raise ValueError(f"train.cosine_epochs ({self.cosine_epochs}) must come after the warm-up "
                             f"(train.warmup_epochs {self.warmup_epochs})")
        if self.steps == 0 and self.epochs and self.batch_size >= 1:
            object.__setattr__(self, "steps", max(1, int(self.epochs * self.epoch_samples) // self.batch_size))

    @property
    def schedule_epochs(self) -> int:
        """The epoch at which the cosine reaches its floor: ``cosine_epochs``, else the length in epochs."""
        return self.cosine_epochs or max(1, math.ceil(self.epochs or self.samples / self.epoch_samples))

    @property
    def samples(self) -> int:
        """Training samples (patches) the run sees: steps x global batch."""
        return self.steps * self.batch_size


# Settings that change how a run is executed or reported, not what it computes. They live in `params.yaml:
# train_run`, which no stage depends on, so changing one retrains nothing; a checkpoint written under other values
# of these still resumes. `models` is the list of train stages (dvc.yaml foreach), so a new one adds its own stage.
RESUME_NEUTRAL = frozenset({"models", "compile", "threads", "workers", "image_cache", "log_every", "sample_every",
                            "checkpoint_every", "accumulate"})
@dataclass(frozen=True)
class SensorConfig:
    """``params.yaml: sensor``, and ``train_run.sensor_log_every``.

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


# `train_run` keys of the sensor's run settings, and the SensorConfig field each sets.
SENSOR_RUN_SETTINGS = {"sensor_log_every": "log_every"}
RUN_SECTION = "train_run"


def load_train_config(path: str | os.PathLike = "params.yaml") -> TrainConfig:
    """``params.yaml: train`` (the recipe) with the run settings of ``train_run``.

    Raises:
        ConfigError: a value is wrong, or a run setting sits in ``train`` (it would make DVC retrain for it).
    """
    return _recipe_with_run_settings(TrainConfig, "train", path, {name: name for name in RESUME_NEUTRAL})


def load_sensor_config(path: str | os.PathLike = "params.yaml") -> SensorConfig:
    """``params.yaml: sensor`` with ``train_run.sensor_log_every``; raises ConfigError as :func:`load_train_config`."""
    return _recipe_with_run_settings(SensorConfig, "sensor", path, SENSOR_RUN_SETTINGS)


def _recipe_with_run_settings(cls: type[T], section: str, path: str | os.PathLike, run_fields: dict[str, str]) -> T:
    params = read_params(path)
    recipe, run = dict(params.get(section) or {}), dict(params.get(RUN_SECTION) or {})
    for key, field_name in run_fields.items():
        if field_name in recipe:
            raise ConfigError(f"{path}: {section}.{field_name} is a run setting, not part of the recipe: move it to "
                              f"{RUN_SECTION}.{key} (no stage depends on {RUN_SECTION}, so changing it retrains "
                              "nothing)")
    known = set(RESUME_NEUTRAL) | set(SENSOR_RUN_SETTINGS)
    if unknown := sorted(set(run) - known):
        raise ConfigError(f"{path}: {RUN_SECTION}.{unknown[0]} is not a run setting "
                          f"(known: {', '.join(sorted(known))})")
    recipe.update({field_name: run[key] for key, field_name in run_fields.items() if key in run})
    return from_mapping(cls, recipe, section)
