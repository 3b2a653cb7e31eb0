"""DVC stage `train_sensor`: the degradation sensor -> sensors/<name>.pt and its MLflow run.

The sensor lets PIP run blind: `evaluate` reports PIP steered by the sensor beside PIP
given the true label, and `prompt-restore --task auto` uses it. `score_sensor` scores it on
the benchmark, so an edit of the scoring never trains it again.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from pip_model import cpu_kernels
from pip_model.config import BaseConfig, ConfigError, load_section
from pip_model.data.pairs import DegradeConfig
from pip_model.engine.recipes import load_sensor_config
from pip_model.engine.sensor_training import train_sensor
from pip_model.networks.checkpoints import save_model_file
from pip_model.tracking.lineage import dvc_input_tags, git_tags
from pip_model.tracking.tracker import Tracker, TrackingConfig, TrackingUnavailable


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="sensor model file to write")
    args = parser.parse_args()
    try:
        base = load_section(BaseConfig, "base", args.params)
        config = load_sensor_config(args.params)
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
    hashes = dvc_input_tags(root, [str(args.prepared)])
    tracker.log_dataset(args.prepared / "manifest.csv", name=str(args.prepared), context="training",
                        digest=hashes.get(f"dvc.{args.prepared}.md5"))
    model = train_sensor(config, seed=base.seed, device=device, prepared_dir=args.prepared,
                         ranges=ranges, tracker=tracker)
    save_model_file(args.out, model, model_name=config.model, step=config.steps, run_id=tracker.run_id,
                    cpu_kernels=cpu_kernels.check())

    tracker.finish()
    print(f"train_sensor: {config.model} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
