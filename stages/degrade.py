"""DVC stage `degrade`: data/prepared -> the evaluation benchmark and offline training pairs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pip_model.config import BaseConfig, ConfigError, load_section
from pip_model.data.pairs import DegradeConfig, build_benchmark, write_offline_pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--benchmark", type=Path, required=True)
    parser.add_argument("--train-pairs", type=Path, required=True)
    args = parser.parse_args()
    try:
        base = load_section(BaseConfig, "base", args.params)
        config = load_section(DegradeConfig, "degrade", args.params)
    except ConfigError as error:
        print(f"degrade: {error}", file=sys.stderr)
        return 1
    try:
        benchmark = build_benchmark(args.prepared, config, seed=base.seed, out_dir=args.benchmark)
        pairs = write_offline_pairs(args.prepared, config, seed=base.seed, out_dir=args.train_pairs)
    except ValueError as error:
        print(f"degrade: {error}", file=sys.stderr)
        return 1
    per_task = benchmark.groupby("task").size().to_dict()
    print(f"degrade: benchmark of {len(benchmark)} pairs {per_task}; {len(pairs)} offline training pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
