"""Small helpers shared by the flows: running DVC, reading results, overriding params."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from dvc.utils.serialize import modify_yaml

from pip_model.tracking.uris import tracking_uri


@dataclass(frozen=True)
class FlowsConfig:
    """``params.yaml: flows``.

    Attributes:
        cron: schedule of the ``pipeline`` deployment.
        sweep_parallel: DVC experiments a sweep runs at once (on CUDA, at most one per GPU).
        sweep_runner: where a sweep's points run: ``local`` (threads of the flow's process, each starting its
            experiment) or ``dask`` (the tasks of a Dask cluster, through prefect-dask).
        dask_address: the scheduler of a running Dask cluster (``tcp://host:8786``); empty for a local cluster of
            ``sweep_parallel`` worker processes, made for the sweep and closed after it.
    """

    cron: str = "0 2 * * *"
    sweep_parallel: int = 2
    sweep_runner: Literal["local", "dask"] = "local"
    dask_address: str = ""

    def __post_init__(self) -> None:
        if self.dask_address and self.sweep_runner != "dask":
            raise ValueError(f"flows.dask_address is {self.dask_address!r} but flows.sweep_runner is "
                             f"{self.sweep_runner!r}: set sweep_runner: dask to use that cluster, or empty the address")


def environment(repo: Path) -> dict[str, str]:
    """The stages' environment: this interpreter's tools on PATH, MLflow at the repository's store."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MLFLOW_TRACKING_URI", tracking_uri("", repo))
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


def dvc(repo: Path, *arguments: str, env: dict[str, str] | None = None) -> str:
    """Runs a DVC command in ``repo`` (with ``env`` added to its environment); raises with its output when it
    fails."""
    done = subprocess.run([sys.executable, "-m", "dvc", *arguments], cwd=repo, env={**environment(repo), **(env or {})},
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"dvc {' '.join(arguments)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def run_script(repo: Path, script: str, *arguments: str) -> str:
    """Runs one of the repository's stage scripts (``stages/evaluate.py``) in ``repo`` as DVC would, outside DVC;
    raises with its output when it fails."""
    done = subprocess.run([sys.executable, script, *arguments], cwd=repo, env=environment(repo), capture_output=True,
                          text=True)
    if done.returncode:
        raise RuntimeError(f"{script} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def set_params(repo: Path, overrides: Mapping[str, Any]) -> None:
    """Applies dotted ``-S``-style overrides to ``params.yaml``, keeping its comments."""
    with modify_yaml(repo / "params.yaml") as params:
        for dotted, value in overrides.items():
            *parents, key = dotted.split(".")
            section = params
            for name in parents:
                section = section.setdefault(name, {})
            section[key] = value


def split_key_value(text: str, form: str = "KEY=VALUE") -> tuple[str, str]:
    """``KEY=VALUE`` -> (key, value text); argparse's error names ``form`` when ``text`` is not of it."""
    key, sign, value = text.partition("=")
    if not sign or not key or key.startswith("-"):
        raise argparse.ArgumentTypeError(f"expected {form} (a dotted param of params.yaml), got {text!r}")
    return key, value


def key_value(text: str) -> tuple[str, Any]:
    """One command-line ``KEY=VALUE`` (the value read as YAML), for argparse's ``type=``."""
    key, value = split_key_value(text)
    return key, yaml.safe_load(value)


def hydra_value(value: Any) -> str:
    """A params value written in the override grammar of `dvc exp run -S` (Hydra's): dict keys bare, and a string
    that YAML would read as something else ("35498153", "true") quoted so that it stays a string."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}: {hydra_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(hydra_value(item) for item in value) + "]"
    if isinstance(value, str) and isinstance(yaml.safe_load(value), str):
        return value
    return json.dumps(value)


def override_arguments(overrides: Mapping[str, Any]) -> list[str]:
    """``{"train.lr": 0.001}`` -> ``["-S", "train.lr=0.001"]`` for ``dvc exp run``.

    Keys follow DVC's (Hydra's) override grammar: ``+a.b`` adds a key that params.yaml lacks. A mapping sets
    each of its entries (``{"train.real_pairs": {"derain": 1.0}}`` -> ``++train.real_pairs.derain=1.0``); an
    empty one empties the key.
    """
    arguments = []
    for key, value in overrides.items():
        if isinstance(value, Mapping) and value:
            # Hydra cannot replace a mapping by one with other keys: set each entry, adding it where missing.
            arguments += override_arguments({f"++{key.lstrip('+')}.{name}": item for name, item in value.items()})
        else:
            arguments += ["-S", f"{key}={hydra_value(value)}"]
    return arguments


def metric_rows(metrics: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[dict[str, Any]]:
    """``metrics.json`` as table rows: model, task, psnr, ssim."""
    return [{"model": model, "task": task, "psnr": values["psnr"], "ssim": values["ssim"]}
            for model, tasks in metrics.items() for task, values in tasks.items()]
