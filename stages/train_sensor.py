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

import numpy as np
import pandas as pd

from pip_model.apps.report import confusion_chart
from pip_model.config import BaseConfig, ConfigError, load_section
from pip_model.data.pairs import DegradeConfig
from pip_model.engine.recipes import SensorConfig
from pip_model.engine.sensor_training import train_sensor
from pip_model.evaluation.benchmark import load_benchmark
from pip_model.evaluation.sensor_report import sensor_report
from pip_model.networks.checkpoints import save_model_file
from pip_model.tracking.lineage import dvc_input_tags, git_tags
from pip_model.tracking.tracker import Tracker, TrackingConfig, TrackingUnavailable, registered_name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--benchmark", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="sensor model file to write")
    parser.add_argument("--metrics", type=Path, required=True,
                        help="headline JSON to write (accuracy, composites found, clean crops left alone); the detail "
                             "goes beside it (_detail.json, _decisions.csv, .png)")
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
    hashes = dvc_input_tags(root, [str(args.prepared), str(args.benchmark)])
    tracker.log_dataset(args.prepared / "manifest.csv", name=str(args.prepared), context="training",
                        digest=hashes.get(f"dvc.{args.prepared}.md5"))
    tracker.log_dataset(args.benchmark / "manifest.csv", name=str(args.benchmark), context="evaluation",
                        digest=hashes.get(f"dvc.{args.benchmark}.md5"))
    model = train_sensor(config, seed=base.seed, device=device, prepared_dir=args.prepared,
                         ranges=ranges, tracker=tracker)
    save_model_file(args.out, model, model_name=config.model, step=config.steps, run_id=tracker.run_id)

    report = sensor_report(load_benchmark(args.benchmark), model)
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(report.headline(), indent=2) + "\n")
    detail = args.metrics.with_name(f"{args.metrics.stem}_detail.json")
    detail.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    decisions = args.metrics.with_name(f"{args.metrics.stem}_decisions.csv")
    pd.DataFrame(report.decisions).to_csv(decisions, index=False)
    figure = args.metrics.with_suffix(".png")
    confusion_chart(report.confusion, figure, dpi=110)
    tracker.log_metrics({"sensor/accuracy": report.accuracy,
                         **{f"sensor/{k}/accuracy": v for k, v in report.per_class.items() if v is not None},
                         **{f"sensor/{k}/found_exactly": v for k, v in report.composites.items()},
                         **({"sensor/clean_kept": report.clean_kept} if report.clean_kept is not None else {})})
    tracker.log_artifact(detail, "evaluation")
    tracker.log_artifact(decisions, "evaluation")
    tracker.log_artifact(figure, "evaluation")
    version = tracker.log_model(model.cpu(), registered_name=registered_name(config.model), alias=tracking.alias,
                                input_example=np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32))
    tracker.finish()
    print(f"train_sensor: {config.model} on the benchmark: {report.summary()}; "
          f"registered {registered_name(config.model)} v{version} @{tracking.alias}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
