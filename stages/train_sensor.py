"""DVC stage `train_sensor`: the degradation sensor -> sensors/<name>.pt, its accuracy, an MLflow run.

The sensor lets PIP run blind: `evaluate` reports PIP steered by the sensor beside PIP
given the true label, and `prompt-restore --task auto` uses it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pip_model.checkpoints import save_model_file  # noqa: E402
from pip_model.config import BaseConfig, ConfigError, load_section  # noqa: E402
from pip_model.data import DegradeConfig  # noqa: E402
from pip_model.evaluation import load_benchmark, sensor_report  # noqa: E402
from pip_model.tasks import DEGRADATION_CLASSES  # noqa: E402
from pip_model.tracking import (  # noqa: E402
    Tracker,
    TrackingConfig,
    TrackingUnavailable,
    git_tags,
    registered_name,
)
from pip_model.training import SensorConfig, train_sensor  # noqa: E402


def confusion_figure(confusion: np.ndarray, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(4.5, 4))
    axis.imshow(confusion, cmap="Blues")
    for (row, column), count in np.ndenumerate(confusion):
        axis.text(column, row, str(count), ha="center", va="center", fontsize=9)
    axis.set(xticks=range(len(DEGRADATION_CLASSES)), yticks=range(len(DEGRADATION_CLASSES)),
             xticklabels=DEGRADATION_CLASSES, yticklabels=DEGRADATION_CLASSES, xlabel="predicted", ylabel="true",
             title="Sensor confusion on the benchmark's single tasks")
    axis.tick_params(axis="x", rotation=30)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--benchmark", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="sensor model file to write")
    parser.add_argument("--metrics", type=Path, required=True, help="accuracy JSON to write")
    args = parser.parse_args()
    try:
        base = load_section(BaseConfig, "base", args.params)
        config = load_section(SensorConfig, "sensor", args.params)
        ranges = load_section(DegradeConfig, "degrade", args.params).ranges
        tracking = load_section(TrackingConfig, "tracking", args.params)
        device = base.torch_device()
    except ConfigError as error:
        print(f"train_sensor: {error}", file=sys.stderr)
        return 1
    root = Path(args.params).resolve().parent
    try:
        tracker = Tracker.for_stage(tracking, root, run_name=f"train-{config.model}",
                                    tags={"stage": "train_sensor", "model": config.model, **git_tags(root)})
    except TrackingUnavailable as error:
        print(f"train_sensor: {error}", file=sys.stderr)
        return 2
    tracker.log_params({"base": dataclasses.asdict(base), "sensor": dataclasses.asdict(config)})
    model = train_sensor(config, seed=base.seed, device=device, prepared_dir=args.prepared,
                         ranges=ranges, tracker=tracker)
    save_model_file(args.out, model, model_name=config.model, step=config.steps, run_id=tracker.run_id)

    report = sensor_report(load_benchmark(args.benchmark), model)
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    figure = args.metrics.with_suffix(".png")
    confusion_figure(report.confusion, figure)
    tracker.log_metrics({"accuracy": report.accuracy,
                         **{f"accuracy_{k}": v for k, v in report.per_class.items() if v is not None},
                         **{f"accuracy_{k}": v for k, v in report.composites.items()}})
    tracker.log_artifact(figure, "evaluation")
    version = tracker.log_model(model.cpu(), registered_name=registered_name(config.model), alias=tracking.alias,
                                input_example=np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32))
    tracker.finish()
    print(f"train_sensor: {config.model} on the benchmark: {report.summary()}; "
          f"registered {registered_name(config.model)} v{version} @{tracking.alias}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
