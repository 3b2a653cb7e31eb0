"""Train and evaluate against a real `mlflow server`, then read the metrics back."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from pip_model.corpus import PrepareConfig, prepare_corpus
from pip_model.data import DegradeConfig, build_benchmark
from pip_model.tasks import TASKS
from tests.conftest import free_port, running_server

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real MLflow server on loopback with a SQLite backend; stopped with its worker processes."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
               "--artifacts-destination", (tmp_path / "artifacts").as_uri(), "--workers", "1"]
    uri = f"http://127.0.0.1:{port}"
    with running_server(command, f"{uri}/health", tmp_path / "server.log",
                        dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")):
        yield uri


def test_train_and_evaluate_log_to_a_real_server(mlflow_server, tmp_path):
    prepared, benchmark = tmp_path / "prepared", tmp_path / "benchmark"
    prepare_corpus(PrepareConfig(), seed=0, out_dir=prepared, progress=lambda message: None)
    build_benchmark(prepared, DegradeConfig(benchmark_crop=48, crops_per_image=1), seed=0, out_dir=benchmark,
                    progress=lambda message: None)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(steps=4, batch_size=2, patch=32, warmup_steps=1, log_every=2, sample_every=2, threads=1)
    params["evaluate"].update(classical=False)
    params["tracking"].update(system_metrics_interval=0.2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = dict(os.environ, MLFLOW_TRACKING_URI=mlflow_server, PYTHONPATH=str(ROOT))

    def stage(name: str, *arguments: str) -> None:
        subprocess.run([sys.executable, str(ROOT / "stages" / f"{name}.py"), "--params", "params.yaml", *arguments],
                       cwd=tmp_path, env=env, check=True, capture_output=True)

    stage("train", "--model", "pip_restormer_tiny", "--prepared", str(prepared), "--pairs", "pairs",
          "--out", "models/pip_restormer_tiny.pt", "--curve", "curves/pip.csv")
    stage("evaluate", "--benchmark", str(benchmark), "--models", "models/pip_restormer_tiny.pt",
          "--metrics", "results/metrics.json", "--per-image", "results/per_image.csv", "--examples", "results/ex")

    mlflow.set_tracking_uri(mlflow_server)
    runs = mlflow.search_runs(experiment_names=["pip-universal"])
    trained = runs[runs["tags.mlflow.runName"] == "train-pip_restormer_tiny"].iloc[0]
    for task in TASKS:
        assert 0 < trained[f"metrics.psnr_{task}"] < 100 and 0 < trained[f"metrics.ssim_{task}"] <= 1
    # The default PSNR loss is a log10 MSE: negative, but finite.
    assert math.isfinite(trained["metrics.train_loss"]) and trained["metrics.train_psnr"] > 0
    assert trained["params.train.lr"] == str(params["train"]["lr"])
    assert "metrics.system/cpu_utilization_percentage" in runs.columns
    baseline = runs[runs["tags.mlflow.runName"] == "evaluate-input"].iloc[0]
    assert baseline["metrics.psnr_mean"] > 0
    client = MlflowClient(mlflow_server)
    version = client.get_model_version_by_alias("pip-universal-pip_restormer_tiny", "candidate")
    assert version.run_id == trained["run_id"]
    artifacts = {a.path for a in client.list_artifacts(trained["run_id"])}
    assert {"curves", "evaluation"} <= artifacts
    loaded = mlflow.pytorch.load_model("models:/pip-universal-pip_restormer_tiny@candidate")
    assert loaded.model.uses_prompts
