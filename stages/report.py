"""DVC stage `report`: metrics, curves and evaluate's examples -> reports/index.html with PNG figures, logged to
MLflow. It runs no network: the example grids are what evaluate kept."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from pip_model.apps.report import ReportConfig, write_report
from pip_model.config import ConfigError, load_section, read_params
from pip_model.tracking.tracker import Tracker, TrackingConfig, TrackingUnavailable


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--prompts", type=Path, help="evaluate's prompts.json: the cost of wrong prompts, composites")
    parser.add_argument("--curves", type=Path, required=True, help="folder of training-curve CSVs")
    parser.add_argument("--benchmark", type=Path, required=True)
    parser.add_argument("--examples", type=Path, required=True, help="evaluate's kept restorations (index.csv)")
    parser.add_argument("--parameters", type=Path, help="evaluate's parameters.json: the storage table")
    parser.add_argument("--seeds", type=Path, help="the seeds flow's results (results/seeds), shown when present")
    parser.add_argument("--sensor", type=Path, help="score_sensor's headline JSON (its detail files lie beside it)")
    parser.add_argument("--prepared", type=Path, help="prepare's output: the paper table's line on the training data")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        config = load_section(ReportConfig, "report", args.params)
        tracking = load_section(TrackingConfig, "tracking", args.params)
    except ConfigError as error:
        print(f"report: {error}", file=sys.stderr)
        return 1
    evaluated = json.loads(args.metrics.read_text())
    curves = {path.stem: pd.read_csv(path) for path in sorted(args.curves.glob("*.csv")) if path.stem in evaluated}
    page = write_report(metrics_path=args.metrics, curves=curves, benchmark_dir=args.benchmark,
                        examples_dir=args.examples, parameters_path=args.parameters,
                        config=config, out_dir=args.out, seeds_dir=args.seeds, prompts_path=args.prompts,
                        sensor_path=args.sensor, params=read_params(args.params),
                        root=Path(args.params).resolve().parent, prepared_dir=args.prepared)
    print(f"report: wrote {page}")
    if config.protocol:
        table = pd.read_csv(args.out / "paper_table.csv", index_col=0, keep_default_na=False)
        notes = (args.out / "paper_table_notes.txt").read_text()
        print(f"report: the paper's {config.protocol} table (PSNR/SSIM)\n{table.to_string()}\n{notes}", end="")
    try:
        tracker = Tracker.for_stage(tracking, Path(args.params).resolve().parent, run_name="report",
                                    tags={"stage": "report"})
        tracker.log_artifact(args.out, "report")
        tracker.finish()
    except TrackingUnavailable as error:
        print(f"report: written, but not logged to MLflow: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
