"""Blind restoration on photographs that no training, test or benchmark uses.

Installed packages ship photographs that the corpus (``pip_model.data.corpus.SKIMAGE_PHOTOS``) leaves out:
scikit-learn's two sample photographs (china, flower) and scikit-image's Hubble deep field in colour, and its
camera, coins and moon in grey (shown as RGB). From them, seeded 128 px crops are degraded by this project's
``degrade`` with the ranges of params.yaml, and the trained sensor and PIP model read them:

    python bench/sensor_unseen.py [--model models/pip_restormer_tiny.pt] [--sensor sensors/sensor_tiny.pt]
                                  [--per-task 12] [--seed 11] [--json results/unseen.json]

Prints the sensor's accuracy per task (top class right; composites: the classes found are exactly theirs), the
share of the clean crops it leaves alone and what restoring them instead costs, and per task the PSNR of the true
prompt against the blind one (the sensor's prompt, or the crop left alone where it finds nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pip_model.config import load_section  # noqa: E402
from pip_model.data.corpus import SKIMAGE_PHOTOS  # noqa: E402
from pip_model.data.degradations import degrade, derive_seed  # noqa: E402
from pip_model.data.pairs import DegradeConfig
from pip_model.data.sampling import random_crops
from pip_model.evaluation.metrics import image_metrics
from pip_model.networks.checkpoints import load_model_file  # noqa: E402
from pip_model.evaluation.inference import restore  # noqa: E402
from pip_model.networks.sensor import PRESENT_SCORE, nothing_found  # noqa: E402
from pip_model.tasks import ALL_TASKS, model_classes, parse_task, remap_weights  # noqa: E402

UNSEEN_SKLEARN = ("china", "flower")
UNSEEN_SKIMAGE = ("hubble_deep_field", "camera", "coins", "moon")
UNSEEN = UNSEEN_SKLEARN + UNSEEN_SKIMAGE


def unseen_photographs() -> list[torch.Tensor]:
    """The installed photographs the corpus leaves out, as (3, H, W) tensors in [0, 1]."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    assert not set(UNSEEN) & set(SKIMAGE_PHOTOS), "a benchmark photograph is in the unseen set"
    sklearn_photos = load_sample_images()
    by_name = {Path(path).stem: image for path, image in zip(sklearn_photos.filenames, sklearn_photos.images)}
    photos = []
    for name in UNSEEN:
        image = by_name[name] if name in UNSEEN_SKLEARN else getattr(skimage.data, name)()
        pixels = np.asarray(image, dtype=np.float32) / 255
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[..., None], 3, axis=-1)
        photos.append(torch.from_numpy(pixels[..., :3]).permute(2, 0, 1).contiguous())
    return photos


def clean_crops(photos: list[torch.Tensor], count: int, seed: int) -> torch.Tensor:
    """``count`` seeded 128 px crops, spread over the photographs in turn.

    Shape:
        -> (count, 3, 128, 128)
    """
    generator = torch.Generator().manual_seed(seed)
    return random_crops(photos, count, 128, generator, which=[index % len(photos) for index in range(count)])


def psnr(restored: torch.Tensor, clean: torch.Tensor) -> float:
    return image_metrics(restored.clamp(0, 1), clean)[0]


@torch.no_grad()
def measure(model: torch.nn.Module, sensor: torch.nn.Module, *, per_task: int, seed: int, ranges) -> dict:
    photos = unseen_photographs()
    crops = clean_crops(photos, per_task, seed)
    figures: dict = {"photographs": list(UNSEEN), "crops_per_task": per_task, "seed": seed, "tasks": {}}
    _, clean_weights = sensor.prompt(crops)
    left = nothing_found(clean_weights)
    figures["clean_left_alone"] = float(left.float().mean())
    # What leaving them costs nothing; what restoring them anyway (under the prompt before "nothing found") costs.
    sensed, known = model_classes(sensor), model_classes(model)
    _, blend = sensor.prompt(crops, absent=0.0)
    blend = remap_weights(blend, sensed, known)  # the sensor's classes moved onto the model's
    figures["clean_restored_anyway_psnr"] = float(np.mean([psnr(model(crops[i : i + 1], blend[i : i + 1]),
                                                                 crops[i : i + 1]) for i in range(len(crops))]))
    # The tasks both the model and the sensor have every class of (the model has no prompt for another).
    for task in (task for task in ALL_TASKS if set(parse_task(task).classes) <= set(known) & set(sensed)):
        degraded, _ = degrade(crops, task, seed=derive_seed(seed, "unseen", task), ranges=ranges)
        degraded = degraded.clamp(0, 1)
        task_scores, weights = sensor.prompt(degraded)
        classes = set(parse_task(task).classes)
        if parse_task(task).is_composite:
            right = [{sensed[int(c)] for c in torch.nonzero(row >= PRESENT_SCORE).flatten()} == classes
                     for row in task_scores]
        else:
            right = [sensed[int(row.argmax())] in classes for row in task_scores]
        true, blind, gained = [], [], []
        for i in range(len(crops)):
            one, clean = degraded[i : i + 1], crops[i : i + 1]
            true.append(psnr(restore(model, one, tasks=[task]).images, clean))
            blind.append(psnr(restore(model, one, sensor=sensor).images, clean))
            gained.append(psnr(one, clean))
        figures["tasks"][task] = {"sensor_right": float(np.mean(right)), "left_alone": float(nothing_found(weights)
                                  .float().mean()), "input_psnr": float(np.mean(gained)),
                                  "true_prompt_psnr": float(np.mean(true)), "blind_psnr": float(np.mean(blind))}
    singles = [values["sensor_right"] for task, values in figures["tasks"].items()
               if not parse_task(task).is_composite]
    figures["single_task_accuracy"] = float(np.mean(singles))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/pip_restormer_tiny.pt"))
    parser.add_argument("--sensor", type=Path, default=Path("sensors/sensor_tiny.pt"))
    parser.add_argument("--per-task", type=int, default=12)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    model, sensor = load_model_file(args.model)[0], load_model_file(args.sensor)[0]
    ranges = load_section(DegradeConfig, "degrade", args.params).ranges
    figures = measure(model, sensor, per_task=args.per_task, seed=args.seed, ranges=ranges)
    print(f"unseen photographs ({', '.join(UNSEEN)}), {args.per_task} crops of 128 px per task, seed {args.seed}")
    print(f"sensor: single-task accuracy {figures['single_task_accuracy']:.1%}; clean crops left alone "
          f"{figures['clean_left_alone']:.1%} (restored anyway they would score "
          f"{figures['clean_restored_anyway_psnr']:.2f} dB against themselves)")
    print(f"{'task':<18}{'right':>7}{'alone':>7}{'input':>8}{'true':>8}{'blind':>8}{'gap':>7}")
    for task, values in figures["tasks"].items():
        gap = values["blind_psnr"] - values["true_prompt_psnr"]
        print(f"{task:<18}{values['sensor_right']:>7.0%}{values['left_alone']:>7.0%}{values['input_psnr']:>8.2f}"
              f"{values['true_prompt_psnr']:>8.2f}{values['blind_psnr']:>8.2f}{gap:>+7.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
