"""The served model as an attacker and a careless client meet it: a request names a prompt and nothing that loads,
its size and values are bounded, and every refusal is one line; the model serves from a folder with no store."""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from torch import nn

from pip_model.apps.serving import RequestRefused, ServedRestorer
from pip_model.evaluation.tiling import restore_tiled
from pip_model.networks.registry import build_model
from pip_model.tracking.tracker import Tracker
from tests.helpers.models import randomise_output
from tests.helpers.servers import free_port, running_server, server_environment


class _Payload:
    """What an attacker pickles: unpickling it runs a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _served(seed: int = 0) -> ServedRestorer:
    torch.manual_seed(seed)
    model = randomise_output(build_model("pip_nafnet_tiny")).eval()
    return ServedRestorer(model, sensor=build_model("sensor_tiny").eval(), sensor_name="sensor_tiny").eval()


class _Doubling(nn.Module):
    """A restorer whose output leaves [0, 1]: what the clamp must catch."""

    uses_prompts = False

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, images: torch.Tensor, degradation: torch.Tensor | None = None) -> torch.Tensor:
        return images * self.scale - 0.5


@pytest.mark.parametrize(("change", "message"), [
    (lambda x: x.index_fill(-1, torch.tensor([3]), float("nan")), "96 pixel values are NaN or infinite"),
    (lambda x: x.index_fill(-1, torch.tensor([3]), float("inf")), "NaN or infinite"),
    (lambda x: x * 255, "they look like 0-255 values: divide them by 255"),
    (lambda x: x - 0.5, "pixel values must lie in [0, 1]; these span -0.49"),
])
def test_pixels_off_the_unit_scale_are_refused_in_one_line(change, message):
    served = _served()
    with pytest.raises(RequestRefused) as refused:
        served(change(torch.rand(1, 3, 32, 32).clamp(0.01, 1)), task="derain")
    assert message in str(refused.value) and "\n" not in str(refused.value) and refused.value.status == 400


@pytest.mark.parametrize("task", ["rain=nan", "rain=inf", "rain=1e308,haze=1e308", "rain=0", "nope"])
def test_mixtures_that_are_not_finite_shares_are_refused(task):
    with pytest.raises(RequestRefused) as refused:
        _served()(torch.rand(1, 3, 32, 32), task=task)
    assert str(refused.value).startswith("params.task: ") and refused.value.status == 400


def test_every_output_is_clamped_to_the_unit_range():
    served = ServedRestorer(_Doubling())
    out = served(torch.rand(2, 3, 16, 16))
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


def test_a_request_names_the_bundled_sensor_or_nothing():
    served, images = _served(), torch.rand(1, 3, 32, 32)
    expected = served.model(images, served.sensor.prompt(images)[1])
    torch.testing.assert_close(served(images, task="auto", sensor="sensor_tiny"), expected.clamp(0, 1))
    torch.testing.assert_close(served(images, task="auto"), expected.clamp(0, 1))
    for attempt in ("/tmp/attacker/model", "http://127.0.0.1:9/model", "models:/other@x"):
        with pytest.raises(RequestRefused) as refused:
            served(images, task="auto", sensor=attempt)
        assert "a request cannot load a model, a file or a URL" in str(refused.value)
    without = ServedRestorer(served.model)
    with pytest.raises(RequestRefused, match="registered without a degradation sensor"):
        without(images, task="auto")


def test_task_auto_hands_back_an_image_with_nothing_to_restore():
    served, images = _served(), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.nn.init.zeros_(served.sensor.classifier.weight)
        served.sensor.classifier.bias.fill_(-6.0)
    torch.testing.assert_close(served(images, task="auto"), images, rtol=0, atol=0)


def test_large_requests_are_tiled_refused_past_the_limit_and_stopped_at_the_deadline(monkeypatch):
    served, images = _served(), torch.rand(1, 3, 80, 72)
    monkeypatch.setenv("PIP_SERVE_TILE", "66")
    tiled = restore_tiled(served.model, images, torch.eye(5)[1:2], tile=66, overlap=32)
    torch.testing.assert_close(served(images, task="derain"), tiled.clamp(0, 1))
    assert not torch.allclose(tiled, served.model(images, torch.eye(5)[1:2]))  # it was tiled, not one pass
    monkeypatch.setenv("PIP_SERVE_MAX_PIXELS", str(80 * 72 - 1))
    with pytest.raises(RequestRefused) as refused:
        served(images, task="derain")
    assert refused.value.status == 413 and "over this server's limit of 5,759 pixels" in str(refused.value)
    monkeypatch.setenv("PIP_SERVE_MAX_PIXELS", str(80 * 72))
    monkeypatch.setenv("MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT", "0")
    with pytest.raises(RequestRefused) as refused:
        served(images, task="derain")
    assert refused.value.status == 504 and "past this server's timeout" in str(refused.value)


def test_a_failure_inside_the_model_is_one_line_with_no_traceback(caplog):
    class Broken(_Doubling):
        def forward(self, images, degradation=None):
            raise RuntimeError("secret internal detail")

    with pytest.raises(RequestRefused) as refused:
        ServedRestorer(Broken())(torch.rand(1, 3, 8, 8))
    assert refused.value.status == 500 and "secret" not in str(refused.value)
    assert "secret internal detail" in caplog.text  # the server's log keeps it
    assert "stack_trace" not in refused.value.serialize_as_json()


def _post(port: int, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", method="POST",
                                     headers={"Content-Type": "application/json"}, data=json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _attacker_model(folder: Path, marker: Path) -> Path:
    """An MLflow PyTorch model folder whose pickle runs ``touch marker`` when MLflow loads it."""
    mlflow.pytorch.save_model(nn.Linear(1, 1), folder, serialization_format="pickle")
    torch.save(_Payload(f"touch {marker}"), folder / "data" / "model.pth")
    return folder


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (the standard library's name)
        _Recorder.requests.append(self.path)
        self.send_error(404)

    def log_message(self, *arguments):
        pass


@pytest.mark.integration
def test_the_served_model_runs_nothing_a_request_sends_and_serves_without_a_store(tmp_path):
    """The registered model, copied to a folder far from any tracking store and served by `mlflow models serve`:
    the exploit (a request's sensor naming a model folder whose pickle runs a command, or an attacker's URL) gets
    one 400 line and runs nothing; a request without params uses the bundled sensor; a large image is tiled, one
    over the limit gets 413; bad pixels get 400; and no tracking store appears beside the server."""
    store = f"sqlite:///{tmp_path / 'registry' / 'mlflow.db'}"
    (tmp_path / "registry").mkdir()
    served = _served()
    tracker = Tracker(uri=store, experiment="serving", run_name="train-pip_nafnet_tiny")
    example = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    assert tracker.log_model(served, registered_name="pip-universal-pip_nafnet_tiny", alias="candidate",
                             input_example=example, params={"task": "auto", "sensor": "sensor_tiny"},
                             example_params={"task": "noise"}) == "1"
    tracker.finish()
    model_folder = Path(mlflow.artifacts.download_artifacts(
        f"runs:/{tracker.run_id}/model", dst_path=str(tmp_path / "copied"), tracking_uri=store))

    marker = tmp_path / "payload-ran"
    attacker = _attacker_model(tmp_path / "attacker", marker)
    with pytest.raises(AttributeError):  # the control: MLflow loading this folder runs the payload (then fails)
        mlflow.pytorch.load_model(str(attacker))
    assert marker.exists()
    marker.unlink()
    recorder = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()

    cwd = tmp_path / "server-cwd"
    cwd.mkdir()
    port = free_port()
    env = {key: value for key, value in server_environment().items() if not key.startswith("MLFLOW_TRACKING")}
    # A module the server could import, which leaves a file behind when it is: a request naming it must not.
    importable = tmp_path / "importable"
    importable.mkdir()
    (importable / "evil_sentinel.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('IMPORTED').write_text('imported')\nMODELS = {}\n")
    env.update(PIP_SERVE_TILE="66", PIP_SERVE_MAX_PIXELS="7000", PYTHONPATH=str(importable))
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_folder), "--env-manager", "local",
               "--host", "127.0.0.1", "--port", str(port)]
    try:
        with running_server(command, f"http://127.0.0.1:{port}/ping", tmp_path / "serve.log", env, cwd=cwd):
            image = torch.rand(1, 3, 80, 72)
            for sensor in (str(attacker), f"http://127.0.0.1:{recorder.server_port}/model",
                           f"runs:/{tracker.run_id}/model"):
                status, answer = _post(port, {"inputs": image.tolist(), "params": {"task": "auto", "sensor": sensor}})
                assert status == 400, answer
                assert "a request cannot load a model, a file or a URL" in answer["message"]
                assert "\n" not in answer["message"] and "stack_trace" not in answer
            assert not marker.exists() and _Recorder.requests == []

            status, answer = _post(port, {"inputs": image.tolist()})  # no params: task=auto, the bundled sensor
            assert status == 200, answer
            predicted = torch.tensor(answer["predictions"])
            with torch.no_grad():
                prompt = served.sensor.prompt(image)[1]
                expected = restore_tiled(served.model, image, prompt, tile=66, overlap=32).clamp(0, 1)
            torch.testing.assert_close(predicted, expected, atol=1e-5, rtol=0)
            assert 0 <= float(predicted.min()) and float(predicted.max()) <= 1

            status, answer = _post(port, {"inputs": torch.rand(1, 3, 100, 90).tolist(), "params": {"task": "rain"}})
            assert status == 413 and "over this server's limit of 7,000 pixels" in answer["message"], answer
            for pixels, message in ((image * 255, "divide them by 255"), (image.index_fill(-1, torch.tensor([0]),
                                                                                           float("nan")), "NaN")):
                status, answer = _post(port, {"inputs": pixels.tolist(), "params": {"task": "rain"}})
                assert status == 400 and message in answer["message"] and "\n" not in answer["message"], answer
            status, answer = _post(port, {"inputs": image.tolist(), "params": {"task": "rain=nan"}})
            assert status == 400 and answer["message"].startswith("params.task: weight of rain is nan"), answer
            for params in ({"task": "evil_sentinel:MODELS"}, {"task": "auto", "sensor": "evil_sentinel:MODELS"}):
                status, answer = _post(port, {"inputs": image.tolist(), "params": params})
                assert status == 400 and "\n" not in answer["message"], answer
            assert not (importable / "IMPORTED").exists()  # a name in a request is never imported
    finally:
        recorder.shutdown()
    assert not marker.exists()
    assert sorted(path.name for path in cwd.iterdir()) == []  # no mlflow.db, nothing: the model is self-contained
