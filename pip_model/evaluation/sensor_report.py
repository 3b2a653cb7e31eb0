"""How well the sensor names what degraded each benchmark image: accuracy per class and composite, clean crops left
alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from pip_model.evaluation.benchmark import BenchmarkPair
from pip_model.networks.sensor import PRESENT_SCORE, nothing_found
from pip_model.tasks import PAPER_CLASSES, model_classes, parse_task


@dataclass
class SensorReport:
    """How well the degradation sensor reads the benchmark.

    Attributes:
        accuracy: share of single-task images whose top-scoring class is theirs.
        confusion: single-task images, true class x top-scoring class (C, C) over ``classes``.
        per_class: accuracy per true class (None for a class the benchmark lacks).
        composites: per composite task, the share of its images whose found classes (scoring at least
            PRESENT_SCORE, 0.6) are exactly its own.
        clean_kept: share of the benchmark's clean crops in which it finds nothing to restore (None without any).
        decisions: one row per image read: task (``clean`` for a clean crop), pair id, the classes found, whether
            it was left alone, and every class's score.
        classes: the sensor's classes, the order of ``confusion``; a task of a class it lacks is not in
            ``confusion`` (it cannot name it).
    """

    accuracy: float
    confusion: np.ndarray
    per_class: dict[str, float | None]
    composites: dict[str, float]
    clean_kept: float | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    classes: tuple[str, ...] = PAPER_CLASSES

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
                "clean_kept": self.clean_kept, "confusion": self.confusion.tolist(), "classes": list(self.classes)}

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
    classes = model_classes(sensor)
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    composite_hits: dict[str, list[bool]] = {}
    decisions, clean_seen, kept = [], set(), []
    device = next(sensor.parameters()).device

    def decide(image: torch.Tensor, task: str, pair_id: str) -> tuple[torch.Tensor, set[str], bool]:
        scores, weights = (tensor[0].cpu() for tensor in sensor.prompt(image.to(device)))
        found = {classes[int(index)] for index in torch.nonzero(scores >= PRESENT_SCORE).flatten()}
        alone = bool(nothing_found(weights[None])[0])
        decisions.append({"task": task, "id": pair_id, "left_alone": alone,
                          "found": "+".join(name for name in classes if name in found),
                          **{name: round(float(score), 4) for name, score in zip(classes, scores)}})
        return scores, found, alone

    for pair in pairs:
        scores, found, _ = decide(pair.degraded, pair.row.task, pair.row.id)
        task = parse_task(pair.row.task)
        if task.is_composite:
            composite_hits.setdefault(task.name, []).append(found == set(task.classes))
        elif task.classes[0] in classes:
            confusion[classes.index(task.classes[0]), int(scores.argmax())] += 1
        if pair.row.clean_path not in clean_seen:
            clean_seen.add(pair.row.clean_path)
            kept.append(decide(pair.clean, "clean", pair.row.clean_path)[2])
    totals = confusion.sum(axis=1)
    return SensorReport(
        accuracy=float(np.trace(confusion) / max(confusion.sum(), 1)), confusion=confusion,
        per_class={name: float(confusion[i, i] / totals[i]) if totals[i] else None
                   for i, name in enumerate(classes)},
        composites={task: float(np.mean(hits)) for task, hits in composite_hits.items()},
        clean_kept=float(np.mean(kept)) if kept else None, decisions=decisions, classes=classes)

