"""The `pipeline` flow: the DVC stages as Prefect tasks, then the results as artifacts.

DVC stays the source of truth for caching and lineage: each task is `dvc repro <stage>`,
so a run after an unchanged `dvc repro` does no work.

    python -m flows.pipeline                       # run once, here
    python -m flows.pipeline train.lr=0.001        # with params overrides (like dvc -S)
    python -m flows.pipeline --pull                # first fetch what the DVC remote holds (a fresh clone)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.common import dvc, key_value, metric_rows, set_params
from pip_model.config import CommandLine, load_section
from pip_model.tracking.tracker import TrackingConfig
from pip_model.tracking.uris import tracking_uri

STAGES = ("scan", "prepare", "degrade", "train", "train_sensor", "score_sensor", "evaluate", "report")


@task(retries=2, retry_delay_seconds=10, task_run_name="dvc repro {stage}")
def repro_stage(repo_dir: str, stage: str) -> bool:
    """Reproduces one stage (a `foreach` group runs all its items); True if anything ran."""
    output = dvc(Path(repo_dir), "repro", stage)
    # Its own name only: `scan` runs on every repro as the upstream of each stage, and says so.
    ran = f"Running stage '{stage}'" in output or f"Running stage '{stage}@" in output
    get_run_logger().info("%s: %s", stage, "ran" if ran else "up to date, nothing to do")
    return ran


@task(retries=2, retry_delay_seconds=10, task_run_name="dvc pull")
def pull_outputs(repo_dir: str) -> bool:
    """Fetches from the DVC remote the outputs it holds for this commit (a fresh clone, e.g. a worker's copy from
    git, then reruns only what changed); True if there was a remote to pull from."""
    repo = Path(repo_dir)
    if not dvc(repo, "remote", "list").strip():
        get_run_logger().info("no DVC remote configured: nothing to pull, every missing output is recomputed")
        return False
    dvc(repo, "pull", "--allow-missing")
    get_run_logger().info("pulled what the DVC remote holds")
    return True


@task(task_run_name="apply params overrides")
def apply_overrides(repo_dir: str, overrides: dict[str, Any]) -> None:
    """Writes the flow's parameters into params.yaml, as `dvc exp run -S` would."""
    set_params(Path(repo_dir), overrides)


def mlflow_links(repo: Path) -> list[tuple[str, str]]:
    """(run name, link) of the latest training run of each model, for the markdown artifact."""
    from mlflow import MlflowClient

    config = load_section(TrackingConfig, "tracking", repo / "params.yaml")
    uri = tracking_uri(config.uri, repo)  # the store the stages logged to
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is None:
        return []
    base = uri.rstrip("/") if uri.startswith("http") else "http://127.0.0.1:5000"
    links, seen = [], set()
    for run in client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                                  max_results=200):
        name = run.data.tags.get("mlflow.runName", run.info.run_id)
        if name not in seen:
            seen.add(name)
            links.append((name, f"{base}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"))
    return links


@task(task_run_name="publish results")
def publish_results(repo_dir: str) -> dict[str, Any]:
    """Publishes the per-task metrics as a table artifact and the MLflow runs as a markdown artifact."""
    repo = Path(repo_dir)
    metrics = json.loads((repo / "results" / "metrics.json").read_text())
    create_table_artifact(key="per-task-metrics", table=metric_rows(metrics),
                          description="PSNR/SSIM per task and model (results/metrics.json)")
    lines = ["# MLflow runs", "", "| run | link |", "| --- | --- |"]
    lines += [f"| {name} | [{link}]({link}) |" for name, link in mlflow_links(repo)]
    lines += ["", f"Report: `{(repo / 'reports' / 'index.html').resolve()}`"]
    create_markdown_artifact(key="mlflow-runs", markdown="\n".join(lines), description="Runs of this pipeline")
    return metrics


@flow(name="pipeline", log_prints=True)
def pipeline(repo_dir: str = ".", overrides: dict[str, Any] | None = None,
             stages: list[str] = list(STAGES), pull: bool = False) -> dict[str, Any]:
    """Runs the DVC pipeline stage by stage and publishes the results.

    Args:
        repo_dir: the repository holding dvc.yaml and params.yaml.
        overrides: dotted params to set first, e.g. {"train.lr": 0.001}.
        stages: the stages to reproduce, in order.
        pull: first fetch the outputs the DVC remote holds (``dvc pull``), if one is configured.
    """
    if pull:
        pull_outputs(repo_dir)
    if overrides:
        apply_overrides(repo_dir, overrides)
    for stage in stages:
        repro_stage(repo_dir, stage)
    return publish_results(repo_dir)


def main(arguments: list[str] | None = None) -> None:
    parser = CommandLine(prog="python -m flows.pipeline", description=__doc__,
                         example="python -m flows.pipeline train.lr=0.001 --pull")
    parser.add_argument("overrides", nargs="*", type=key_value, metavar="KEY=VALUE",
                        help="params to set in params.yaml first, like `dvc exp run -S`")
    parser.add_argument("--pull", action="store_true", help="first fetch what the DVC remote holds")
    args = parser.parse_args(arguments)
    pipeline(repo_dir=str(Path.cwd()), overrides=dict(args.overrides) or None, pull=args.pull)


if __name__ == "__main__":
    main()
