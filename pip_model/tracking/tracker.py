"""MLflow tracking through explicit run ids (``MlflowClient``), never the global fluent run.

Policy when the tracking store cannot be reached: :class:`Tracker` fails with a clear
message *before* training starts; if logging breaks during a run, training keeps going,
the failures are counted, and the stage reports them at the end. Work is never lost to a
tracking outage, and neither are its metrics: with a ``pending`` file, metrics and the run's
end that could not be sent are kept there (JSON lines) and sent with the next call that gets
through, or later by ``python -m pip_model sync`` (:func:`pip_model.tracking.pending.sync_pending`).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pip_model import cpu_kernels
from pip_model.tracking.lineage import flatten, pipeline_context
from pip_model.tracking.pending import PendingLog
from pip_model.tracking.uris import TrackingUnavailable, access_hint, check_reachable, first_line, tracking_uri

DEFAULT_EXPERIMENT = "pip-universal"


# The experiment tag by which the MLflow UI opens an experiment on its training runs (not on the GenAI overview).
EXPERIMENT_KIND, MODEL_DEVELOPMENT = "mlflow.experimentKind", "custom_model_development"


# A view of the runs table that the UI opens from a link (#/experiments/ID/runs?viewStateShareKey=headline): the
# headline metrics as columns, best mean PSNR first. The UI reads it from this experiment tag.
HEADLINE_VIEW = "headline"


HEADLINE_COLUMNS = ("eval/mean/psnr", "eval/mean/ssim", "train/final_psnr", "sensor/accuracy", "sensor/clean_kept")


HEADLINE_STATE = json.dumps({"selectedColumns": [f"metrics.`{name}`" for name in HEADLINE_COLUMNS],
                             "orderByKey": "metrics.`eval/mean/psnr`", "orderByAsc": False})


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

    def __post_init__(self) -> None:
        from urllib.parse import urlsplit

        if "://" in self.uri and urlsplit(self.uri).password is not None:
            # params.yaml is committed: a password here would be in git for good.
            raise ValueError(
                "tracking.uri holds a password, and params.yaml is committed to git: remove it. A server's login goes "
                "in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD; a database URI with its password goes "
                "in MLFLOW_TRACKING_URI (leave tracking.uri empty)")


def registered_name(model_name: str) -> str:
    """Model Registry name of a pipeline model."""
    return f"pip-universal-{model_name}"


class Tracker:
    """One MLflow run, addressed by id. Logging errors after the start are kept, not raised.

    Args:
        uri: tracking URI.
        experiment: experiment name (created when missing; artifacts beside a SQLite store).
        run_name: display name of the run.
        tags: tags set at creation.
        run_id: continue this run instead of creating one (e.g. an evaluation of a trained model).
        parent_run_id: create the run as a child of this one.
        pending: a file that keeps the metrics and the run's end that could not be sent (see :class:`PendingLog`);
            they go out with the next call that gets through, or by ``python -m pip_model sync``.
    """

    def __init__(
        self, *, uri: str, experiment: str = DEFAULT_EXPERIMENT, run_name: str | None = None,
        tags: Mapping[str, str] | None = None, run_id: str | None = None, parent_run_id: str | None = None,
        pending: Path | None = None,
    ) -> None:
        from mlflow import MlflowClient

        self.uri = uri
        self.failures: list[str] = []
        self.pending = PendingLog(pending) if pending is not None else None
        check_reachable(uri)
        try:
            self.client = MlflowClient(tracking_uri=uri)
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
            if found is None or found.tags.get(f"mlflow.sharedViewState.{HEADLINE_VIEW}") != HEADLINE_STATE:
                self.client.set_experiment_tag(experiment_id, f"mlflow.sharedViewState.{HEADLINE_VIEW}", HEADLINE_STATE)
            all_tags = dict(tags or {})
            if parent_run_id:
                all_tags["mlflow.parentRunId"] = parent_run_id
            if run_id is None:
                run_id = self.client.create_run(experiment_id, run_name=run_name, tags=all_tags).info.run_id
            else:
                self.client.get_run(run_id)
        except Exception as error:
            hint = access_hint(error) or f"{type(error).__name__}: {first_line(error)}"
            raise TrackingUnavailable(
                f"MLflow tracking at {uri} cannot be used ({hint}). Start the server, fix MLFLOW_TRACKING_URI or "
                "params.yaml's tracking.uri; nothing was run."
            ) from error
        self.run_id = run_id
        self._monitor = None

    @classmethod
    def for_stage(cls, config: TrackingConfig, root: Path, *, run_name: str | None = None,
                  tags: Mapping[str, str] | None = None, run_id: str | None = None,
                  pending: Path | None = None) -> Tracker:
        """A run in the pipeline's store and experiment. A new run is named ``run_name (seed=..., changed params)``
        and tagged ``pipeline=<id>`` (shared by the runs of one pipeline execution; the UI groups by it), with
        ``config.tags`` added."""
        if run_id:
            return cls(uri=tracking_uri(config.uri, root), experiment=config.experiment, run_id=run_id,
                       pending=pending)
        described, pipeline = pipeline_context(root)
        return cls(uri=tracking_uri(config.uri, root), experiment=config.experiment,
                   run_name=f"{run_name} ({described})" if run_name else None,
                   tags={"pipeline": pipeline, "cpu": cpu_kernels.machine()["cpu"], "cpu_kernels": cpu_kernels.mode(),
                         **(tags or {}), **config.tags}, pending=pending)

    def _guard(self, what: str, call, *arguments, **keywords) -> Any:
        """``call``'s result, or None when it failed (the failure is recorded)."""
        try:
            return call(*arguments, **keywords)
        except Exception as error:  # logging must never stop the work
            self._record_failure(what, error)
            return None

    def _sends(self, what: str, call, *arguments, **keywords) -> bool:
        """Whether ``call`` got through (a failure is recorded)."""
        try:
            call(*arguments, **keywords)
            return True
        except Exception as error:
            self._record_failure(what, error)
            return False

    def _record_failure(self, what: str, error: Exception) -> None:
        if not self.failures:
            warnings.warn(f"MLflow logging failed ({what}): {error}; the work goes on", stacklevel=4)
        self.failures.append(f"{what}: {type(error).__name__}: {error}")

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
        # While the store is away, one call per batch finds it out; what failed is kept for later.
        if not (self._send_pending() and self._sends("metrics", self.client.log_batch, self.run_id, metrics=items)):
            self._keep({"kind": "metrics", "metrics": [[m.key, m.value, m.timestamp, m.step] for m in items]})

    def _keep(self, entry: dict[str, Any]) -> None:
        if self.pending is not None:
            self.pending.append({"uri": self.uri, "run_id": self.run_id, **entry})

    def _send_pending(self) -> bool:
        """Sends what earlier failures kept; False if the store is still unreachable."""
        if self.pending is None or not self.pending.path.is_file():
            return True
        return self._sends("kept metrics", self.pending.send, self.client)

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

    def log_model(self, model: Any, *, registered_name: str, alias: str, input_example: np.ndarray,
                  params: Mapping[str, str] | None = None, example_params: Mapping[str, str] | None = None,
                  requirements: Sequence[str] = (), code: Sequence[str] = ()) -> str | None:
        """Logs a torch model with its signature, registers it and points ``alias`` at the new version.

        The model's code is the ``pip_model`` package and ``code`` (the files or folders of a plug-in's loose
        module); its requirements ours and ``requirements`` (a plug-in's installed distribution, ``name==version``).

        The signature takes images of any batch, height and width, and ``params`` (name -> default) as MLflow
        inference params, which pyfunc passes to the model's call as keywords; the example is run with
        ``example_params``.

        Returns:
            The registered version, or None if logging failed.
        """
        import mlflow
        import mlflow.pytorch
        from mlflow.models import ModelSignature
        from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

        def log() -> str:
            import torch

            with torch.no_grad():
                output = model(torch.from_numpy(input_example), **(example_params or {})).numpy()

            def any_size(array: np.ndarray) -> Schema:  # any batch, height and width; the channels are fixed
                shape = tuple(-1 if axis != 1 else size for axis, size in enumerate(array.shape))
                return Schema([TensorSpec(array.dtype, shape)])

            signature = ModelSignature(any_size(input_example), any_size(output), ParamSchema(
                [ParamSpec(name, "string", default) for name, default in (params or {}).items()]) if params else None)
            mlflow.set_tracking_uri(self.uri)
            package = Path(__file__).resolve().parents[1]  # the whole pip_model package, not this sub-package
            with mlflow.start_run(run_id=self.run_id):
                info = mlflow.pytorch.log_model(
                    model, name="model", signature=signature,
                    input_example=(input_example, dict(example_params)) if example_params else input_example,
                    code_paths=[str(package), *code], serialization_format="pickle",
                    pip_requirements=["torch==2.13.0", "einops", "kornia", "numpy", *requirements],
                )
            version = mlflow.register_model(info.model_uri, registered_name).version
            self.client.set_registered_model_alias(registered_name, alias, version)
            return str(version)

        return self._guard("model", log)

    def finish(self, status: str = "FINISHED") -> None:
        import time

        if self._monitor is not None:
            self._guard("system metrics", self._monitor.finish)
        end_time = int(time.time() * 1000)
        if not (self._send_pending() and self._sends("finish", self.client.set_terminated, self.run_id, status,
                                                     end_time=end_time)):
            self._keep({"kind": "finish", "status": status, "end_time": end_time})

    @property
    def unsent(self) -> Path | None:
        """The file holding what could not be sent yet, if anything."""
        return self.pending.path if self.pending is not None and self.pending.path.is_file() else None

