"""The ``evaluate`` stage's logic: tiled restoration, metrics, and the per-task benchmark table.

PSNR and SSIM come from Kornia (``kornia.metrics``, SSIM with an 11x11 Gaussian window) or,
with ``evaluate.metrics: paper``, from scikit-image at its defaults (SSIM with a 7x7 uniform
window), as the published PIP and PromptIR test code computes them; on RGB in [0, 1] or on
the Y channel of YCbCr, as papers report both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import kornia
import numpy as np
import pandas as pd
import torch
from torch import nn

from pip_model.checkpoints import load_model_file
from pip_model.classical import classical_restore
from pip_model.data import to_array, to_tensor
from pip_model.image_files import read_image
from pip_model.sensor import PRESENT_SCORE, nothing_found, restore_blind
from pip_model.tasks import COMPOSITE_TASKS, DEGRADATION_CLASSES, NUM_CLASSES, task_classes, task_prompt


@dataclass(frozen=True)
class EvaluateConfig:
    """``params.yaml: evaluate``.

    Attributes:
        tile: side of the tiles for images larger than this (bounded memory).
        overlap: overlap of neighbouring tiles, blended linearly.
        tile_batch: tiles restored in one forward pass (more keeps a GPU busier, at more memory).
        y_channel: compute PSNR/SSIM on the Y channel instead of RGB.
        metrics: ``kornia`` (11x11 Gaussian SSIM) or ``paper`` (scikit-image's PSNR and SSIM at their defaults,
            as the published test code: compare with the paper's tables only this way).
        classical: also evaluate the classical restorers.
        examples_per_task: restored examples saved per task and model.
    """

    tile: int = 256
    overlap: int = 32
    tile_batch: int = 4
    y_channel: bool = False
    metrics: Literal["kornia", "paper"] = "kornia"
    classical: bool = True
    examples_per_task: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.tile // 2:
            raise ValueError(f"evaluate.overlap ({self.overlap}) must be >= 0 and under half of tile ({self.tile})")
        if self.tile_batch < 1:
            raise ValueError(f"evaluate.tile_batch must be >= 1, got {self.tile_batch}")


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _blend_weights(length: int, overlap: int, fade_in: bool, fade_out: bool) -> torch.Tensor:
    """Ones, with linear ramps over the overlaps shared with a neighbouring tile."""
    weights = torch.ones(length)
    if overlap:
        ramp = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
        if fade_in:
            weights[:overlap] = ramp
        if fade_out:
            weights[-overlap:] = ramp.flip(0)
    return weights


def tile_windows(height: int, width: int, tile: int, overlap: int) -> Iterator[tuple[int, int]]:
    """Top-left corners of the tiles covering an image (the last ones flush with the edges)."""
    stride = tile - overlap
    for top in _starts(height, tile, stride):
        for left in _starts(width, tile, stride):
            yield top, left


@torch.no_grad()
def restore_tiled(
    model: nn.Module, image: torch.Tensor, degradation: torch.Tensor | None, *, tile: int, overlap: int,
    on_tile: Callable[[int, int], None] | None = None, tile_batch: int = 4, deadline: float | None = None,
) -> torch.Tensor:
    """Restores one image tile by tile on the model's device, blending overlaps with linear ramps.

    Peak memory grows with ``tile`` and ``tile_batch``, not with the image: only the output
    and weight sums are image-sized. Tiles run ``tile_batch`` at a time and are blended on the
    model's device; the result comes back to the image's device once.

    Args:
        model: a restorer.
        image: the degraded image, (1, 3, H, W), on any device.
        degradation: what the model's ``degradation`` argument takes, for one image.
        tile: tile side; images no larger are restored in one pass.
        overlap: pixels shared by neighbouring tiles.
        on_tile: called with (done, total) after each batch of tiles, for progress.
        tile_batch: tiles restored in one forward pass.
        deadline: a ``time.monotonic()`` past which no further batch of tiles starts.

    Raises:
        TimeoutError: the deadline passed (the work stops there, within one batch of tiles).

    Shape:
        (1, 3, H, W) -> (1, 3, H, W)
    """
    height, width = image.shape[-2:]
    device = next(model.parameters()).device
    source = image.to(device)
    if height <= tile and width <= tile:
        return model(source, degradation).to(image.device)
    output = torch.zeros(1, 3, height, width, device=device)
    weights = torch.zeros(1, 1, height, width, device=device)
    windows = list(tile_windows(height, width, tile, overlap))
    for first in range(0, len(windows), tile_batch):
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"stopped after {first} of {len(windows)} tiles: past the deadline")
        group = windows[first : first + tile_batch]
        patches = torch.cat([source[..., top : top + tile, left : left + tile] for top, left in group])
        prompts = None if degradation is None else degradation.expand(len(group), *degradation.shape[1:])
        restored = model(patches, prompts)
        ph, pw = patches.shape[-2:]  # every tile has the same size: the last ones sit flush with the edges
        for (top, left), patch in zip(group, restored):
            rows = _blend_weights(ph, overlap, fade_in=top > 0, fade_out=top + ph < height)
            columns = _blend_weights(pw, overlap, fade_in=left > 0, fade_out=left + pw < width)
            weight = (rows[:, None] * columns[None, :]).to(device)[None, None]
            output[..., top : top + ph, left : left + pw] += patch * weight
            weights[..., top : top + ph, left : left + pw] += weight
        if on_tile is not None:
            on_tile(first + len(group), len(windows))
    return (output / weights).to(image.device)


def image_metrics(
    restored: torch.Tensor, clean: torch.Tensor, *, y_channel: bool = False,
    metrics: Literal["kornia", "paper"] = "kornia",
) -> tuple[float, float]:
    """PSNR (dB) and SSIM of one image pair, on RGB or on Y, by Kornia or as the published test code.

    ``paper`` is scikit-image's ``peak_signal_noise_ratio`` and ``structural_similarity`` at their
    defaults (7x7 uniform window, mean over channels) with ``data_range=1``.

    Shape:
        (1, 3, H, W), (1, 3, H, W) -> (psnr, ssim)
    """
    restored, clean = restored.clamp(0, 1).float(), clean.clamp(0, 1).float()
    if y_channel:
        restored, clean = kornia.color.rgb_to_ycbcr(restored)[:, :1], kornia.color.rgb_to_ycbcr(clean)[:, :1]
    if metrics == "paper":
        from skimage.metrics import peak_signal_noise_ratio, structural_similarity

        ours, theirs = to_array(restored[0]).astype(np.float64), to_array(clean[0]).astype(np.float64)
        return (float(peak_signal_noise_ratio(theirs, ours, data_range=1)),
                float(structural_similarity(theirs, ours, data_range=1, channel_axis=-1)))
    psnr = float(kornia.metrics.psnr(restored, clean, 1.0))
    ssim = float(kornia.metrics.ssim(restored, clean, 11).mean())
    return psnr, ssim


@dataclass
class Contender:
    """Something evaluated on the benchmark: a model (optionally blind, with a sensor), or a baseline.

    Attributes:
        name: row name in the results.
        restore: (degraded (1, 3, H, W), task) -> restored (1, 3, H, W).
        run_id: MLflow run of the model, if any.
        model: the network, for a model's contenders.
    """

    name: str
    restore: Callable[[torch.Tensor, str], torch.Tensor]
    run_id: str = ""
    model: nn.Module | None = None


def model_contender(name: str, model: nn.Module, config: EvaluateConfig, *, run_id: str = "",
                    sensor: nn.Module | None = None, prompt: torch.Tensor | None = None) -> Contender:
    """A trained restorer given the true prompt of each task; or the prompt the sensor makes of each image when
    ``sensor`` is set; or always ``prompt`` (weights (NUM_CLASSES,)) when that is set."""

    def restore(degraded: torch.Tensor, task: str) -> torch.Tensor:
        if not getattr(model, "uses_prompts", False):
            degradation = None
        elif sensor is not None:
            with torch.no_grad():
                weights = sensor.prompt(degraded.to(next(sensor.parameters()).device))[1]
            return restore_blind(lambda images, degradation: restore_tiled(
                model, images, degradation, tile=config.tile, overlap=config.overlap, tile_batch=config.tile_batch),
                degraded, weights)
        else:
            degradation = (prompt if prompt is not None else task_prompt(task))[None]  # copied asynchronously
        return restore_tiled(model, degraded, degradation, tile=config.tile, overlap=config.overlap,
                             tile_batch=config.tile_batch)

    return Contender(name=name, restore=restore, run_id=run_id, model=model)


def load_contenders(config: EvaluateConfig, model_paths: Sequence[Path], *, sensor_path: Path | None,
                    device: str) -> tuple[list[Contender], nn.Module | None]:
    """The baselines, each model file's model on ``device`` and, with a sensor, its blind twin; and the sensor."""
    contenders = baseline_contenders(config)
    sensor = (load_model_file(sensor_path)[0].to(device) if sensor_path is not None and sensor_path.is_file()
              else None)
    for path in model_paths:
        model, metadata = load_model_file(path)
        model, name = model.to(device), metadata["model_name"]
        contenders.append(model_contender(name, model, config, run_id=metadata.get("run_id", "")))
        if sensor is not None and model.uses_prompts:
            contenders.append(model_contender(f"{name}_blind", model, config, sensor=sensor))
    return contenders, sensor


def prompt_contenders(name: str, model: nn.Module, config: EvaluateConfig) -> list[Contender]:
    """The model under every fixed prompt, whatever the task: each class's one-hot prompt (``<name>@rain``...)
    and the uniform blend (``<name>@uniform``), the prompt of a sensor that knows nothing. On single tasks they
    show what a wrong or blended prompt costs; on composites, what each single true prompt gives."""
    prompts = {class_name: torch.eye(NUM_CLASSES)[class_id] for class_id, class_name in enumerate(DEGRADATION_CLASSES)}
    prompts["uniform"] = torch.full((NUM_CLASSES,), 1.0 / NUM_CLASSES)
    return [model_contender(f"{name}@{prompt_name}", model, config, prompt=prompt)
            for prompt_name, prompt in prompts.items()]


def baseline_contenders(config: EvaluateConfig) -> list[Contender]:
    """``input`` (the degraded image itself) and, if enabled, ``classical`` (chained on composites)."""
    contenders = [Contender("input", lambda degraded, task: degraded)]
    if config.classical:
        contenders.append(Contender(
            "classical", lambda degraded, task: to_tensor(classical_restore(to_array(degraded[0]), task))[None]))
    return contenders


@dataclass
class Evaluation:
    """Per-image rows (model, task, id, psnr, ssim) and the nested per-task means."""

    per_image: pd.DataFrame
    metrics: dict[str, dict[str, dict[str, float]]]
    examples: dict[tuple[str, str], list[tuple[str, np.ndarray]]]


@dataclass(frozen=True)
class BenchmarkPair:
    """One benchmark pair: its manifest row; its images are read from disk when asked for.

    Only the pair being evaluated is in memory, so a benchmark of full-resolution test sets
    (GoPro's alone is about 24 GB as float32) costs no more RAM than its largest image.

    Shape:
        degraded, clean: (1, 3, H, W), values in [0, 1]
    """

    row: Any
    benchmark_dir: Path

    @property
    def degraded(self) -> torch.Tensor:
        return to_tensor(read_image(self.benchmark_dir / self.row.degraded_path).rgb)[None]

    @property
    def clean(self) -> torch.Tensor:
        return to_tensor(read_image(self.benchmark_dir / self.row.clean_path).rgb)[None]


def load_benchmark(benchmark_dir: Path) -> list[BenchmarkPair]:
    """Every pair that the ``degrade`` stage's ``manifest.csv`` lists (its images are read when used)."""
    manifest = pd.read_csv(benchmark_dir / "manifest.csv")
    return [BenchmarkPair(row, benchmark_dir) for row in manifest.itertuples()]


def evaluate(
    pairs: Sequence[BenchmarkPair], contenders: list[Contender], config: EvaluateConfig,
    progress: Callable[[str], None] = print,
) -> Evaluation:
    """Runs every contender on every benchmark pair and aggregates PSNR/SSIM per task."""
    rows, examples = [], {}
    for contender in contenders:
        progress(f"evaluate: {contender.name} on {len(pairs)} pairs")
        for pair in pairs:
            row = pair.row
            restored = contender.restore(pair.degraded, row.task).clamp(0, 1)
            psnr, ssim = image_metrics(restored, pair.clean, y_channel=config.y_channel, metrics=config.metrics)
            rows.append({"model": contender.name, "task": row.task, "id": row.id, "source": row.source,
                         "psnr": psnr, "ssim": ssim})
            saved = examples.setdefault((contender.name, row.task), [])
            if len(saved) < config.examples_per_task:
                saved.append((row.id, to_array(restored[0])))
    per_image = pd.DataFrame(rows, columns=["model", "task", "id", "source", "psnr", "ssim"])
    return Evaluation(per_image=per_image, metrics=summarise(per_image), examples=examples)


def summarise(per_image: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """``{model: {task: {"psnr": mean, "ssim": mean}}}``, in the benchmark's task order."""
    means = per_image.groupby(["model", "task"], sort=False)[["psnr", "ssim"]].mean()
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    for (model, task), values in means.iterrows():
        metrics.setdefault(model, {})[task] = {"psnr": round(float(values["psnr"]), 4),
                                               "ssim": round(float(values["ssim"]), 4)}
    return metrics


def run_metrics(per_task: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """MLflow metrics ``eval/<task>/psnr``, ``eval/<task>/ssim`` and ``eval/mean/...`` (the UI groups charts by
    the part before the first ``/``)."""
    flat = {f"eval/{task}/{name}": values[name] for task, values in per_task.items() for name in ("psnr", "ssim")}
    flat |= {f"eval/mean/{name}": value for name, value in mean_scores(per_task).items()}
    return flat


def mean_scores(per_task: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean PSNR (dB, 2 decimals) and SSIM (4 decimals) over the tasks of one model."""
    return {name: round(float(np.mean([values[name] for values in per_task.values()])), digits)
            for name, digits in (("psnr", 2), ("ssim", 4))}


@dataclass
class SensorReport:
    """How well the degradation sensor reads the benchmark.

    Attributes:
        accuracy: share of single-task images whose top-scoring class is theirs.
        confusion: single-task images, true class x top-scoring class (NUM_CLASSES, NUM_CLASSES).
        per_class: accuracy per true class (None for a class the benchmark lacks).
        composites: per composite task, the share of its images whose found classes (scoring at least
            PRESENT_SCORE) are exactly its own.
        clean_kept: share of the benchmark's clean crops in which it finds nothing to restore (None without any).
        decisions: one row per image read: task (``clean`` for a clean crop), pair id, the classes found, whether
            it was left alone, and every class's score.
    """

    accuracy: float
    confusion: np.ndarray
    per_class: dict[str, float | None]
    composites: dict[str, float]
    clean_kept: float | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def headline(self) -> dict[str, float]:
        """The figures ``dvc metrics show`` prints: accuracy, composites found exactly, clean crops left alone."""
        figures = {"accuracy": round(self.accuracy, 3)}
        if self.composites:
            figures["composites"] = round(float(np.mean(list(self.composites.values()))), 3)
        if self.clean_kept is not None:
            figures["clean_kept"] = round(self.clean_kept, 3)
        return figures

    def as_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "per_class": self.per_class, "composites": self.composites,
                "clean_kept": self.clean_kept, "confusion": self.confusion.tolist()}

    def summary(self) -> str:
        parts = [f"accuracy {self.accuracy:.3f}", "per class " + ", ".join(
            f"{name} {value:.2f}" for name, value in self.per_class.items() if value is not None)]
        if self.composites:
            parts.append("composites " + ", ".join(f"{task} {value:.2f}" for task, value in self.composites.items()))
        if self.clean_kept is not None:
            parts.append(f"clean crops left alone {self.clean_kept:.2f}")
        return "; ".join(parts)


@torch.no_grad()
def sensor_report(pairs: Sequence[BenchmarkPair], sensor: nn.Module) -> SensorReport:
    """The degradation sensor's accuracy on the benchmark's single tasks, its confusion matrix, how often it finds
    exactly the classes of each composite, and how often it leaves a clean crop alone (each clean crop once)."""
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=int)
    composite_hits: dict[str, list[bool]] = {}
    decisions, clean_seen, kept = [], set(), []
    device = next(sensor.parameters()).device

    def decide(image: torch.Tensor, task: str, pair_id: str) -> tuple[torch.Tensor, set[int], bool]:
        scores, weights = (tensor[0].cpu() for tensor in sensor.prompt(image.to(device)))
        found = {int(class_id) for class_id in torch.nonzero(scores >= PRESENT_SCORE).flatten()}
        alone = bool(nothing_found(weights[None])[0])
        decisions.append({"task": task, "id": pair_id, "left_alone": alone,
                          "found": "+".join(DEGRADATION_CLASSES[c] for c in sorted(found)),
                          **{name: round(float(score), 4) for name, score in zip(DEGRADATION_CLASSES, scores)}})
        return scores, found, alone

    for pair in pairs:
        scores, found, _ = decide(pair.degraded, pair.row.task, pair.row.id)
        classes = task_classes(pair.row.task)
        if pair.row.task in COMPOSITE_TASKS:
            composite_hits.setdefault(pair.row.task, []).append(found == set(classes))
        else:
            confusion[classes[0], int(scores.argmax())] += 1
        if pair.row.clean_path not in clean_seen:
            clean_seen.add(pair.row.clean_path)
            kept.append(decide(pair.clean, "clean", pair.row.clean_path)[2])
    totals = confusion.sum(axis=1)
    return SensorReport(
        accuracy=float(np.trace(confusion) / max(confusion.sum(), 1)), confusion=confusion,
        per_class={name: float(confusion[i, i] / totals[i]) if totals[i] else None
                   for i, name in enumerate(DEGRADATION_CLASSES)},
        composites={task: float(np.mean(hits)) for task, hits in composite_hits.items()},
        clean_kept=float(np.mean(kept)) if kept else None, decisions=decisions)
