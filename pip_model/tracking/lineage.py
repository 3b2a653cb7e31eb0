"""What produced a run: the flattened parameters, the git commit and state, and the DVC stage and inputs."""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": "1"}``."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = str(value)[:6000]
    return flat


def _git(root: Path, *arguments: str) -> str | None:
    """A git command's output in ``root``; None when it fails (no repository, no such object)."""
    done = subprocess.run(["git", *arguments], cwd=root, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def git_commit(root: Path) -> str:
    """The commit checked out in ``root`` ("" outside a git repository)."""
    return (_git(root, "rev-parse", "HEAD") or "").strip()


def git_tags(root: Path) -> dict[str, str]:
    """The git commit of ``root`` and whether its source has uncommitted changes.

    What DVC writes while the pipeline runs (``dvc.lock``, every stage's outputs as ``dvc.lock`` lists them, and
    the ``.gitignore`` entries of its cached outputs) and ``params.yaml`` (logged as the run's params, and what
    ``dvc exp run -S`` changes) do not count: a fresh clone running ``dvc repro`` is clean. ``git.dirty_files``
    names the first changed files.
    """
    commit = git_commit(root)
    if not commit:
        return {}
    produced = {"dvc.lock", "params.yaml", *dvc_outputs(root)}
    changed = []
    for line in (_git(root, "status", "--porcelain", "--untracked-files=all") or "").splitlines():
        path = line[3:].split(" -> ")[-1].strip('"')
        if Path(path).name != ".gitignore" and not any(path == out or path.startswith(out.rstrip("/") + "/")
                                                       for out in produced):
            changed.append(path)
    tags = {"git.commit": commit, "git.dirty": str(bool(changed))}
    if changed:
        tags["git.dirty_files"] = ", ".join(changed[:5]) + (f" (+{len(changed) - 5} more)" if len(changed) > 5 else "")
    return tags


def dvc_outputs(root: Path) -> list[str]:
    """The paths of every stage output that ``dvc.lock`` records."""
    lock = root / "dvc.lock"
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}) if lock.is_file() else {}
    return [entry["path"] for stage in stages.values() for entry in stage.get("outs", []) if "path" in entry]


@functools.lru_cache(maxsize=8)  # a stage opens one run per model it evaluates: read git once
def pipeline_context(root: Path) -> tuple[str, str]:
    """What sets this pipeline execution apart, for run names, and an id that its runs share.

    Returns:
        ``"seed=0, train.lr=0.001"``: the seed and the params that differ from the committed
        ``params.yaml`` (a ``dvc exp run -S`` or an edit; tracking settings left out), and a
        short hash of the commit and the params, the same for every run of one execution.
    """
    def params(text: str) -> dict[str, str]:
        return {key: value for key, value in flatten(yaml.safe_load(text) or {}).items()
                if not key.startswith("tracking.")}

    path = root / "params.yaml"
    current = params(path.read_text()) if path.is_file() else {}
    shown = _git(root, "show", "HEAD:params.yaml")
    committed = params(shown) if shown is not None else current
    changed = [f"{key}={value}" for key, value in current.items() if committed.get(key) != value and key != "base.seed"]
    words = [f"seed={current.get('base.seed', '?')}", *changed[:3]] + ([f"+{len(changed) - 3} more"]
                                                                        if len(changed) > 3 else [])
    identity = json.dumps([(_git(root, "rev-parse", "HEAD") or "").strip(), current], sort_keys=True)
    return ", ".join(words), hashlib.sha1(identity.encode()).hexdigest()[:10]


def dvc_input_tags(root: Path, inputs: list[str]) -> dict[str, str]:
    """md5 of each input path as the stage that produced it recorded it in ``dvc.lock``.

    Only a stage's outputs count: DVC rewrites the producer's entry as soon as it has run, while the entries of
    the stages after it still hold the hash of their previous run until they finish.
    """
    lock = root / "dvc.lock"
    if not lock.is_file():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return {f"dvc.{entry['path']}.md5": entry["md5"] for stage in stages.values() for entry in stage.get("outs", [])
            if entry.get("path") in inputs and "md5" in entry}

