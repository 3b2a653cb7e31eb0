"""The whole pipeline end to end on a tiny config: real `dvc repro`, DVC experiments, and
the Prefect flows against a real `prefect server` on loopback."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import Repo, free_port, make_pipeline_repo, running_server, stop_group

TINY = {
    "degrade": {"benchmark_crop": 48, "crops_per_image": 1},
    "train": {"steps": 2, "batch_size": 2, "patch": 32, "warmup_steps": 1, "log_every": 1, "sample_every": 2,
              "checkpoint_every": 100},
    "sensor": {"steps": 2, "batch_size": 4, "patch": 32},
    "report": {"dpi": 40},
    "tracking": {"system_metrics_interval": 1},
}
STAGES = ["prepare", "degrade", "train@pip_restormer_tiny", "train@restormer_tiny", "train_sensor", "evaluate",
          "report"]


def _ran(output: str) -> list[str]:
    return [stage for stage in STAGES if f"Running stage '{stage}'" in output]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    repo = make_pipeline_repo(tmp_path_factory.mktemp("pipeline") / "repo", TINY)
    output = repo.dvc("repro").stdout
    assert _ran(output) == STAGES, output
    return repo


def test_repro_from_clean_runs_every_stage(repo):
    metrics = json.loads((repo.path / "results" / "metrics.json").read_text())
    assert set(metrics) == {"input", "classical", "pip_restormer_tiny", "restormer_tiny", "pip_restormer_tiny_blind"}
    assert set(json.loads((repo.path / "results" / "sensor.json").read_text())) == {"accuracy", "per_class",
                                                                                     "confusion"}
    assert set(metrics["pip_restormer_tiny"]) == {"denoise_15", "denoise_25", "denoise_50", "derain", "dehaze",
                                                  "deblur", "lowlight"}
    page = (repo.path / "reports" / "index.html").read_text()
    for figure in ("psnr_by_task.png", "training_curves.png", "examples.png", "prompt_swap.png"):
        assert figure in page and (repo.path / "reports" / figure).stat().st_size > 1000


def test_second_repro_does_nothing_in_under_5_seconds(repo):
    started = time.monotonic()
    output = repo.dvc("repro").stdout
    assert time.monotonic() - started < 5
    assert _ran(output) == [] and "Data and pipelines are up to date" in output


def test_metrics_show_prints_the_per_task_table(repo):
    shown = repo.dvc("metrics", "show").stdout
    for column in ("pip_restormer_tiny.derain.psnr", "classical.dehaze.ssim", "input.lowlight.psnr"):
        assert column in shown


def test_changing_lr_reruns_only_train_and_what_follows(repo):
    repo.set_params({"train": {"lr": 0.001}})
    output = repo.dvc("repro").stdout
    assert _ran(output) == ["train@pip_restormer_tiny", "train@restormer_tiny", "evaluate", "report"], output
    repo.run("git", "add", "-A")
    repo.run("git", "commit", "-qm", "lr 0.001")


def test_exp_run_is_listed_with_its_metrics(repo):
    repo.dvc("exp", "run", "-n", "three-steps", "-S", "train.steps=3")
    table = pd.read_csv(io.StringIO(repo.dvc("exp", "show", "--csv").stdout))
    row = table[table["Experiment"] == "three-steps"].iloc[0]
    assert row["train.steps"] == 3 and 0 < float(row["pip_restormer_tiny.derain.psnr"]) < 100


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory) -> dict[str, str]:
    """A real Prefect server on a loopback port, with its own PREFECT_HOME."""
    home = tmp_path_factory.mktemp("prefect")
    port = free_port()
    settings = {"PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with running_server(command, f"http://127.0.0.1:{port}/api/health", home / "server.log",
                        dict(os.environ, **settings)):
        yield settings


def test_pipeline_flow_after_repro_does_no_work_and_publishes(repo, prefect_api):
    done = repo.run(sys.executable, "-m", "flows.pipeline", env=prefect_api)
    logs = done.stdout + done.stderr
    assert logs.count("up to date, nothing to do") == 6, logs
    table = repo.run(sys.executable, "-m", "prefect", "artifact", "inspect", "per-task-metrics",
                     env={**prefect_api, "COLUMNS": "400"}).stdout
    assert "pip_restormer_tiny" in table and "psnr" in table and "derain" in table
    links = repo.run(sys.executable, "-m", "prefect", "artifact", "inspect", "mlflow-runs",
                     env={**prefect_api, "COLUMNS": "400"}).stdout
    assert "train-pip_restormer_tiny" in links and "#/experiments/" in links


def test_deployment_served_and_triggered_on_a_real_server(repo, prefect_api):
    server_env = {**repo.env, **prefect_api}
    serving = subprocess.Popen([sys.executable, "-m", "flows.deploy"], cwd=repo.path, env=server_env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "pipeline/nightly" not in repo.run(sys.executable, "-m", "prefect", "deployment", "ls",
                                                 env=prefect_api).stdout:
            assert serving.poll() is None and time.monotonic() < deadline, "deployments were not created"
            time.sleep(1)
        schedule = repo.run(sys.executable, "-m", "prefect", "deployment", "inspect", "pipeline/nightly",
                            env=prefect_api).stdout
        assert "0 2 * * *" in schedule
        run = repo.run(sys.executable, "-m", "prefect", "deployment", "run", "pipeline/nightly", "--watch",
                       "--watch-timeout", "240", env=prefect_api)
        assert "Completed" in run.stdout, run.stdout + run.stderr
    finally:
        stop_group(serving)


def test_sweep_runs_a_grid_of_experiments_into_one_table(repo, prefect_api):
    done = repo.run(sys.executable, "-m", "flows.sweep", "train.lr=0.001,0.003", env=prefect_api)
    csv = next(line.split("table at ")[1].strip() for line in (done.stdout + done.stderr).splitlines()
               if "table at " in line)
    table = pd.read_csv(csv)
    assert len(table) == 2 and sorted(table["train.lr"]) == [0.001, 0.003]
    assert table["pip_restormer_tiny.derain.psnr"].between(0, 100).all()
    sweep_id = Path(csv).stem
    with sqlite3.connect(repo.path / "mlflow.db") as store:
        tagged = store.execute("select count(distinct run_uuid) from tags where key='sweep' and value=?",
                               (sweep_id,)).fetchone()[0]
    assert tagged >= 2 * 2  # two trained models per experiment
