"""Training and evaluation give the same bits whatever instruction set the CPU has beyond AVX2: the CPU kernels
are pinned.

A CPU without AVX-512 is emulated on this one through the libraries' own switches (``cpu_kernels.AVX2_CPU``:
ATen's ATEN_CPU_CAPABILITY, oneDNN's ONEDNN_MAX_CPU_ISA, numpy's NPY_DISABLE_CPU_FEATURES and OpenBLAS's
OPENBLAS_CORETYPE), as they would find it there: the real train and evaluate stages must then write the same
weights, curve, metrics and per-image scores as here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from pip_model import cpu_kernels
from tests.helpers.stages import ROOT, stage_environment

AVX2_CPU = cpu_kernels.AVX2_CPU
NATIVE = {cpu_kernels.MODE_VARIABLE: "native"}


def test_the_pin_sets_each_library_to_its_avx2_level_where_the_environment_is_silent():
    environ: dict[str, str] = {}
    cpu_kernels.pin(environ)
    assert environ == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "COMPATIBLE"}


def test_a_variable_set_by_hand_wins_and_native_sets_nothing():
    environ = {"MKL_CBWR": "AUTO"}
    cpu_kernels.pin(environ)
    assert environ["MKL_CBWR"] == "AUTO" and environ["ATEN_CPU_CAPABILITY"] == "avx2"
    environ = dict(NATIVE)
    cpu_kernels.pin(environ)
    assert environ == NATIVE


def test_an_unknown_mode_is_refused_naming_the_variable_and_the_choices():
    with pytest.raises(ValueError, match=r"PIP_CPU_KERNELS='fast': use one of reproducible, native"):
        cpu_kernels.pin({"PIP_CPU_KERNELS": "fast"})


def test_this_process_runs_the_pinned_kernels_and_says_so():
    found = cpu_kernels.check()  # the suite imported pip_model before torch ran a kernel
    assert (found["mode"], found["aten"], found["onednn_max_isa"]) == ("reproducible", "AVX2", "AVX2")
    assert cpu_kernels.describe(found).startswith("CPU kernels AVX2 (ATen), AVX2 (oneDNN), COMPATIBLE (MKL), ")


def test_a_pin_that_came_too_late_is_reported(monkeypatch):
    """ATen fixes its level at its first kernel: asked for another level afterwards, check() warns."""
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    with pytest.warns(RuntimeWarning, match="not the pinned DEFAULT: it ran a kernel before pip_model"):
        cpu_kernels.check()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cpu_kernels.check()


def _environment(folder: Path, env: dict[str, str]) -> dict[str, str]:
    """A stage's environment as a fresh shell would give it (this process's pin removed), plus ``env``."""
    environment = stage_environment(folder)
    for name in cpu_kernels.REPRODUCIBLE:
        environment.pop(name, None)
    return {**environment, **env}


def _skip_without_a_wider_cpu(folder: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                          env=_environment(folder, NATIVE), capture_output=True, text=True, check=True)
    if done.stdout.strip() != "AVX512":
        pytest.skip(f"this CPU's widest kernels are {done.stdout.strip()}: no level above AVX2 to compare against")


def _params(folder: Path) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(model="pip_restormer_tiny", steps=8, batch_size=4, patch=32, warmup_steps=2)
    params["train_run"].update(threads=1, log_every=4, sample_every=100, checkpoint_every=100)
    params["evaluate"].update(classical=False, examples_per_task=1)
    folder.mkdir(parents=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder / "params.yaml"


def _train_and_evaluate(folder: Path, prepared: Path, benchmark: Path, env: dict[str, str], store: Path, *,
                        evaluate: bool = True) -> dict[str, bytes]:
    """Runs the train stage (and the evaluate stage) in ``folder`` under ``env``; returns the bits they wrote."""
    params = _params(folder)
    shutil.copyfile(store, folder / "mlflow.db")
    environment = _environment(folder, env)
    stage = ROOT / "stages"
    subprocess.run([sys.executable, str(stage / "train.py"), "--params", str(params), "--model", "pip_restormer_tiny",
                    "--prepared", str(prepared), "--pairs", str(folder / "pairs"), "--out", str(folder / "model.pt"),
                    "--curve", str(folder / "curve.csv"), "--checkpoint", str(folder / "checkpoint.pt")],
                   cwd=folder, env=environment, check=True, capture_output=True, text=True)
    content = torch.load(folder / "model.pt", weights_only=True)
    bits = {"weights": b"".join(tensor.numpy().tobytes() for tensor in content["state_dict"].values()),
            "curve": (folder / "curve.csv").read_bytes(), "kernels": json.dumps(content["cpu_kernels"]).encode()}
    if evaluate:
        done = subprocess.run([sys.executable, str(stage / "evaluate.py"), "--params", str(params), "--benchmark",
                               str(benchmark), "--models", str(folder / "model.pt"), "--metrics", "metrics.json",
                               "--per-image", "per_image.csv", "--examples", "examples", "--prompts", "prompts.json"],
                              cwd=folder, env=environment, check=True, capture_output=True, text=True)
        assert "CPU kernels" in done.stdout
        bits.update({name: (folder / name).read_bytes() for name in ("metrics.json", "per_image.csv", "prompts.json")})
    return bits


@pytest.mark.integration
def test_training_and_evaluation_write_the_same_bits_on_an_avx2_cpu(default_prepared, benchmark_48,
                                                                     _empty_mlflow_database, tmp_path):
    _skip_without_a_wider_cpu(tmp_path)
    here = _train_and_evaluate(tmp_path / "here", default_prepared, benchmark_48, {}, _empty_mlflow_database)
    narrower = _train_and_evaluate(tmp_path / "avx2", default_prepared, benchmark_48, AVX2_CPU,
                                   _empty_mlflow_database)
    assert json.loads(here["kernels"]) == {"mode": "reproducible", "aten": "AVX2", "onednn_max_isa": "AVX2",
                                           "mkl_cbwr": "COMPATIBLE", "threads": 1}
    assert here.keys() == narrower.keys()
    for name in here:
        assert here[name] == narrower[name], f"{name} differs between this CPU and an AVX2 one"


@pytest.mark.integration
def test_without_the_pin_the_cpu_changes_the_trained_weights(default_prepared, benchmark_48, _empty_mlflow_database,
                                                             tmp_path):
    """The control: the same two runs with each library on its own path differ, so the test above can fail."""
    _skip_without_a_wider_cpu(tmp_path)
    here = _train_and_evaluate(tmp_path / "here", default_prepared, benchmark_48, NATIVE, _empty_mlflow_database,
                               evaluate=False)
    narrower = _train_and_evaluate(tmp_path / "avx2", default_prepared, benchmark_48, {**NATIVE, **AVX2_CPU},
                                   _empty_mlflow_database, evaluate=False)
    assert json.loads(here["kernels"])["aten"] == "AVX512" and json.loads(narrower["kernels"])["aten"] == "AVX2"
    assert here["weights"] != narrower["weights"]
