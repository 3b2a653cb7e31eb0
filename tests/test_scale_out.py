"""The scale-out paths, run for real on loopback: a DVC remote that carries results and experiments from one
clone to another. Marked ``scale``: CI runs them, ``-m 'not scale'`` skips them locally."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Repo, make_pipeline_repo
from tests.test_pipeline import TINY

pytestmark = pytest.mark.scale


def test_a_dvc_remote_carries_results_and_experiments_to_another_clone(tmp_path):
    """Clone A runs the tiny pipeline and pushes (git to a bare remote, data to a DVC remote folder, as the
    README's S3 or SSH remote would hold it); clone B pulls, `dvc repro` there does nothing and its metrics and
    models are A's. An experiment run in A travels to B with `dvc exp push` / `dvc exp pull`."""
    a = make_pipeline_repo(tmp_path / "a", TINY)
    origin, storage = tmp_path / "origin.git", tmp_path / "storage"
    a.run("git", "init", "-q", "--bare", str(origin))
    a.run("git", "remote", "add", "origin", str(origin))
    a.dvc("remote", "add", "-d", "storage", str(storage))
    a.dvc("repro")
    a.run("git", "add", "-A")
    a.run("git", "commit", "-qm", "results")
    a.run("git", "push", "-q", "origin", "HEAD:main")
    a.dvc("push")

    b = Repo(tmp_path / "b")
    a.run("git", "clone", "-q", "-b", "main", str(origin), str(b.path))
    b.dvc("pull")
    output = b.dvc("repro").stdout
    assert "Running stage" not in output and "Data and pipelines are up to date" in output, output
    assert json.loads((b.path / "results" / "metrics.json").read_text()) == json.loads(
        (a.path / "results" / "metrics.json").read_text())
    for model in (a.path / "models").glob("*.pt"):
        assert (b.path / "models" / model.name).read_bytes() == model.read_bytes()

    before = json.loads((b.path / "results" / "metrics.json").read_text())
    a.dvc("exp", "run", "-n", "lr-low", "-S", "train.lr=0.001")
    a.dvc("exp", "push", "origin", "lr-low")
    b.dvc("exp", "pull", "origin", "lr-low")
    shown = json.loads(b.dvc("exp", "show", "--json").stdout)
    experiments = [exp for commit in shown for exp in (commit.get("experiments") or [])]
    names = {exp.get("name") for exp in experiments}
    assert "lr-low" in names, shown
    b.dvc("exp", "apply", "lr-low")
    assert "lr: 0.001" in (b.path / "params.yaml").read_text()
    applied = json.loads((b.path / "results" / "metrics.json").read_text())
    assert applied == json.loads((a.path / "results" / "metrics.json").read_text()) and applied != before
