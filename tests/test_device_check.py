"""bench/device_check.sh, the one-call GPU check, dry-run on the CPU with tiny models and a few steps."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration


def test_the_device_check_dry_runs_on_the_cpu_into_one_json_and_one_page(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "bench" / "device_check.sh"), "--cpu", "--out", str(tmp_path),
                           "--budget-s", "300"], cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "device_check.json").read_text())
    sections = {record["name"]: record for record in results["sections"]}
    assert list(sections) == ["pytest -m gpu", "bench/gpu.py pip_restormer_tiny", "bench/gpu.py promptir_tiny",
                              "paper-config training"]
    assert all(record["status"] == "passed" for record in sections.values()), sections
    assert "skipped" in sections["pytest -m gpu"]["summary"]  # no CUDA here: the GPU tests are collected and skipped
    for model in ("pip_restormer_tiny", "promptir_tiny"):
        figures = sections[f"bench/gpu.py {model}"]["figures"]
        assert figures["model"] == model and figures["size"] == 32
        assert figures["model_only"]["patches_per_s"] > 0 and 0 <= figures["end_to_end"]["data_share"] < 1
    training = sections["paper-config training"]["figures"]
    # The 3task protocol's pip recipe: its loss, tasks and micro-batches, cut to two steps.
    assert training["steps"] == 2 and training["loss"] == "smooth_l1" and training["accumulate"] == 2
    assert training["tasks"] == ["denoise_15", "denoise_25", "denoise_50", "derain", "dehaze"]
    assert training["patches_per_s"] > 0 and training["last_loss"] > 0
    page = (tmp_path / "device_check.md").read_text()
    assert "| pip_restormer_tiny | model only |" in page and "## Paper-config training on stand-ins" in page


def test_a_section_past_its_time_is_recorded_and_the_check_fails(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "bench" / "device_check.sh"), "--cpu", "--out", str(tmp_path),
                           "--budget-s", "6"], cwd=ROOT, capture_output=True, text=True, timeout=200)
    assert done.returncode == 1
    statuses = [record["status"] for record in json.loads((tmp_path / "device_check.json").read_text())["sections"]]
    assert statuses[0].startswith(("stopped after", "passed")) and "skipped: the budget is spent" in statuses
