"""A scratch copy of the pipeline under git and DVC, and what a `dvc repro` ran."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers.stages import ROOT, stage_environment

PIPELINE_FILES = ("dvc.yaml", "params.yaml", "pyproject.toml", "README.md", "stages", "pip_model", "flows", "bench",
                  "data/datasets", "results/seeds", ".dvcignore", ".gitignore")

# The pipeline on a tiny CPU budget: every stage runs in seconds.
TINY = {
    "degrade": {"benchmark_crop": 48, "crops_per_image": 1, "train_pairs_per_task": 2, "train_patch": 32},
    "train": {"steps": 2, "batch_size": 2, "patch": 32, "warmup_steps": 1},
    "train_run": {"log_every": 1, "sample_every": 2, "checkpoint_every": 100},
    "sensor": {"steps": 2, "batch_size": 4, "patch": 32, "dead_leaves": 2},
    "report": {"dpi": 40},
    "tracking": {"system_metrics_interval": 1},
    "flows": {"cron": "17 3 * * 1"},  # not the code's default, so the deployment must read params.yaml
}


def _environment(repo: Path) -> dict[str, str]:
    # The repository's own copy of the code is what its stages import, as in a user's checkout: the `models`
    # stage fingerprints the modules it imports, so an edit of the copy must be what it reads.
    return stage_environment(repo, PYTHONPATH=str(repo), GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@localhost",
                             GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@localhost")


class Repo:
    """A scratch copy of the pipeline, under git and DVC."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = _environment(path)

    def run(self, *command: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(command, cwd=self.path, env={**self.env, **(env or {})}, capture_output=True, text=True)
        if check and done.returncode:
            raise AssertionError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def dvc(self, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *arguments, check=check)

    def set_params(self, updates: dict[str, dict]) -> None:
        path = self.path / "params.yaml"
        params = yaml.safe_load(path.read_text())
        for section, values in updates.items():
            params.setdefault(section, {}).update(values)
        path.write_text(yaml.safe_dump(params, sort_keys=False))


def make_pipeline_repo(path: Path, updates: dict[str, dict]) -> Repo:
    """A git repository holding the pipeline with params updated, committed, DVC-initialised."""
    repo = Repo(path)
    repo.path.mkdir(parents=True)
    for name in PIPELINE_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo.path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, repo.path / name)
    repo.set_params(updates)
    repo.run("git", "init", "-q")
    repo.dvc("init", "-q")
    repo.run("git", "add", "-A")
    repo.run("git", "commit", "-qm", "pipeline")
    return repo


# Stages that run on every `dvc repro` (always_changed): `scan` lists the datasets folder, `models` writes each
# trained model's fingerprint; neither changes an output when nothing changed.
ALWAYS_RUN = ("scan", "models")


def stages_run(dvc_output: str) -> list[str]:
    """The stages a `dvc repro` ran, in order, without those that run on every repro (:data:`ALWAYS_RUN`)."""
    return [stage for stage in re.findall(r"Running stage '([^']+)'", dvc_output) if stage not in ALWAYS_RUN]
