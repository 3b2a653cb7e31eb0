"""Training: the schedule, resumption after a kill, real DDP with gloo, and MLflow failure policy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from pip_model.checkpoints import load_model_file
from pip_model.corpus import PrepareConfig, prepare_corpus
from pip_model.data import DegradeConfig, OnlinePairSampler, load_split, write_offline_pairs
from pip_model.registry import build_model
from pip_model.training import SensorConfig, TrainConfig, lr_factor, train, train_sensor
from tests.conftest import free_port
from tests.workers.ddp_train import TINY

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prepare_corpus(PrepareConfig(), seed=0, out_dir=out, progress=lambda message: None)
    return out


def test_warmup_then_cosine_schedule():
    factors = [lr_factor(step, warmup=10, total=100, floor=0.01) for step in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[10] == pytest.approx(1.0)
    assert factors[100] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert all(a <= b for a, b in zip(factors[:10], factors[1:11]))


def test_train_writes_a_loadable_model_and_its_curve(prepared, tmp_path):
    config = TrainConfig(model="restormer_tiny", steps=4, batch_size=2, patch=32, warmup_steps=1, threads=1)
    result = train(config, seed=0, device="cpu", prepared_dir=prepared, pairs_dir=None,
                   model_path=tmp_path / "model.pt", curve_path=tmp_path / "curve.csv",
                   checkpoint_path=tmp_path / "ckpt.pt", progress=False, model_metadata=lambda: {"run_id": "abc"})
    curve = pd.read_csv(tmp_path / "curve.csv")
    assert list(curve.columns) == ["step", "loss", "psnr", "lr"] and curve["step"].tolist() == [1, 2, 3, 4]
    model, metadata = load_model_file(tmp_path / "model.pt")
    assert metadata["model_name"] == "restormer_tiny" and metadata["run_id"] == "abc" and metadata["step"] == 4
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key])
    assert not (tmp_path / "ckpt.pt").exists() and result.patches_per_s > 0


def test_offline_training_draws_the_written_pairs(prepared, tmp_path):
    write_offline_pairs(prepared, DegradeConfig(train_pairs_per_task=2, train_patch=32), seed=0,
                        out_dir=tmp_path / "pairs", progress=lambda message: None)
    config = TrainConfig(model="nafnet_tiny", source="offline", steps=3, batch_size=4, patch=32, warmup_steps=1,
                         threads=1)
    result = train(config, seed=0, device="cpu", prepared_dir=prepared, pairs_dir=tmp_path / "pairs",
                   model_path=tmp_path / "model.pt", curve_path=tmp_path / "curve.csv",
                   checkpoint_path=tmp_path / "ckpt.pt", progress=False)
    assert result.curve["step"].tolist() == [1, 2, 3] and result.curve["loss"].gt(0).all()


def _stage_params(folder: Path, **train_overrides) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(dict(model="pip_nafnet_tiny", steps=12, batch_size=2, patch=32, warmup_steps=2,
                                checkpoint_every=3, log_every=1, sample_every=6, threads=1), **train_overrides)
    path = folder / "params.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(params))
    return path


def _train_command(params: Path, prepared: Path, out: Path) -> list[str]:
    return [sys.executable, str(ROOT / "stages" / "train.py"), "--params", str(params), "--prepared", str(prepared),
            "--pairs", str(out / "pairs"), "--out", str(out / "model.pt"), "--curve", str(out / "curve.csv"),
            "--checkpoint", str(out / "checkpoint.pt")]


def _environment(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}", PYTHONPATH=str(ROOT))


def test_a_killed_run_resumes_to_the_same_weights(prepared, tmp_path):
    env = _environment(tmp_path)
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    params = _stage_params(tmp_path / "config")
    subprocess.run(_train_command(params, prepared, straight), env=env, check=True, capture_output=True)

    process = subprocess.Popen(_train_command(params, prepared, interrupted), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (interrupted / "checkpoint.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline, "training ended before its first checkpoint"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (interrupted / "model.pt").exists()

    resumed = subprocess.run(_train_command(params, prepared, interrupted), env=env, check=True,
                             capture_output=True, text=True)
    assert "resuming from" in resumed.stdout
    final, _ = load_model_file(interrupted / "model.pt")
    reference, _ = load_model_file(straight / "model.pt")
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(final.state_dict()[key], value, rtol=0, atol=1e-6, msg=key)
    assert len(pd.read_csv(interrupted / "curve.csv")) == 12


def test_a_checkpoint_of_other_settings_is_not_resumed(prepared, tmp_path):
    env = _environment(tmp_path)
    out = tmp_path / "run"
    first = _stage_params(tmp_path / "a", steps=6, checkpoint_every=3)
    process = subprocess.Popen(_train_command(first, prepared, out), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    while not (out / "checkpoint.pt").exists():
        assert process.poll() is None, "training ended before its first checkpoint"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    changed = _stage_params(tmp_path / "b", steps=6, checkpoint_every=3, lr=0.001)
    done = subprocess.run(_train_command(changed, prepared, out), env=env, check=True, capture_output=True, text=True)
    assert "written with other settings" in done.stdout and "resuming" not in done.stdout


def test_ddp_with_two_gloo_ranks_matches_one_process(prepared, tmp_path):
    ddp = tmp_path / "ddp"
    ddp.mkdir()
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(ROOT / "tests" / "workers" / "ddp_train.py"), str(ddp), str(prepared)],
                   check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"))
    rank0 = torch.load(ddp / "rank0.pt", weights_only=True)
    rank1 = torch.load(ddp / "rank1.pt", weights_only=True)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"replicas disagree on {key}"
    single = train(TINY, seed=0, device="cpu", prepared_dir=prepared, pairs_dir=None, model_path=tmp_path / "m.pt",
                   curve_path=tmp_path / "c.csv", checkpoint_path=tmp_path / "k.pt", progress=False)
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(rank0[key], value, rtol=1e-4, atol=1e-5, msg=key)
    torch.manual_seed(0)
    initial = build_model(TINY.model).state_dict()
    assert any(not torch.equal(initial[key], value) for key, value in rank0.items())  # weights did train
    assert (ddp / "model.pt").exists() and len(pd.read_csv(ddp / "curve.csv")) == 3


def test_unreachable_tracking_server_fails_before_training(prepared, tmp_path):
    params = _stage_params(tmp_path / "config")
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}", PYTHONPATH=str(ROOT))
    out = tmp_path / "run"
    started = time.monotonic()
    done = subprocess.run(_train_command(params, prepared, out), env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "does not answer" in done.stderr and "nothing was trained" in done.stderr
    assert not (out / "model.pt").exists() and time.monotonic() - started < 60


def test_sensor_learns_to_tell_noise_from_haze(prepared):
    config = SensorConfig(tasks=("denoise_50", "dehaze"), steps=40, batch_size=16, patch=32, lr=3e-3)
    sensor = train_sensor(config, seed=0, device="cpu", prepared_dir=prepared, progress=False)
    images = [image for _, image in load_split(prepared, "test")]
    check = OnlinePairSampler(images, tasks=("denoise_50", "dehaze"), patch=32, batch_size=32, seed=99).batch(0)
    with torch.no_grad():
        predicted = sensor(check.degraded).argmax(dim=1)
    assert (predicted == check.class_ids).float().mean() > 0.8
    with pytest.raises(ValueError, match="sensor.model must be a sensor"):
        SensorConfig(model="pip_restormer_tiny")
