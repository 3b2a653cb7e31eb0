"""MLflow tracking through explicit run ids (``MlflowClient``), never the global fluent run.

Policy when the tracking store cannot be reached: :class:`Tracker` fails with a clear
message *before* training starts; if logging breaks during a run, training keeps going,
the failures are counted, and the stage reports them at the end. Work is never lost to a
tracking outage.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

DEFAULT_EXPERIMENT = "pip-universal"
# The experiment tag by which the MLflow UI opens an experiment on its training runs (not on the GenAI overview).
EXPERIMENT_KIND, MODEL_DEVELOPMENT = "mlflow.experimentKind", "custom_model_development"


@dataclass(frozen=True)
class TrackingConfig:
    """``params.yaml: tracking``.

    Attributes:
        uri: MLflow tracking URI; empty for ``MLFLOW_TRACKING_URI`` or SQLite at the repository root.
        experiment: experiment name shared by the pipeline's runs.
        alias: alias given to each newly registered model version.
        system_metrics_interval: seconds between samples of CPU, memory and GPU use.
        tags: extra tags on every run (e.g. ``sweep: <id>``, set by the sweep flow).
    """

    uri: str = ""
    experiment: str = DEFAULT_EXPERIMENT
    alias: str = "candidate"
    system_metrics_interval: float = 10.0
    tags: dict[str, str] = field(default_factory=dict)


def registered_name(model_name: str) -> str:
    """Model Registry name of a pipeline model."""
    return f"pip-universal-{model_name}"


class TrackingUnavailable(RuntimeError):
    """The MLflow tracking store cannot be reached or used."""


def tracking_uri(configured: str, root: Path) -> str:
    """The tracking URI: ``params.yaml``'s ``tracking.uri``, else ``MLFLOW_TRACKING_URI``, else SQLite at ``root``."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / 'mlflow.db').resolve()}"


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


def git_tags(root: Path) -> dict[str, str]:
    """The git commit of ``root`` and whether the tree has uncommitted changes."""
    commit = (_git(root, "rev-parse", "HEAD") or "").strip()
    return {"git.commit": commit, "git.dirty": str(bool((_git(root, "status", "--porcelain") or "").strip()))} \
        if commit else {}


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
    """md5 of each input path as ``dvc.lock`` records it (the output of an upstream stage)."""
    lock = root / "dvc.lock"
    if not lock.is_file():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    hashes = {}
    for stage in stages.values():
        for entry in stage.get("outs", []) + stage.get("deps", []):
            if entry.get("path") in inputs and "md5" in entry:
                hashes[f"dvc.{entry['path']}.md5"] = entry["md5"]
    return hashes


def _check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Fails fast, without MLflow's long retry loop, when a tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()
    except (urllib.error.URLError, OSError) as error:
        raise TrackingUnavailable(
            f"the MLflow tracking server at {uri} does not answer ({error}). Start it (mlflow server ...) or fix "
            "MLFLOW_TRACKING_URI / params.yaml tracking.uri; nothing was trained."
        ) from error


class Tracker:
    """One MLflow run, addressed by id. Logging errors after the start are kept, not raised.

    Args:
        uri: tracking URI.
        experiment: experiment name (created when missing; artifacts beside a SQLite store).
        run_name: display name of the run.
        tags: tags set at creation.
        run_id: continue this run instead of creating one (e.g. an evaluation of a trained model).
        parent_run_id: create the run as a child of this one.
    """

    def __init__(
        self, *, uri: str, experiment: str = DEFAULT_EXPERIMENT, run_name: str | None = None,
        tags: Mapping[str, str] | None = None, run_id: str | None = None, parent_run_id: str | None = None,
    ) -> None:
        from mlflow import MlflowClient

        self.uri = uri
        self.failures: list[str] = []
        _check_reachable(uri)
        self.client = MlflowClient(tracking_uri=uri)
        try:
            found = self.client.get_experiment_by_name(experiment)
            if found is None:
                location = None
                if uri.startswith("sqlite:///"):
                    location = Path(uri.removeprefix("sqlite:///")).parent.joinpath("mlartifacts").resolve().as_uri()
                experiment_id = self.client.create_experiment(experiment, artifact_location=location,
                                                              tags={EXPERIMENT_KIND: MODEL_DEVELOPMENT})
            else:
                experiment_id = found.experiment_id
                if found.tags.get(EXPERIMENT_KIND) != MODEL_DEVELOPMENT:
                    self.client.set_experiment_tag(experiment_id, EXPERIMENT_KIND, MODEL_DEVELOPMENT)
            all_tags = dict(tags or {})
            if parent_run_id:
                all_tags["mlflow.parentRunId"] = parent_run_id
            if run_id is None:
                run_id = self.client.create_run(experiment_id, run_name=run_name, tags=all_tags).info.run_id
            else:
                self.client.get_run(run_id)
        except Exception as error:
            raise TrackingUnavailable(
                f"MLflow tracking at {uri} cannot be used ({type(error).__name__}: {error}). Start the server, fix "
                "MLFLOW_TRACKING_URI or params.yaml's tracking_uri; nothing was trained."
            ) from error
        self.run_id = run_id
        self._monitor = None

    @classmethod
    def for_stage(cls, config: TrackingConfig, root: Path, *, run_name: str | None = None,
                  tags: Mapping[str, str] | None = None, run_id: str | None = None) -> Tracker:
        """A run in the pipeline's store and experiment. A new run is named ``run_name (seed=..., changed params)``
        and tagged ``pipeline=<id>`` (shared by the runs of one pipeline execution; the UI groups by it), with
        ``config.tags`` added."""
        if run_id:
            return cls(uri=tracking_uri(config.uri, root), experiment=config.experiment, run_id=run_id)
        described, pipeline = pipeline_context(root)
        return cls(uri=tracking_uri(config.uri, root), experiment=config.experiment,
                   run_name=f"{run_name} ({described})" if run_name else None,
                   tags={"pipeline": pipeline, **(tags or {}), **config.tags})

    def _guard(self, what: str, call, *arguments, **keywords) -> Any:
        try:
            return call(*arguments, **keywords)
        except Exception as error:  # logging must never stop the work
            if not self.failures:
                warnings.warn(f"MLflow logging failed ({what}): {error}; training goes on", stacklevel=3)
            self.failures.append(f"{what}: {type(error).__name__}: {error}")
            return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in flatten(params).items()]
        for start in range(0, len(items), 100):
            self._guard("params", self.client.log_batch, self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        items = [Metric(key, float(value), stamp, step or 0) for key, value in metrics.items()]
        self._guard("metrics", self.client.log_batch, self.run_id, metrics=items)

    def log_dataset(self, manifest: Path, *, name: str, context: str, digest: str | None = None) -> None:
        """Logs a manifest (CSV: one row per image or pair) as a dataset input of the run, so the UI's Dataset
        column shows which data it saw; ``digest`` is the data's DVC hash when ``dvc.lock`` has it."""

        def log() -> None:
            import mlflow.data
            import pandas as pd
            from mlflow.entities import DatasetInput, InputTag

            dataset = mlflow.data.from_pandas(pd.read_csv(manifest), source=str(manifest.resolve()), name=name,
                                              digest=digest)
            entry = DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)])
            self.client.log_inputs(self.run_id, datasets=[entry])

        self._guard("dataset", log)

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        self._guard("image", self.client.log_image, self.run_id, np.clip(image, 0, 1), key=key, step=step)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        call = self.client.log_artifacts if Path(path).is_dir() else self.client.log_artifact
        self._guard("artifact", call, self.run_id, str(path), artifact_path)

    def start_system_metrics(self, interval: float = 10.0) -> None:
        """Samples CPU, memory (and GPU) usage into the run in the background."""
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self._monitor = self._guard("system metrics", SystemMetricsMonitor, self.run_id, sampling_interval=interval,
                                    tracking_uri=self.uri)
        if self._monitor is not None:
            self._guard("system metrics", self._monitor.start)

    def log_model(self, model: Any, *, registered_name: str, alias: str, input_example: np.ndarray) -> str | None:
        """Logs a torch model with its signature, registers it and points ``alias`` at the new version.

        Returns:
            The registered version, or None if logging failed.
        """
        import mlflow
        import mlflow.pytorch
        from mlflow.models import infer_signature

        def log() -> str:
            import torch

            with torch.no_grad():
                output = model(torch.from_numpy(input_example)).numpy()
            signature = infer_signature(input_example, output)
            mlflow.set_tracking_uri(self.uri)
            package = Path(__file__).resolve().parent
            with mlflow.start_run(run_id=self.run_id):
                info = mlflow.pytorch.log_model(
                    model, name="model", signature=signature, input_example=input_example,
                    code_paths=[str(package)], serialization_format="pickle",
                    pip_requirements=["torch==2.13.0", "einops", "kornia", "numpy"],
                )
            version = mlflow.register_model(info.model_uri, registered_name).version
            self.client.set_registered_model_alias(registered_name, alias, version)
            return str(version)

        return self._guard("model", log)

    def finish(self, status: str = "FINISHED") -> None:
        if self._monitor is not None:
            self._guard("system metrics", self._monitor.finish)
        self._guard("finish", self.client.set_terminated, self.run_id, status)
