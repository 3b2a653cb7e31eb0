"""The `sweep` flow: a grid of DVC experiments, run in parallel, gathered into one table.

Each grid point is `dvc exp run --temp -S ...`, so it runs in its own temporary copy and
DVC records it as an experiment; its MLflow runs carry the tag `sweep=<id>`.

    python -m flows.sweep train.lr=0.001,0.002 train.models='[[pip_restormer_tiny],[restormer_tiny]]'
"""

from __future__ import annotations

import io
import itertools
import sys
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from flows.common import FlowsConfig, dvc, override_arguments
from pip_model.config import BaseConfig, load_section


@task(retries=1, retry_delay_seconds=10, task_run_name="experiment {name}")
def run_experiment(repo_dir: str, name: str, overrides: dict[str, Any], env: dict[str, str]) -> str:
    """Runs one grid point as a temporary DVC experiment (``env``: its GPU binding, if any)."""
    dvc(Path(repo_dir), "exp", "run", "--temp", "-n", name, *override_arguments(overrides), env=env)
    get_run_logger().info("experiment %s done: %s", name, overrides)
    return name


@task(task_run_name="gather results")
def gather(repo_dir: str, names: list[str], sweep_id: str) -> pd.DataFrame:
    """The sweep's experiments from `dvc exp show`, one row each, with their params and metrics."""
    shown = pd.read_csv(io.StringIO(dvc(Path(repo_dir), "exp", "show", "--csv")))
    table = shown[shown["Experiment"].isin(names)].dropna(axis=1, how="all")
    out = Path(repo_dir) / "results" / "sweeps" / f"{sweep_id}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    rows = table.astype(str).to_dict(orient="records")
    create_table_artifact(key=f"sweep-{sweep_id}", table=rows, description=f"Sweep {sweep_id}: {out}")
    return table


def concurrent_slots(parallel: int, gpus: int) -> list[dict[str, str]]:
    """The environment of each experiment run at once: on a CPU machine (``gpus`` 0) ``parallel`` plain ones; with
    GPUs, at most one per GPU, each seeing only its own (two trainings sharing a GPU slow each other and can run
    it out of memory)."""
    if gpus == 0:
        return [{} for _ in range(parallel)]
    return [{"CUDA_VISIBLE_DEVICES": str(gpu)} for gpu in range(min(parallel, gpus))]


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[key] for key in keys))]


@flow(name="sweep", log_prints=True)
def sweep(repo_dir: str = ".", grid: dict[str, list[Any]] | None = None,
          fixed: dict[str, Any] | None = None) -> str:
    """Runs every point of ``grid`` (plus ``fixed`` overrides) as a DVC experiment.

    Args:
        repo_dir: the repository holding dvc.yaml and params.yaml.
        grid: dotted params to their values, e.g. {"train.lr": [0.001, 0.002]}.
        fixed: dotted params set for every point, e.g. {"train.steps": 100}.

    Returns:
        The path of the CSV table of the sweep's results.
    """
    grid = grid or {"train.lr": [0.001, 0.002]}
    sweep_id = uuid.uuid4().hex[:8]
    points = grid_points(grid)
    params = Path(repo_dir) / "params.yaml"
    on_gpu = load_section(BaseConfig, "base", params).torch_device() == "cuda"
    slots = concurrent_slots(load_section(FlowsConfig, "flows", params).sweep_parallel,
                             torch.cuda.device_count() if on_gpu else 0)
    names = []
    for start in range(0, len(points), len(slots)):  # one experiment per slot at a time
        futures = [run_experiment.submit(repo_dir, f"sweep-{sweep_id}-{i}",
                                         {**(fixed or {}), **point, "+tracking.tags.sweep": sweep_id}, env)
                   for i, (point, env) in enumerate(zip(points[start : start + len(slots)], slots), start=start)]
        names += [future.result() for future in futures]
    gather(repo_dir, names, sweep_id)
    path = Path(repo_dir) / "results" / "sweeps" / f"{sweep_id}.csv"
    print(f"sweep {sweep_id}: {len(names)} experiments, table at {path}")
    return str(path)


if __name__ == "__main__":
    grid = {key: [yaml.safe_load(v) for v in value.split(",")] for key, value in
            (item.split("=", 1) for item in sys.argv[1:])}
    sweep(repo_dir=str(Path.cwd()), grid=grid or None)
