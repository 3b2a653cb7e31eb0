"""The prepare and degrade stages run under real `dvc repro` in a git repository."""

from __future__ import annotations

import pandas as pd

TINY = {"degrade": {"benchmark_crop": 64, "crops_per_image": 1, "train_pairs_per_task": 2, "train_patch": 32}}


def test_dvc_repro_prepares_and_degrades_then_caches(pipeline_repo):
    repo = pipeline_repo(TINY)
    repo.dvc("repro", "degrade")
    benchmark = pd.read_csv(repo.path / "data" / "benchmark" / "manifest.csv")
    assert set(benchmark["task"]) == {"denoise_15", "denoise_25", "denoise_50", "derain", "dehaze", "deblur", "lowlight"}
    assert all((repo.path / "data" / "benchmark" / p).is_file() for p in benchmark["degraded_path"])
    assert len(pd.read_csv(repo.path / "data" / "train_pairs" / "manifest.csv")) == 14
    again = repo.dvc("repro", "degrade").stdout
    assert "Running stage" not in again and "Data and pipelines are up to date" in again, again

    repo.set_params({"degrade": {"crops_per_image": 2}})
    rerun = repo.dvc("repro", "degrade").stdout
    assert "Running stage 'degrade'" in rerun and "Running stage 'prepare'" not in rerun
