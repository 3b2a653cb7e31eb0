"""The `sweep` flow: a grid of DVC experiments, run in parallel, gathered into one table.

Each grid point is `dvc exp run --temp -S ...`, so it runs in its own temporary copy and
DVC records it as an experiment; its MLflow runs carry the tag `sweep=<id>`.

    python -m flows.sweep train.lr=0.001,0.002 train_run.models='[[pip_restormer_tiny],[restormer_tiny]]'

The points run as Prefect tasks of a subflow whose task runner `params.yaml: flows` chooses: threads of
this process (`sweep_runner: local`), or the workers of a Dask cluster (`sweep_runner: dask`, through
prefect-dask; `dask_address` names a running cluster, whose workers must see `repo_dir`).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.common import FlowsConfig, dvc, override_arguments, split_key_value
from pip_model.config import BaseConfig, CommandLine, load_section


@task(retries=1, retry_delay_seconds=10, task_run_name="experiment {name}")
def run_experiment(repo_dir: str, name: str, overrides: dict[str, Any], env: dict[str, str]) -> str:
    """Runs one grid point as a temporary DVC experiment (``env``: its GPU binding, if any)."""
    logger = get_run_logger()
    logger.info("experiment %s starts in process %d on %s", name, os.getpid(), socket.gethostname())
    dvc(Path(repo_dir), "exp", "run", "--temp", "-n", name, *override_arguments(overrides), env=env)
    logger.info("experiment %s done: %s", name, overrides)
    return name


@task(task_run_name="gather results")
def gather(repo_dir: str, names: list[str], sweep_id: str) -> pd.DataFrame:
    """The sweep's experiments from `dvc exp show`, one row each, with their params and metrics, and the per-task
    scores of each (``<model>.<task>.<metric>`` columns) read from the `results/metrics.json` of its commit."""
    repo = Path(repo_dir)
    shown = pd.read_csv(io.StringIO(dvc(repo, "exp", "show", "--csv")))
    table = shown[shown["Experiment"].isin(names)].dropna(axis=1, how="all").reset_index(drop=True)
    per_task = [{f"{model}.{task_name}.{metric}": value for model, tasks in experiment_metrics(repo, rev).items()
                 for task_name, values in tasks.items() for metric, value in values.items()}
                for rev in table["rev"]]
    table = pd.concat([table, pd.DataFrame(per_task)], axis=1)
    out = Path(repo_dir) / "results" / "sweeps" / f"{sweep_id}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    rows = table.astype(str).to_dict(orient="records")
    create_table_artifact(key=f"sweep-{sweep_id}", table=rows, description=f"Sweep {sweep_id}: {out}")
    return table


def experiment_metrics(repo: Path, rev: str) -> dict[str, Any]:
    """`results/metrics.json` as one experiment's commit holds it ({} when it has none)."""
    done = subprocess.run(["git", "show", f"{rev}:results/metrics.json"], cwd=repo, capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def concurrent_slots(parallel: int, gpus: int) -> list[dict[str, str]]:
    """The environment of each experiment run at once: on a CPU machine (``gpus`` 0) ``parallel`` plain ones; with
    GPUs, at most one per GPU, each seeing only its own (two trainings sharing a GPU slow each other and can run
    it out of memory)."""
    if gpus == 0:
        return [{} for _ in range(parallel)]
    return [{"CUDA_VISIBLE_DEVICES": str(gpu)} for gpu in range(min(parallel, gpus))]


def points_runner(config: FlowsConfig, slots: int) -> TaskRunner:
    """The task runner of a sweep's points (``params.yaml: flows``): ``slots`` threads here, or a Dask cluster,
    either the one at ``dask_address`` or a local one of ``slots`` single-threaded worker processes."""
    if config.sweep_runner == "local":
        return ThreadPoolTaskRunner(max_workers=slots)
    try:
        from prefect_dask import DaskTaskRunner
    except ModuleNotFoundError:
        raise RuntimeError("flows.sweep_runner is dask, which needs prefect-dask: pip install -e '.[scale]'") from None
    if config.dask_address:
        return DaskTaskRunner(address=config.dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": slots, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None})


@flow(name="sweep-points", flow_run_name="points of sweep {sweep_id}")
def run_points(repo_dir: str, sweep_id: str, points: list[dict[str, Any]], slots: list[dict[str, str]]) -> list[str]:
    """Runs the points as DVC experiments, one per slot at a time (``slots``: each one's environment)."""
    names = []
    for start in range(0, len(points), len(slots)):
        futures = [run_experiment.submit(repo_dir, f"sweep-{sweep_id}-{i}", point, env)
                   for i, (point, env) in enumerate(zip(points[start : start + len(slots)], slots), start=start)]
        names += [future.result() for future in futures]
    return names


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
    config = load_section(FlowsConfig, "flows", params)
    # A remote Dask cluster binds its own workers to GPUs; here, each experiment gets a GPU of this machine.
    on_gpu = not config.dask_address and load_section(BaseConfig, "base", params).torch_device() == "cuda"
    slots = concurrent_slots(config.sweep_parallel, torch.cuda.device_count() if on_gpu else 0)
    runner = points_runner(config, len(slots))
    where = (f"the Dask cluster at {config.dask_address}" if config.dask_address else
             "a local Dask cluster" if config.sweep_runner == "dask" else "threads of this process")
    print(f"sweep {sweep_id}: {len(points)} experiments, {len(slots)} at a time, on {where}")
    names = run_points.with_options(task_runner=runner)(
        repo_dir, sweep_id, [{**(fixed or {}), **point, "+tracking.tags.sweep": sweep_id} for point in points], slots)
    gather(repo_dir, names, sweep_id)
    path = Path(repo_dir) / "results" / "sweeps" / f"{sweep_id}.csv"
    print(f"sweep {sweep_id}: {len(names)} experiments, table at {path}")
    return str(path)


def _grid_axis(text: str) -> tuple[str, list[Any]]:
    key, values = split_key_value(text, "KEY=VALUE1,VALUE2,...")
    return key, [yaml.safe_load(value) for value in values.split(",")]


def main(arguments: list[str] | None = None) -> None:
    parser = CommandLine(prog="python -m flows.sweep", description=__doc__,
                         example="python -m flows.sweep train.lr=0.001,0.002 base.seed=0,1")
    parser.add_argument("grid", nargs="+", type=_grid_axis, metavar="KEY=V1,V2,...",
                        help="one axis of the grid: a dotted param and its values (every combination runs)")
    args = parser.parse_args(arguments)
    sweep(repo_dir=str(Path.cwd()), grid=dict(args.grid))


if __name__ == "__main__":
    main()
