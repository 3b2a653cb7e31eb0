"""Every entry point follows the conventions: ``--help`` lists its arguments and an example and does no work; an
unknown argument gets one line and exit code 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # every check runs an entry point as a process

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {
    "prompt-restore": [str(Path(sys.executable).parent / "prompt-restore")],
    "pip_model": [sys.executable, "-m", "pip_model"],
    "pip_model restore": [sys.executable, "-m", "pip_model", "restore"],
    "pip_model sync": [sys.executable, "-m", "pip_model", "sync"],
    "pip_model studio": [sys.executable, "-m", "pip_model", "studio"],
    **{f"flows.{name}": [sys.executable, "-m", f"flows.{name}"]
       for name in ("pipeline", "sweep", "seeds", "paper", "deploy")},
}
# What each --help must name besides its example: its choices and arguments.
NAMED = {"prompt-restore": ["--task", "derain_dehaze", "auto", "--max-pixels"],
         "pip_model": ["restore", "studio", "sync"], "pip_model restore": ["--mix"], "pip_model sync": ["PATH"],
         "pip_model studio": ["--host", "--port", "--model"], "flows.pipeline": ["KEY=VALUE", "--pull"],
         "flows.sweep": ["KEY=V1,V2"], "flows.seeds": ["SEED"], "flows.paper": ["PROTOCOL", "DATASETS_DIR"],
         "flows.deploy": ["--pool", "--source"]}


def _run(name: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MLFLOW_TRACKING_URI=f"sqlite:///{cwd / 'never.db'}")
    return subprocess.run([*ENTRY_POINTS[name], *arguments], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_help_answers_without_working_and_an_unknown_argument_is_one_line(name, tmp_path):
    if name == "prompt-restore" and not Path(ENTRY_POINTS[name][0]).exists():
        pytest.skip("prompt-restore is not installed in this interpreter's environment")
    shown = _run(name, "--help", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("usage: ") and "example:" in shown.stdout
    for word in NAMED[name]:
        assert word in shown.stdout, (word, shown.stdout)
    assert list(tmp_path.iterdir()) == []  # no run, no store, no file
    refused = _run(name, "--no-such-flag", cwd=tmp_path)
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "error:" in lines[0], refused.stderr
    assert "Traceback" not in refused.stderr and list(tmp_path.iterdir()) == []


def test_the_paper_flow_lists_the_protocols_of_params_yaml(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shown = _run("flows.paper", "--help", cwd=tmp_path)
    assert shown.returncode == 0 and "3task, 5task" in shown.stdout
    refused = _run("flows.paper", "7task", "data", cwd=tmp_path)
    assert refused.returncode == 2 and "invalid choice: '7task'" in refused.stderr


def test_the_paper_flow_takes_several_released_files_after_one_flag(tmp_path):
    """``--evaluate-only adair=A moce_ir=M``: one flag, a file per model; an override left after the files is named
    as one, and a file given twice for one model is refused, all before any work."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    for name in ("a.ckpt", "m.ckpt"):
        (tmp_path / name).write_bytes(b"")
    stray = _run("flows.paper", "3task", "data", "--evaluate-only", "adair=a.ckpt", "moce_ir=m.ckpt",
                 "base.device=cpu", cwd=tmp_path)
    assert stray.returncode == 2 and "put overrides before --evaluate-only" in stray.stderr, stray.stderr
    twice = _run("flows.paper", "3task", "data", "--evaluate-only", "adair=a.ckpt", "adair=m.ckpt", cwd=tmp_path)
    assert twice.returncode == 2 and "one file per NAME" in twice.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.ckpt", "m.ckpt", "params.yaml"]
