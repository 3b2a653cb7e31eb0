"""The one restore path: a model and how it is steered (a task, a prompt or mixture, the sensor's decision, or the
task's parameters for a non-blind expert) -> restored images, in tiles or in one pass.

Serving, ``prompt-restore``, the benchmark, the training previews and the sensor benchmark all call
:func:`restore`; nothing else calls a restorer on an image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from pip_model.evaluation.tiling import restore_tiled
from pip_model.networks.registry import ModelSpec, Steering, spec_of_model
from pip_model.networks.sensor import nothing_found
from pip_model.tasks import model_classes, remap_weights


class SteeringError(ValueError):
    """A model asked to restore without what its call needs (a prompt, the task), or a task it does not cover."""


@dataclass
class Restored:
    """What :func:`restore` did.

    Attributes:
        images: the restored images (those left alone are the inputs, unchanged).
        weights: the prompt weights: those each image was restored under (a prompted model), or the sensor's
            (which a model without prompts does not take), else None.
        scores: the sensor's per-class scores, when the sensor scored the images.
        left_alone: the images the sensor found nothing to restore in (or nothing the model has a prompt for).
        classes: the classes of ``weights``: the prompted model's, else the sensor's.
        sensor_classes: the classes of ``scores``: the sensor's.

    Shape:
        images (B, 3, H, W), weights (B, len(classes)), scores (B, len(sensor_classes)), left_alone (B,)
    """

    images: torch.Tensor
    weights: torch.Tensor | None
    scores: torch.Tensor | None
    left_alone: torch.Tensor
    classes: tuple[str, ...] = ()
    sensor_classes: tuple[str, ...] = ()


@torch.no_grad()
def restore(
    model: nn.Module, images: torch.Tensor, *, spec: ModelSpec | None = None, tasks: Sequence[str] | None = None,
    prompt: torch.Tensor | None = None, sensor: nn.Module | None = None, tile: int = 0, overlap: int = 32,
    tile_batch: int = 4, on_tile: Callable[[int, int], None] | None = None, deadline: float | None = None,
) -> Restored:
    """Restores a batch with ``model``, each image on its own (in tiles above ``tile`` pixels a side).

    A prompted model takes ``prompt`` (weights over its classes (C,) or (B, C): a class, a mixture), else the
    sensor's prompt of each image (moved onto the model's classes; one the model has no prompt for is dropped),
    else each task's true prompt. With the sensor, an image it finds nothing in comes
    back as it is, whatever the model. A non-blind expert takes its tasks' parameters (``tasks`` required); a blind
    model takes nothing, and a prompt given to it changes nothing.

    Args:
        model: a restorer (its spec is found by its registry name unless ``spec`` is given).
        images: degraded images in [0, 1], on any device.
        tasks: each image's task (or one for all).
        prompt: fixed prompt weights.
        sensor: the degradation sensor, to steer blind.
        tile, overlap, tile_batch, on_tile, deadline: see :func:`~pip_model.evaluation.tiling.restore_tiled`.

    Raises:
        SteeringError: a prompted model with nothing to steer it, or a non-blind one without a task it covers.
        TimeoutError: ``deadline`` passed.

    Shape:
        (B, 3, H, W) -> Restored with images (B, 3, H, W)
    """
    spec = spec or spec_of_model(model)
    count = images.shape[0]
    tasks = list(tasks) * count if tasks is not None and len(tasks) == 1 else tasks
    if tasks is not None and len(tasks) != count:
        raise SteeringError(f"{len(tasks)} tasks for {count} images")
    weights = scores = None
    left_alone = torch.zeros(count, dtype=torch.bool)
    sensor_classes = model_classes(sensor) if sensor is not None else ()
    classes = model_classes(model) if spec.call == "prompted" else sensor_classes
    if sensor is not None and prompt is None:  # what it finds steers a prompted model; nothing found, any model
        scores, weights, left_alone = _sensed(sensor, images, classes if spec.call == "prompted" else None)
    steering: Steering = None
    if spec.call == "prompted":
        if prompt is not None:
            weights = (prompt if prompt.dim() == 2 else prompt[None]).float().cpu().expand(count, -1)
            if weights.shape[-1] != len(classes):
                raise SteeringError(f"prompt weights over {weights.shape[-1]} classes for a model of {len(classes)} "
                                    f"({', '.join(classes)})")
            left_alone = nothing_found(weights)  # all-zero weights: nothing named to restore
        elif sensor is None and tasks is not None:
            try:
                weights = spec.steering(tasks, classes=classes)
            except ValueError as error:  # a task of a class the model lacks
                raise SteeringError(str(error)) from None
        elif sensor is None:
            raise SteeringError("this model takes a prompt: name the task, a class, a mixture, or steer it blind "
                                "with the sensor")
        steering = weights  # the prompt's, the sensor's or the tasks' true prompts
    elif spec.call == "non_blind":
        if tasks is None:
            raise SteeringError("this task expert needs the task of each image (it takes "
                                f"{', '.join(spec.conditions)})")
        uncovered = sorted({task for task in tasks if not spec.covers(task)})
        if uncovered:
            raise SteeringError(f"this task expert covers {', '.join(spec.tasks)}, not {', '.join(uncovered)}")
        steering = spec.steering(tasks)
    restored = []
    for index in range(count):
        image = images[index : index + 1]
        if bool(left_alone[index]):
            restored.append(image.clone())
            continue
        one = (steering[index : index + 1] if isinstance(steering, torch.Tensor)
               else {name: value[index : index + 1] for name, value in steering.items()} if steering is not None
               else None)
        restored.append(restore_tiled(model, image, one, tile=tile, overlap=overlap, tile_batch=tile_batch,
                                      on_tile=on_tile, deadline=deadline))
    return Restored(images=torch.cat(restored), weights=weights, scores=scores, left_alone=left_alone,
                    classes=classes, sensor_classes=sensor_classes)


def _sensed(sensor: nn.Module, images: torch.Tensor, classes: tuple[str, ...] | None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sensor's scores, its prompt (moved onto ``classes``, a prompted model's, when given) and the images it
    finds nothing to restore in (nothing ``classes`` holds, with them).

    Shape:
        (B, 3, H, W) -> (B, len(sensor classes)), (B, len(classes)), (B,)
    """
    scores, weights = sensor.prompt(images.to(next(sensor.parameters()).device))
    if classes is not None:  # a row left with nothing the model knows comes back all zero
        weights = remap_weights(weights, model_classes(sensor), classes)
    if weights.is_meta:  # shapes only (a meta device): no scores to find nothing in
        return scores, weights, torch.zeros(images.shape[0], dtype=torch.bool)
    scores, weights = scores.cpu(), weights.cpu()
    return scores, weights, nothing_found(weights)
