"""A fresh copy of the repository, in the locked environment, rebuilds the committed data byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers.pipeline import make_pipeline_repo

pytestmark = pytest.mark.integration  # a real `dvc repro`

ROOT = Path(__file__).resolve().parents[1]


def _outs(lock: dict, stage: str) -> dict[str, str]:
    return {out["path"]: out["md5"] for out in lock["stages"][stage]["outs"]}


def test_a_fresh_copy_rebuilds_prepare_and_degrade_with_the_hashes_of_dvc_lock(tmp_path):
    """`dvc repro degrade` from nothing, with the committed params: data/prepared, data/benchmark and
    data/train_pairs get exactly the hashes that dvc.lock records (requirements.lock fixes every version that
    can change a pixel: numpy, pillow, scikit-image, kornia, torch)."""
    committed = yaml.safe_load((ROOT / "dvc.lock").read_text())
    repo = make_pipeline_repo(tmp_path / "repo", {})
    repo.dvc("repro", "degrade")
    rebuilt = yaml.safe_load((repo.path / "dvc.lock").read_text())
    for stage in ("prepare", "degrade"):
        assert _outs(rebuilt, stage) == _outs(committed, stage), stage
