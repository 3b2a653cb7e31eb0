"""DVC stage `score_sensor`: how well the trained sensor names each benchmark image's degradations.

Writes the headline (accuracy, composites found exactly, clean crops left alone) as DVC metrics, the detail beside
it (per class and composite, the confusion matrix, every decision) and the confusion chart; logs them to the
sensor's training run and registers the sensor.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pip_model.config import ConfigError, load_section
from pip_model.evaluation.benchmark import load_benchmark
from pip_model.evaluation.charts import confusion_chart
from pip_model.evaluation.sensor_report import sensor_report
from pip_model.networks.checkpoints import load_model_file
from pip_model.tracking.lineage import dvc_input_tags, git_tags
from pip_model.tracking.tracker import Tracker, TrackingConfig, TrackingUnavailable, registered_name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--sensor", type=Path, required=True, help="the sensor model file train_sensor wrote")
    parser.add_argument("--benchmark", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True,
                        help="headline JSON to write (accuracy, composites found, clean crops left alone); the detail "
                             "goes beside it (_detail.json, _decisions.csv, .png)")
    args = parser.parse_args()
    try:
        tracking = load_section(TrackingConfig, "tracking", args.params)
    except ConfigError as error:
        print(f"score_sensor: {error}", file=sys.stderr)
        return 1
    model, metadata = load_model_file(args.sensor)
    name = metadata["model_name"]
    root = Path(args.params).resolve().parent
    try:
        tracker = Tracker.for_stage(tracking, root, run_name=f"train-{name}", run_id=metadata.get("run_id") or None,
                                    tags={"stage": "score_sensor", "model": name, **git_tags(root)})
    except TrackingUnavailable as error:
        print(f"score_sensor: {error}", file=sys.stderr)
        return 2
    tracker.log_dataset(args.benchmark / "manifest.csv", name=str(args.benchmark), context="evaluation",
                        digest=dvc_input_tags(root, [str(args.benchmark)]).get(f"dvc.{args.benchmark}.md5"))
    report = sensor_report(load_benchmark(args.benchmark), model)
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(report.headline(), indent=2) + "\n")
    detail = args.metrics.with_name(f"{args.metrics.stem}_detail.json")
    detail.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    decisions = args.metrics.with_name(f"{args.metrics.stem}_decisions.csv")
    pd.DataFrame(report.decisions).to_csv(decisions, index=False)
    figure = args.metrics.with_suffix(".png")
    confusion_chart(report.confusion, report.classes, figure, dpi=110)
    tracker.log_metrics({"sensor/accuracy": report.accuracy,
                         **{f"sensor/{k}/accuracy": v for k, v in report.per_class.items() if v is not None},
                         **{f"sensor/{k}/found_exactly": v for k, v in report.composites.items()},
                         **({"sensor/clean_kept": report.clean_kept} if report.clean_kept is not None else {})})
    tracker.log_artifact(detail, "evaluation")
    tracker.log_artifact(decisions, "evaluation")
    tracker.log_artifact(figure, "evaluation")
    version = tracker.log_model(model.cpu(), registered_name=registered_name(name), alias=tracking.alias,
                                input_example=np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32))
    tracker.finish()
    print(f"score_sensor: {name} on the benchmark: {report.summary()}; "
          f"registered {registered_name(name)} v{version} @{tracking.alias}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
