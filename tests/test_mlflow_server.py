"""The pipeline against a real `mlflow server`: train and evaluate log to it, the registered model restores
images (``prompt-restore --model models:/...`` and ``runs:/...``, MLflow's pyfunc in a clean process), and
training outlives the server going away mid-run."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow import MlflowClient

from pip_model import restore
from pip_model.data.images import to_tensor
from pip_model.engine.recipes import RESUME_NEUTRAL
from pip_model.image_files import read_image, write_png
from pip_model.networks.checkpoints import load_model_file, save_model_file
from pip_model.networks.registry import build_model
from pip_model.tasks import TASKS, parse_mix
from pip_model.tracking.pending import PENDING_SUFFIX, PendingLog
from tests.helpers.servers import Server, answers, free_port, running_server, server_environment
from tests.helpers.stages import stage_environment
from tests.helpers.tracking import server_command

ROOT = Path(__file__).resolve().parents[1]
REGISTERED = "pip-universal-pip_restormer_tiny"
CANDIDATE = f"models:/{REGISTERED}@candidate"


def write_params(folder: Path, **train: object) -> dict:
    """Writes ``params.yaml`` in ``folder``: the repository's, with a tiny CPU training run.

    Returns:
        The params written.
    """
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in dict(batch_size=2, patch=32, warmup_steps=1, threads=1, **train).items():
        params["train_run" if key in RESUME_NEUTRAL else "train"][key] = value
    params["evaluate"].update(classical=False)
    params["tracking"].update(system_metrics_interval=0.2)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return params


def train_command(prepared: Path) -> list[str]:
    """The train stage for ``pip_restormer_tiny``, writing under the working directory."""
    return [sys.executable, str(ROOT / "stages" / "train.py"), "--params", "params.yaml",
            "--model", "pip_restormer_tiny", "--prepared", str(prepared), "--pairs", "pairs",
            "--out", "models/pip_restormer_tiny.pt", "--curve", "curves/pip.csv"]


def assert_restores_like_the_model_file(run_id: str, photo: Path, folder: Path) -> None:
    """``prompt-restore --model`` with the registry alias and with the run's model gives the image that the
    model file of the train stage gives (within one 8-bit level), and that image is not the input."""
    outputs = {}
    for name, model in {"file": str(folder / "models" / "pip_restormer_tiny.pt"), "registry": CANDIDATE,
                        "run": f"runs:/{run_id}/model"}.items():
        code = restore.main([str(photo), "--out", str(folder / f"restored_{name}"), "--task", "derain",
                             "--model", model, "--device", "cpu"])
        assert code == 0, f"prompt-restore --model {model} exited {code}"
        outputs[name] = read_image(folder / f"restored_{name}" / "rainy.png").rgb
    assert np.abs(outputs["file"] - read_image(photo).rgb).max() > 2 / 255, "the trained model is the identity"
    for name in ("registry", "run"):
        difference = np.abs(outputs[name] - outputs["file"]).max()
        assert difference <= 1 / 255 + 1e-6, f"--model {name} URI differs from the model file by {difference:.4f}"


PYFUNC_SCRIPT = """
import sys, numpy as np, mlflow.pyfunc
model = mlflow.pyfunc.load_model(sys.argv[1])
np.save(sys.argv[3], np.asarray(model.predict(np.load(sys.argv[2]), params={"task": sys.argv[4]})))
print(sys.modules["pip_model"].__file__)
"""


def _rain_and_haze(photo: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 40 x 36 crop of the photo, the prompt rain 0.7 + haze 0.3, and what the train stage's model file makes of
    them."""
    image = to_tensor(read_image(photo).rgb)[None][..., 4:44, 2:38]
    model, _ = load_model_file(photo.parent.parent / "models" / "pip_restormer_tiny.pt")
    weights = parse_mix("rain=0.7,haze=0.3", model.classes)[None]  # over its own classes (snow among them)
    with torch.no_grad():
        return image, weights, model(image, weights).clamp(0, 1)  # the served model clamps its output


def assert_pyfunc_predicts_like_the_model_file(uri: str, photo: Path, folder: Path) -> None:
    """A fresh interpreter outside the repository loads the registered model as pyfunc; its prediction with the
    inference param task="rain=0.7,haze=0.3" (any image size) equals the model file's model on the same image and
    mixture, and so does ``mlflow.pytorch.load_model``'s model called like build_model's models."""
    image, weights, expected = _rain_and_haze(photo)
    clean = folder / "clean_process"
    clean.mkdir()
    np.save(clean / "image.npy", image.numpy())
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", PYFUNC_SCRIPT, CANDIDATE, "image.npy", "predicted.npy",
                           "rain=0.7,haze=0.3"], cwd=clean, env=dict(env, MLFLOW_TRACKING_URI=uri),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    package = Path(done.stdout.strip().splitlines()[-1])
    # The package the model was logged with (its `code/` folder), not this checkout or an installed copy.
    assert package.parent.parent.name == "code", f"pip_model was imported from {package}, not from the model"
    predicted = np.load(clean / "predicted.npy")
    assert predicted.shape == expected.shape
    np.testing.assert_allclose(predicted, expected.numpy(), rtol=0, atol=1e-5)
    with torch.no_grad():
        called = mlflow.pytorch.load_model(CANDIDATE)(image, weights)
    np.testing.assert_allclose(called.numpy(), expected.numpy(), rtol=0, atol=1e-5)


def assert_served_model_answers_rest(uri: str, photo: Path, folder: Path) -> None:
    """``mlflow models serve`` of the @candidate model answers a REST request naming the prompt in its params with
    the image the model file restores."""
    image, _, expected = _rain_and_haze(photo)
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", CANDIDATE, "--env-manager", "local",
               "--host", "127.0.0.1", "--port", str(port)]
    with running_server(command, f"http://127.0.0.1:{port}/ping", folder / "serve.log",
                        dict(server_environment(), MLFLOW_TRACKING_URI=uri)):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"inputs": image.numpy().tolist(), "params": {"task": "rain=0.7,haze=0.3"}}).encode())
        with urllib.request.urlopen(request, timeout=120) as response:
            predictions = np.asarray(json.loads(response.read())["predictions"], dtype=np.float32)
    np.testing.assert_allclose(predictions, expected.numpy(), rtol=0, atol=1e-5)


def assert_refused_without_a_login(uri: str, tmp_path: Path, default_prepared: Path, login: dict[str, str]) -> None:
    """A team server turns away the REST API without a login or with a wrong password, and the train stage stops
    before training with one line saying which login to set."""
    for header in ({}, {"Authorization": "Basic " + base64.b64encode(
            f"{login['MLFLOW_TRACKING_USERNAME']}:wrong".encode()).decode()}):
        request = urllib.request.Request(f"{uri}/api/2.0/mlflow/experiments/search?max_results=5", headers=header)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
    for attempt, expected in (({}, "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"),
                              ({**login, "MLFLOW_TRACKING_PASSWORD": "wrong"},
                               "refused the login of 'researcher': check MLFLOW_TRACKING_PASSWORD")):
        env = {key: value for key, value in stage_environment(tmp_path, MLFLOW_TRACKING_URI=uri).items()
               if key not in login}
        done = subprocess.run(train_command(default_prepared), cwd=tmp_path, env={**env, **attempt},
                              capture_output=True, text=True)
        assert done.returncode == 2 and expected in done.stderr, done.stderr
        assert not (tmp_path / "models").exists()


@pytest.mark.integration
@pytest.mark.parametrize("mlflow_server", ["sqlite", pytest.param("team", marks=pytest.mark.scale)],
                         indirect=True)
def test_train_evaluate_and_the_registered_model_through_a_real_server(
    mlflow_server, tmp_path, default_prepared, benchmark_48, monkeypatch,
):
    """train and evaluate log to a real server (its store in SQLite, or the team setup: runs and users in a real
    PostgreSQL through the driver of the `scale` extra, a login required and read from the environment); the
    model it registers restores like the model file, through ``prompt-restore --model models:/...`` /
    ``runs:/...``, as pyfunc in a clean process, and served by ``mlflow models serve``."""
    uri = mlflow_server.uri
    params = write_params(tmp_path, steps=4, log_every=2, sample_every=2)
    if mlflow_server.login:
        assert_refused_without_a_login(uri, tmp_path, default_prepared, mlflow_server.login)
    env = stage_environment(tmp_path, MLFLOW_TRACKING_URI=uri, **mlflow_server.login)
    for key, value in mlflow_server.login.items():
        monkeypatch.setenv(key, value)  # for this process and the clean ones it starts

    def stage(*command: str) -> None:
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{command[1]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"

    stage(*train_command(default_prepared))
    save_model_file(tmp_path / "sensors" / "sensor_tiny.pt", build_model("sensor_tiny"), model_name="sensor_tiny")
    stage(sys.executable, str(ROOT / "stages" / "evaluate.py"), "--params", "params.yaml",
          "--benchmark", str(benchmark_48), "--models", "models/pip_restormer_tiny.pt",
          "--sensor", "sensors/sensor_tiny.pt",
          "--metrics", "results/metrics.json", "--per-image", "results/per_image.csv", "--examples", "results/ex",
          "--prompts", "results/prompts.json")

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)  # global, and written to os.environ: reset below
    try:
        runs = mlflow.search_runs(experiment_names=["pip-universal"])
        trained = runs[runs["tags.mlflow.runName"] == "train-pip_restormer_tiny (seed=0)"].iloc[0]
        for task in TASKS:
            if task == "dejpeg":  # trained on the default tasks (snow, no JPEG): no JPEG prompt, so not scored on it
                assert f"metrics.eval/{task}/psnr" not in runs or np.isnan(trained[f"metrics.eval/{task}/psnr"])
                continue
            assert 0 < trained[f"metrics.eval/{task}/psnr"] < 100 and 0 < trained[f"metrics.eval/{task}/ssim"] <= 1
        # The default PSNR loss is a log10 MSE: negative, but finite.
        assert math.isfinite(trained["metrics.train/loss"]) and trained["metrics.train/psnr"] > 0
        assert trained["params.train.lr"] == str(params["train"]["lr"])
        assert "metrics.system/cpu_utilization_percentage" in runs.columns
        baseline = runs[runs["tags.mlflow.runName"] == "evaluate-input (seed=0)"].iloc[0]
        assert baseline["metrics.eval/mean/psnr"] > 0
        client = MlflowClient(uri)
        version = client.get_model_version_by_alias(REGISTERED, "candidate")
        assert version.run_id == trained["run_id"]
        artifacts = {a.path for a in client.list_artifacts(trained["run_id"])}
        assert {"curves", "evaluation"} <= artifacts
        if mlflow_server.backend:  # the runs are in PostgreSQL itself, through the driver of the scale extra
            import psycopg

            with psycopg.connect(mlflow_server.backend) as database:
                stored = {row[0] for row in database.execute("select run_uuid from runs")}
            assert trained["run_id"] in stored and baseline["run_id"] in stored
        loaded = mlflow.pytorch.load_model(CANDIDATE)
        assert loaded.uses_prompts and loaded.sensor_name == "sensor_tiny" and loaded.sensor is not None

        photo = tmp_path / "photos" / "rainy.png"
        photo.parent.mkdir()
        rainy = sorted((benchmark_48 / "derain").glob("*.png"))[0]
        write_png(photo, read_image(rainy).rgb)
        assert_restores_like_the_model_file(trained["run_id"], photo, tmp_path)
        assert_pyfunc_predicts_like_the_model_file(uri, photo, tmp_path)
        assert_served_model_answers_rest(uri, photo, tmp_path)
    finally:
        mlflow.set_tracking_uri(None)  # later tests must not inherit this server


def _kill_server(server: Server) -> None:
    # SIGKILL, not stop_group's SIGTERM: a graceful shutdown keeps serving the busy client for seconds.
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    assert not answers(f"{server.uri}/health"), "the server still answers after its group was killed"


OUTAGE_ENVIRONMENT = {  # MLflow's HTTP client retries with backoff for minutes by default: one prompt try per call
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


@contextlib.contextmanager
def training_through_an_outage(server: Server, folder: Path, prepared: Path, deadline: float
                               ) -> Iterator[subprocess.Popen]:
    """Runs the train stage in ``folder`` (output in train.out and train.err) and kills the tracking server's
    group once step 1 is logged; yields the training process, killed on exit if it still runs."""
    env = stage_environment(folder, MLFLOW_TRACKING_URI=server.uri, **OUTAGE_ENVIRONMENT)
    stdout_path, stderr_path = folder / "train.out", folder / "train.err"
    with stdout_path.open("w") as stdout, stderr_path.open("w") as stderr:
        train = subprocess.Popen(train_command(prepared), cwd=folder, env=env, stdout=stdout, stderr=stderr)
        try:
            while "train: step 1/" not in stdout_path.read_text():  # the run exists and logs steps
                assert train.poll() is None, f"train ended before step 1:\n{stderr_path.read_text()}"
                assert time.monotonic() < deadline, "train did not reach step 1 in time"
                time.sleep(0.05)
            _kill_server(server)
            yield train
        finally:
            if train.poll() is None:
                train.kill()
                train.wait()


@pytest.mark.integration
def test_training_outlives_the_tracking_server_dying_mid_run(mlflow_server, tmp_path, default_prepared):
    """The server's whole process group is killed while train logs every step: training goes on to the end,
    the model file and the curve are complete, exit code 0, and the failed logging calls are reported."""
    steps = 30
    write_params(tmp_path, steps=steps, log_every=1, sample_every=5)
    server = mlflow_server
    stdout_path, stderr_path = tmp_path / "train.out", tmp_path / "train.err"
    deadline = time.monotonic() + 240
    with training_through_an_outage(server, tmp_path, default_prepared, deadline) as train:
        steps_before_outage = stdout_path.read_text().count("train: step ")
        code = train.wait(timeout=max(1.0, deadline - time.monotonic()))
    out, err = stdout_path.read_text(), stderr_path.read_text()
    assert steps_before_outage < steps, "the server died only after training: the outage was not mid-run"
    assert code == 0, f"train exited {code}:\n{out}\n{err}"

    model, metadata = load_model_file(tmp_path / "models" / "pip_restormer_tiny.pt")
    assert metadata["step"] == steps and model.uses_prompts
    curve = pd.read_csv(tmp_path / "curves" / "pip.csv")
    assert curve["step"].tolist() == list(range(1, steps + 1))
    assert f"done: {steps} steps" in out

    reported = re.search(r"train: (\d+) MLflow logging call\(s\) failed; the model file is complete:\n  (\w+)", err)
    assert reported, f"no report of the failed MLflow calls:\n{err}"
    # Every step after the outage failed to log its metrics, and the first failure happened during training.
    assert int(reported.group(1)) >= steps - steps_before_outage
    assert reported.group(2) in {"metrics", "image"}
    # ... and what could not be sent is kept, every step after the outage and the run's end, with the way to send it.
    pending = tmp_path / "checkpoints" / f"pip_restormer_tiny{PENDING_SUFFIX}"
    kept = PendingLog(pending).entries()
    assert {step for entry in kept if entry["kind"] == "metrics" for *_, step in entry["metrics"]} >= set(
        range(steps_before_outage + 1, steps + 1))
    assert kept[-1]["kind"] == "finish" and f"python -m pip_model sync {pending.parent}" in err


@pytest.mark.integration
def test_metrics_of_an_outage_reach_the_server_when_it_is_back(mlflow_server, tmp_path, default_prepared):
    """The server is killed at step 1 and started again (same store, same port) while train runs: the metrics of
    the outage were kept in the checkpoint folder and sent once it answered, so the run holds every step's
    metrics, ends FINISHED, and nothing is left pending."""
    steps = 250
    write_params(tmp_path, steps=steps, log_every=1, sample_every=1000)
    server = mlflow_server
    port = int(server.uri.rsplit(":", 1)[1])
    stdout_path, stderr_path = tmp_path / "train.out", tmp_path / "train.err"
    deadline = time.monotonic() + 300
    with training_through_an_outage(server, tmp_path, default_prepared, deadline) as train:
        pending = tmp_path / "checkpoints" / f"pip_restormer_tiny{PENDING_SUFFIX}"
        while not pending.is_file():  # an outage step's metrics were kept
            assert train.poll() is None and time.monotonic() < deadline, "nothing was kept during the outage"
            time.sleep(0.05)
        with running_server(server_command(tmp_path, port), f"{server.uri}/health", tmp_path / "again.log",
                            server_environment()):
            back_at = stdout_path.read_text().count("train: step ")
            code = train.wait(timeout=max(1.0, deadline - time.monotonic()))
            assert back_at < steps, "training ended before the server was back: the outage covered the run"
            assert code == 0, f"train exited {code}:\n{stderr_path.read_text()}"
            assert not pending.exists(), "metrics were left pending although the server was back"
            client = MlflowClient(tracking_uri=server.uri)
            run = client.search_runs([client.get_experiment_by_name("pip-universal").experiment_id])[0]
            history = client.get_metric_history(run.info.run_id, "train/loss")
            assert sorted(metric.step for metric in history) == list(range(1, steps + 1))
            assert run.info.status == "FINISHED"


def _a_run_whose_server_dies(server, tmp_path: Path, monkeypatch):
    """A run that logged step 1, then lost its server: (server, its port, the pending file, the tracker)."""
    from pip_model.tracking.tracker import Tracker

    port = int(server.uri.rsplit(":", 1)[1])
    pending = tmp_path / "checkpoints" / f"model{PENDING_SUFFIX}"
    for key, value in OUTAGE_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    tracker = Tracker(uri=server.uri, experiment="outage", run_name="r", pending=pending)
    tracker.log_metrics({"loss": 1.0}, step=1)
    _kill_server(server)
    return server, port, pending, tracker


@pytest.mark.integration
def test_sync_sends_what_an_outage_kept(mlflow_server, tmp_path, monkeypatch):
    """A run whose server dies keeps its metrics and its end on disk; with the server back, ``python -m pip_model
    sync`` sends them (first refusing, with one line, while the server is still away)."""
    server, port, pending, tracker = _a_run_whose_server_dies(mlflow_server, tmp_path, monkeypatch)
    for step in (2, 3):
        tracker.log_metrics({"loss": 1.0 / step, "psnr": 20.0 + step}, step=step)
    tracker.finish()
    assert [entry["kind"] for entry in PendingLog(pending).entries()] == ["metrics", "metrics", "finish"]
    sync = [sys.executable, "-m", "pip_model", "sync", "checkpoints"]
    env = stage_environment(tmp_path, **OUTAGE_ENVIRONMENT)
    refused = subprocess.run(sync, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "its pending MLflow calls could not be sent" in refused.stderr
    assert len(PendingLog(pending).entries()) == 3  # nothing lost by the failed try
    with running_server(server_command(tmp_path, port), f"{server.uri}/health", tmp_path / "again.log",
                        server_environment()):
        done = subprocess.run(sync, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "4 metric values sent" in done.stdout, done.stderr
        assert not pending.exists()
        client = MlflowClient(tracking_uri=server.uri)
        run = client.get_run(tracker.run_id)
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3]
        assert run.data.metrics["psnr"] == 23.0 and run.info.status == "FINISHED"


@pytest.mark.integration
def test_metrics_kept_in_an_outage_go_out_with_the_next_call_that_gets_through(mlflow_server, tmp_path,
                                                                              monkeypatch):
    """The first metrics logged once the server is back carry what the outage kept: the run holds them while it
    still runs, before its end is logged, and nothing is left pending."""
    server, port, pending, tracker = _a_run_whose_server_dies(mlflow_server, tmp_path, monkeypatch)
    with pytest.warns(UserWarning, match="MLflow logging failed"):
        tracker.log_metrics({"loss": 0.5, "psnr": 21.0}, step=2)
    assert [entry["kind"] for entry in PendingLog(pending).entries()] == ["metrics"]
    with running_server(server_command(tmp_path, port), f"{server.uri}/health", tmp_path / "again.log",
                        server_environment()):
        tracker.log_metrics({"loss": 0.25}, step=3)
        client = MlflowClient(tracking_uri=server.uri)
        history = sorted((m.step, m.value) for m in client.get_metric_history(tracker.run_id, "loss"))
        assert history == [(1, 1.0), (2, 0.5), (3, 0.25)]
        run = client.get_run(tracker.run_id)
        assert run.data.metrics["psnr"] == 21.0 and run.info.status == "RUNNING"
        assert not pending.exists()
        tracker.finish()
        assert client.get_run(tracker.run_id).info.status == "FINISHED"


def test_the_experiment_opens_on_its_training_runs(mlflow_store):
    """MLflow's UI opens an experiment on its runs, not the GenAI overview, by the experiment tag
    mlflow.experimentKind; new experiments get it, and an older store's experiment gets it on the next run."""
    from pip_model.tracking.tracker import Tracker

    uri = mlflow_store
    Tracker(uri=uri, experiment="fresh", run_name="a").finish()
    client = MlflowClient(tracking_uri=uri)
    assert client.get_experiment_by_name("fresh").tags["mlflow.experimentKind"] == "custom_model_development"
    client.create_experiment("older")
    Tracker(uri=uri, experiment="older", run_name="b").finish()
    assert client.get_experiment_by_name("older").tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_wrong_model_uri_gets_one_line_naming_what_exists(mlflow_store, tmp_path, monkeypatch, capsys):
    """`prompt-restore --model models:/...` with a name, alias or version the store does not hold: one line that
    says so and lists what is registered, instead of MLflow's traceback."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    MlflowClient().create_registered_model("pip-universal-demo")
    write_png(tmp_path / "in" / "photo.png", np.full((32, 32, 3), 0.5, np.float32))
    expected = {"models:/nope@x": "no registered model 'nope' in MLflow at sqlite:///",
                "models:/pip-universal-demo@candidate": "pip-universal-demo has no alias 'candidate' (aliases: none; "
                                                       "versions: none)",
                "models:/pip-universal-demo/3": "pip-universal-demo has no version '3'"}
    for spec, message in expected.items():
        assert restore.main([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", spec]) == 2
        said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("restore:")]
        assert len(said) == 1 and said[0].startswith(f"restore: {spec}: ") and message in said[0], said
        assert "pip-universal-demo" in said[0] and "Traceback" not in said[0]
    # A run that does not exist.
    assert restore.main([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", "runs:/0123/model"]) == 2
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("restore:")]
    assert len(said) == 1 and said[0].startswith("restore: runs:/0123/model: cannot load it from MLflow at sqlite:///")


@pytest.mark.parametrize(("uri", "message"), [
    ("foo://host/store", "'foo://host/store' has the unknown scheme 'foo://'; use sqlite:///PATH, http(s)://"),
    ("mlflow.db", "'mlflow.db' is a path: MLflow keeps folder stores in maintenance mode only; use a database, e.g. "
                  "sqlite:///"),
    ("file:///tmp/mlruns", "'file:///tmp/mlruns' is a path"),
    ("http://127.0.0.1:9", "the MLflow tracking server at http://127.0.0.1:9 does not answer"),
], ids=["unknown-scheme", "bare-path", "file-store", "no-server"])
def test_a_wrong_tracking_uri_gets_one_line_before_anything_runs(uri, message):
    from pip_model.tracking.tracker import Tracker, TrackingUnavailable

    with pytest.raises(TrackingUnavailable) as error:
        Tracker(uri=uri, experiment="e", run_name="r")
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert "MLFLOW_TRACKING_URI" in str(error.value)


@pytest.mark.parametrize("uri", ["http://alice:secret@mlflow-host:5000", "postgresql://mlflow:secret@db:5432/mlflow"])
def test_a_password_in_params_yaml_is_refused(tmp_path, uri):
    """params.yaml is committed: a tracking URI there that carries a password stops every stage with one line
    that says where a login goes instead (a URI without one is fine)."""
    from pip_model.config import ConfigError, load_section
    from pip_model.tracking.tracker import TrackingConfig

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"tracking": {"uri": uri}}))
    with pytest.raises(ConfigError) as error:
        load_section(TrackingConfig, "tracking", params)
    assert "tracking.uri holds a password" in str(error.value) and "MLFLOW_TRACKING_PASSWORD" in str(error.value)
    assert "secret" not in str(error.value)
    params.write_text(yaml.safe_dump({"tracking": {"uri": uri.replace(":secret", "")}}))
    assert load_section(TrackingConfig, "tracking", params).uri == uri.replace(":secret", "")


@pytest.mark.integration
def test_sync_skips_torn_lines_and_deleted_runs_and_a_stuck_file_blocks_no_other(mlflow_store, tmp_path, monkeypatch):
    """A pending file torn by a kill, holding a line for a run deleted since, sends the rest and keeps the two lines
    aside (reported, never dropped); in folder mode a file whose server is away keeps its entries and the files
    after it are still sent."""
    uri = mlflow_store
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("sync")
    kept, deleted, other = (client.create_run(experiment).info.run_id for _ in range(3))
    client.delete_run(deleted)
    folder = tmp_path / "checkpoints"

    def metrics(run_id: str, value: float, target: str = uri) -> dict:
        return {"uri": target, "run_id": run_id, "kind": "metrics", "metrics": [["loss", value, 0, 1]]}

    torn = folder / f"b{PENDING_SUFFIX}"
    for entry in (metrics(kept, 0.5), metrics(deleted, 0.4)):
        PendingLog(torn).append(entry)
    with torn.open("a") as file:
        file.write('{"uri": "sqlite:///x", "run_id": "ab')  # the kill came mid-line
    stuck = folder / f"a{PENDING_SUFFIX}"  # sorted first: its server does not answer
    PendingLog(stuck).append(metrics(kept, 0.9, "http://127.0.0.1:9"))
    PendingLog(folder / f"c{PENDING_SUFFIX}").append(metrics(other, 0.3))

    env = stage_environment(tmp_path, **OUTAGE_ENVIRONMENT)
    done = subprocess.run([sys.executable, "-m", "pip_model", "sync", str(folder)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert f"{stuck}: its pending MLflow calls could not be sent" in done.stderr
    assert f"{torn}: skipped line 2: run {deleted} was deleted" in done.stderr
    assert f"{torn}: skipped line 3: torn" in done.stderr
    assert f"{torn}: 1 metric values sent" in done.stdout and f"c{PENDING_SUFFIX}: 1 metric values sent" in done.stdout
    assert "Traceback" not in done.stderr
    assert client.get_run(kept).data.metrics["loss"] == 0.5 and client.get_run(other).data.metrics["loss"] == 0.3
    assert len(PendingLog(stuck).entries()) == 1 and not torn.exists()
    aside = torn.with_name(torn.name + ".rejected").read_text().splitlines()
    assert len(aside) == 2 and deleted in aside[0] and aside[1].endswith('"run_id": "ab')


def test_the_lineage_names_the_hash_the_producer_wrote_not_a_later_stages_old_entry(tmp_path):
    """While `evaluate` runs, dvc.lock already holds `degrade`'s new hash of data/benchmark, but `report` (after it)
    still lists the old one among its deps: the run must name the new one."""
    from pip_model.tracking.lineage import dvc_input_tags

    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "degrade": {"outs": [{"path": "data/benchmark", "md5": "new.dir"}]},
        "report": {"deps": [{"path": "data/benchmark", "md5": "old.dir"}]}}}))
    assert dvc_input_tags(tmp_path, ["data/benchmark"]) == {"dvc.data/benchmark.md5": "new.dir"}


@pytest.mark.integration
def test_git_dirty_is_about_the_source_not_what_dvc_writes(tmp_path):
    from pip_model.tracking.lineage import git_tags

    def git(*arguments: str) -> None:
        subprocess.run(["git", *arguments], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "params.yaml").write_text("train: {lr: 1}\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "metrics.json").write_text("{}\n")
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"stages": {"evaluate": {"outs": [
        {"path": "results/metrics.json", "md5": "a"}, {"path": "models", "md5": "b.dir"}]}}}))
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    # What a `dvc repro` or `dvc exp run -S` changes: outputs (new ones too), dvc.lock, params.yaml.
    (tmp_path / "results" / "metrics.json").write_text('{"a": 1}\n')
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "new.pt").write_text("weights")
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"stages": {"evaluate": {"outs": [
        {"path": "results/metrics.json", "md5": "c"}, {"path": "models", "md5": "d.dir"}]}}}))
    (tmp_path / "params.yaml").write_text("train: {lr: 2}\n")
    tags = git_tags(tmp_path)
    assert tags["git.dirty"] == "False" and "git.dirty_files" not in tags and len(tags["git.commit"]) == 40
    (tmp_path / "code.py").write_text("x = 2\n")
    (tmp_path / "notes.md").write_text("new\n")
    tags = git_tags(tmp_path)
    assert tags["git.dirty"] == "True" and tags["git.dirty_files"] == "code.py, notes.md"
