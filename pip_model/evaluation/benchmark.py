"""The ``evaluate`` stage's logic: every contender (the trained models, PIP under each prompt and blind, the input
and the classical baselines) on the benchmark, and the per-task table.

Images are restored in tiles (:mod:`pip_model.evaluation.tiling`), or each in one pass with ``evaluate.tile: 0``
after a centre crop to a multiple of ``evaluate.crop_multiple`` (the published test path: PromptIR's test.py
crops to a multiple of 16 and restores the whole image at once), and scored by
:mod:`pip_model.evaluation.metrics` (Kornia's PSNR/SSIM, or the paper's with ``evaluate.metrics: paper``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from pip_model.data.images import centre_crop, read_degraded, to_array, to_tensor
from pip_model.evaluation.classical import classical_restore
from pip_model.evaluation.examples import Example, example_ids
from pip_model.evaluation.inference import restore
from pip_model.evaluation.metrics import image_metrics
from pip_model.evaluation.tiling import for_inference
from pip_model.image_files import read_image
from pip_model.networks.checkpoints import load_model_file
from pip_model.networks.reference import load_model_or_published
from pip_model.networks.registry import spec_of_model
from pip_model.tasks import ALL_TASKS, covers, model_classes, parse_task


@dataclass(frozen=True)
class EvaluateConfig:
    """``params.yaml: evaluate``.

    Attributes:
        tile: side of the tiles for images larger than this (bounded memory); 0 restores every image in one pass,
            as the published test code does (an image that does not fit on the device stops the stage, naming it).
        overlap: overlap of neighbouring tiles, blended linearly.
        tile_batch: tiles restored in one forward pass (more keeps a GPU busier, at more memory).
        y_channel: compute PSNR/SSIM on the Y channel instead of RGB.
        metrics: ``kornia`` (11x11 Gaussian SSIM) or ``paper`` (scikit-image's PSNR and SSIM at their defaults,
            as the published test code: compare with the paper's tables only this way).
        classical: also evaluate the classical restorers.
        examples_per_task: restored examples kept per task and contender (test pairs first), which the report
            shows.
        crop_multiple: centre-crop every degraded and clean image to sides that are multiples of this before it is
            restored and scored, as PromptIR's ``crop_img(image, base=16)``; 0 keeps whole images.
        channels_last: restore with channels-last weights and tiles where that computes the same function
            (:func:`~pip_model.evaluation.tiling.for_inference`: faster on the CPU; PIP stays in the default layout).
    """

    tile: int = 256
    overlap: int = 32
    tile_batch: int = 4
    y_channel: bool = False
    metrics: Literal["kornia", "paper", "onerestore"] = "kornia"
    classical: bool = True
    examples_per_task: int = 1
    crop_multiple: int = 0
    channels_last: bool = True

    def __post_init__(self) -> None:
        if self.tile < 0 or self.crop_multiple < 0:
            raise ValueError(f"evaluate.tile ({self.tile}) and evaluate.crop_multiple ({self.crop_multiple}) must be "
                             ">= 0 (0: one pass, whole images)")
        if self.tile and not 0 <= self.overlap < self.tile // 2:
            raise ValueError(f"evaluate.overlap ({self.overlap}) must be >= 0 and under half of tile ({self.tile})")
        if self.tile_batch < 1:
            raise ValueError(f"evaluate.tile_batch must be >= 1, got {self.tile_batch}")


@dataclass
class Contender:
    """Something evaluated on the benchmark: a model (optionally blind, with a sensor), or a baseline.

    Attributes:
        name: row name in the results.
        restore: (degraded (1, 3, H, W), task) -> restored (1, 3, H, W).
        run_id: MLflow run of the model, if any.
        model: the network, for a model's contenders.
        tasks: the tasks it restores (a task expert's); empty for all.
        classes: the prompt classes it restores with the true prompt (a prompted model's): a task of another class
            has no prompt in it and is not scored; empty for any.
    """

    name: str
    restore: Callable[[torch.Tensor, str], torch.Tensor]
    run_id: str = ""
    model: nn.Module | None = None
    tasks: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()

    def covers(self, task: str) -> bool:
        """Whether it is scored on ``task`` (a composite: every one of its single tasks)."""
        return covers(self.tasks, task) and (not self.classes or set(parse_task(task).classes) <= set(self.classes))


def model_contender(name: str, model: nn.Module, config: EvaluateConfig, *, run_id: str = "",
                    sensor: nn.Module | None = None, prompt: torch.Tensor | None = None) -> Contender:
    """A trained restorer given the true prompt of each task; or the prompt the sensor makes of each image when
    ``sensor`` is set; or always ``prompt`` (weights over its classes) when that is set."""

    spec = spec_of_model(model)

    def restore_one(degraded: torch.Tensor, task: str) -> torch.Tensor:
        return restore(model, degraded, spec=spec, tasks=[task], prompt=prompt, sensor=sensor, tile=config.tile,
                       overlap=config.overlap, tile_batch=config.tile_batch).images

    true_prompts = spec.call == "prompted" and sensor is None and prompt is None
    return Contender(name=name, restore=restore_one, run_id=run_id, model=model, tasks=spec.tasks,
                     classes=model_classes(model) if true_prompts else ())


@dataclass(frozen=True, kw_only=True)
class ModelSource:
    """A model to evaluate: a model file of this project, or a published checkpoint (PIP-Restormer's, PromptIR's).

    Attributes:
        path: the file.
        name: the registry name the file must hold (``promptir``), or "" for whatever it holds; either way the
            results' row is named by the registry name.
    """

    path: Path
    name: str = ""

    @classmethod
    def parse(cls, text: str) -> ModelSource:
        """``FILE`` or ``NAME=FILE`` (a file whose own name holds ``=`` is taken whole when it exists)."""
        name, sign, path = text.partition("=")
        if not sign or Path(text).exists() or not name or "/" in name:
            return cls(path=Path(text))
        return cls(path=Path(path), name=name)


BLIND_SUFFIX = "_blind"  # a PIP model steered by the sensor: <model>_blind


def load_contenders(config: EvaluateConfig, model_paths: Sequence[Path | ModelSource], *, sensor_path: Path | None,
                    device: str) -> tuple[list[Contender], nn.Module | None]:
    """The baselines, each model file's (or published checkpoint's) model on ``device`` and, with a sensor, its
    blind twin; and the sensor.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a file is neither a model file nor a published checkpoint, holds another model than its
            ``NAME=``, or two files hold the same model (their rows would be one).
    """
    contenders = baseline_contenders(config)
    sensor = (load_model_file(sensor_path)[0].to(device) if sensor_path is not None and sensor_path.is_file()
              else None)
    files: dict[str, Path] = {}
    for source in model_paths:
        source = source if isinstance(source, ModelSource) else ModelSource(path=Path(source))
        model, metadata = load_model_or_published(source.path, expect=source.name or None)
        model, name = for_inference(model.to(device), channels_last=config.channels_last), metadata["model_name"]
        if name in files:
            raise ValueError(f"{files[name]} and {source.path} both hold {name}: evaluate them in separate runs")
        files[name] = source.path
        contenders.append(model_contender(name, model, config, run_id=metadata.get("run_id", "")))
        if sensor is not None and spec_of_model(model).uses_prompts:
            contenders.append(model_contender(f"{name}{BLIND_SUFFIX}", model, config, sensor=sensor))
    return contenders, sensor


EXPERTS = "experts"


def with_experts(contenders: list[Contender]) -> list[Contender]:
    """``contenders`` and, when task experts are among them, the row ``experts``: each task restored by the expert
    that covers it (the first by name when several do), which is what replacing one all-in-one model by a set of
    task-specific ones gives."""
    experts = sorted((c for c in contenders if c.model is not None and spec_of_model(c.model).role == "expert"),
                     key=lambda contender: contender.name)
    if not experts:
        return contenders

    def restore_by_task(degraded: torch.Tensor, task: str) -> torch.Tensor:
        return next(expert for expert in experts if expert.covers(task)).restore(degraded, task)

    covered = tuple(dict.fromkeys(task for expert in experts for task in (expert.tasks or ALL_TASKS)))
    return [*contenders, Contender(name=EXPERTS, restore=restore_by_task, tasks=covered)]


def parameter_counts(contenders: Sequence[Contender]) -> dict[str, int]:
    """Each model contender's parameter count and, with task experts, their sum under ``experts``: the storage a
    set of task-specific models takes beside one all-in-one model."""
    models = list({id(c.model): c for c in reversed(contenders) if c.model is not None}.values())[::-1]
    counts = {c.name: sum(p.numel() for p in c.model.parameters()) for c in models}  # a blind twin: its model's
    experts = [c.name for c in models if spec_of_model(c.model).role == "expert"]
    if experts:
        counts[EXPERTS] = sum(counts[name] for name in experts)
    return counts


def prompt_contenders(name: str, model: nn.Module, config: EvaluateConfig) -> list[Contender]:
    """The model under every fixed prompt, whatever the task: each class's one-hot prompt (``<name>@rain``...)
    and the uniform blend (``<name>@uniform``), the prompt of a sensor that knows nothing. On single tasks they
    show what a wrong or blended prompt costs; on composites, what each single true prompt gives."""
    classes = model_classes(model)
    prompts = {class_name: torch.eye(len(classes))[class_id] for class_id, class_name in enumerate(classes)}
    prompts["uniform"] = torch.full((len(classes),), 1.0 / len(classes))
    return [model_contender(f"{name}@{prompt_name}", model, config, prompt=prompt)
            for prompt_name, prompt in prompts.items()]


def baseline_contenders(config: EvaluateConfig) -> list[Contender]:
    """``input`` (the degraded image itself) and, if enabled, ``classical`` (chained on composites)."""
    contenders = [Contender("input", lambda degraded, task: degraded)]
    if config.classical:
        contenders.append(Contender(
            "classical", lambda degraded, task: to_tensor(classical_restore(to_array(degraded[0]), task))[None]))
    return contenders


# The test sets of the paper's tables. A task's results on them (or on pairs that name no test set) are the task's
# own key in the metrics; any other test set of the task (Urban100, Kodak24, Rain100H...) gets a key of its own,
# ``<task>@<test set>``, outside the means, as the paper's tables keep them.
PAPER_TEST_SETS = frozenset({"BSD68", "Rain100L", "SOTS", "GoPro", "LOL"})


def result_key(task: str, test_set: str = "") -> str:
    """The metrics key of a task on a test set: ``denoise_25`` on BSD68 (or no named set), ``denoise_25@Urban100``
    on Urban100."""
    return task if not test_set or test_set in PAPER_TEST_SETS else f"{task}@{test_set}"


def split_key(key: str) -> tuple[str, str]:
    """``denoise_25@Urban100`` -> (``denoise_25``, ``Urban100``); ``denoise_25`` -> (``denoise_25``, "")."""
    task, _, test_set = key.partition("@")
    return task, test_set


@dataclass
class Evaluation:
    """Per-image rows (model, task, test_set, id, source, psnr, ssim), the nested per-key means (see
    :func:`summarise`) and the kept restorations (:mod:`pip_model.evaluation.examples`)."""

    per_image: pd.DataFrame
    metrics: dict[str, dict[str, dict[str, float]]]
    examples: list[Example]


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
        return to_tensor(read_degraded(self.benchmark_dir / self.row.degraded_path))[None]

    @property
    def clean(self) -> torch.Tensor:
        return to_tensor(read_image(self.benchmark_dir / self.row.clean_path).rgb)[None]


def load_benchmark(benchmark_dir: Path) -> list[BenchmarkPair]:
    """Every pair that the ``degrade`` stage's ``manifest.csv`` lists (its images are read when used)."""
    manifest = pd.read_csv(benchmark_dir / "manifest.csv")
    return [BenchmarkPair(row, benchmark_dir) for row in manifest.itertuples()]


class OnePassMemoryError(RuntimeError):
    """An image that does not fit on the device in one pass (``evaluate.tile: 0``); the message names it."""


class CropError(ValueError):
    """A benchmark image with a side under ``evaluate.crop_multiple``; the message names it."""


def _cropped(pair: BenchmarkPair, multiple: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pair's degraded and clean images, each centre-cropped to a multiple of ``multiple`` (0: whole).

    Shape:
        -> (1, 3, H, W), (1, 3, H, W)
    """
    try:
        return centre_crop(pair.degraded, multiple), centre_crop(pair.clean, multiple)
    except ValueError as error:
        raise CropError(f"{pair.row.degraded_path} ({pair.row.id}): {error} (evaluate.crop_multiple)") from None


def _out_of_memory(error: RuntimeError) -> bool:
    """torch.cuda.OutOfMemoryError, or another allocator's RuntimeError saying it ran out."""
    text = str(error).lower()
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in text or "can't allocate" in text


_UNITS = {"b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _memory_needed(error: RuntimeError, device: torch.device | None) -> str:
    """What the failed pass needed, as far as it is known: on CUDA, the memory in use when it failed plus the
    allocation that failed (torch's "Tried to allocate 2.00 GiB"), beside what the device holds."""
    tried = re.search(r"tried to allocate ([\d.]+) ?([kmgt]?i?b)", str(error), re.IGNORECASE)
    asked = float(tried[1]) * _UNITS.get(tried[2].lower(), 1) if tried else 0.0
    if device is not None and device.type == "cuda":
        in_use, total = torch.cuda.memory_allocated(device), torch.cuda.get_device_properties(device).total_memory
        return f"needed at least {(in_use + asked) / 2**30:.2f} GiB, {device} holds {total / 2**30:.2f} GiB"
    return f"needed {asked / 2**30:.2f} GiB more than was free" if tried else "needed more memory than was free"


def _restore(contender: Contender, degraded: torch.Tensor, row: Any, config: EvaluateConfig) -> torch.Tensor:
    """The contender's restoration of one image; in one pass (``tile: 0``), running out of memory stops the
    evaluation with :class:`OnePassMemoryError` naming the image (tiling it instead would not be the published
    test path).

    Shape:
        (1, 3, H, W) -> (1, 3, H, W)
    """
    if config.tile:
        return contender.restore(degraded, row.task)
    try:
        return contender.restore(degraded, row.task)
    except RuntimeError as error:
        if not _out_of_memory(error):
            raise
        device = next(contender.model.parameters()).device if contender.model is not None else None
        height, width = degraded.shape[-2:]
        raise OnePassMemoryError(
            f"{contender.name} on {row.id} ({row.degraded_path}, {height}x{width}) does not fit in one pass "
            f"(evaluate.tile: 0): {_memory_needed(error, device)} ({str(error).split('.')[0].strip()}); run it "
            f"on a larger device, or set evaluate.tile to restore in tiles (not the published test path)") from None


PER_IMAGE_COLUMNS = ["model", "task", "test_set", "id", "source", "height", "width", "psnr", "ssim"]


def evaluate(
    pairs: Sequence[BenchmarkPair], contenders: list[Contender], config: EvaluateConfig,
    progress: Callable[[str], None] = print,
) -> Evaluation:
    """Runs every contender on every benchmark pair and aggregates PSNR/SSIM per task; each per-image row holds
    the height and width the image was evaluated at (after ``evaluate.crop_multiple``).

    Raises:
        OnePassMemoryError: with ``evaluate.tile: 0``, an image does not fit on the device.
        CropError: an image is smaller than ``evaluate.crop_multiple``.
    """
    rows, examples = [], []
    kept = example_ids((pair.row for pair in pairs), config.examples_per_task)
    for contender in contenders:
        progress(f"evaluate: {contender.name} on {len(pairs)} pairs")
        for pair in pairs:
            row = pair.row
            if not contender.covers(row.task):  # a task expert's table cells outside its tasks stay empty
                continue
            degraded, clean = _cropped(pair, config.crop_multiple)
            restored = _restore(contender, degraded, row, config).clamp(0, 1)
            psnr, ssim = image_metrics(restored, clean, y_channel=config.y_channel, metrics=config.metrics)
            rows.append({"model": contender.name, "task": row.task, "test_set": _test_set(row), "id": row.id,
                         "source": row.source, "height": degraded.shape[-2], "width": degraded.shape[-1],
                         "psnr": psnr, "ssim": ssim})
            if row.id in kept:
                examples.append(Example(model=contender.name, task=row.task, id=row.id, psnr=psnr,
                                        degraded_path=row.degraded_path, clean_path=row.clean_path,
                                        image=to_array(restored[0])))
    per_image = pd.DataFrame(rows, columns=PER_IMAGE_COLUMNS)
    return Evaluation(per_image=per_image, metrics=summarise(per_image), examples=examples)


def _test_set(row: Any) -> str:
    """A benchmark row's test set ("" when the benchmark names none)."""
    name = getattr(row, "test_set", "")
    return name if isinstance(name, str) else ""  # an empty cell reads as NaN


def summarise(per_image: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """``{model: {key: {"psnr": mean, "ssim": mean}}}``, in the benchmark's order: one key per task
    (:func:`result_key`: on the paper's test sets, or with no named test set) and one per task and other test set
    (``denoise_25@Urban100``)."""
    test_sets = per_image["test_set"].fillna("") if "test_set" in per_image else pd.Series("", index=per_image.index)
    keys = [result_key(task, test_set) for task, test_set in zip(per_image["task"], test_sets)]
    means = per_image.assign(key=keys).groupby(["model", "key"], sort=False)[["psnr", "ssim"]].mean()
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    for (model, key), values in means.iterrows():
        metrics.setdefault(model, {})[key] = {"psnr": round(float(values["psnr"]), 4),
                                              "ssim": round(float(values["ssim"]), 4)}
    return metrics


def run_metrics(per_task: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """MLflow metrics ``eval/<task>/psnr``, ``eval/<task>/ssim`` (``eval/<task>/<test set>/...`` for a task's other
    test sets: MLflow names take no ``@``) and ``eval/mean/...`` (the UI groups charts by the part before the first
    ``/``)."""
    flat = {f"eval/{key.replace('@', '/')}/{name}": values[name] for key, values in per_task.items()
            for name in ("psnr", "ssim")}
    flat |= {f"eval/mean/{name}": value for name, value in mean_scores(per_task).items()}
    return flat


def mean_scores(per_task: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean PSNR (dB, 2 decimals) and SSIM (4 decimals) over the tasks of one model: over the keys of the paper's
    test sets (and unnamed ones), as the paper's average, when there are any; else over every key."""
    keys = [key for key in per_task if not split_key(key)[1]] or list(per_task)
    return {name: round(float(np.mean([per_task[key][name] for key in keys])), digits)
            for name, digits in (("psnr", 2), ("ssim", 4))}

