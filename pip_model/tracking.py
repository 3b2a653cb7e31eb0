"""MLflow tracking through explicit run ids (``MlflowClient``), never the global fluent run.

Policy when the tracking store cannot be reached: :class:`Tracker` fails with a clear
message *before* training starts; if logging breaks during a run, training keeps going,
the failures are counted, and the stage reports them at the end. Work is never lost to a
tracking outage, and neither are its metrics: with a ``pending`` file, metrics and the run's
end that could not be sent are kept there (JSON lines) and sent with the next call that gets
through, or later by ``python -m pip_model sync`` (:func:`sync_pending`).
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


TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql")


def uri_form_problem(uri: str) -> str | None:
    """What is wrong with the form of a tracking URI, in one sentence; None when its form is fine."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if uri.startswith("databricks") or scheme.split("+", 1)[0] in TRACKING_SCHEMES:
        return None
    if not scheme or scheme == "file":
        path = uri.removeprefix("file://")
        return (f"'{uri}' is a path: MLflow keeps folder stores in maintenance mode only; use a database, e.g. "
                f"sqlite:///{Path(path).resolve()}" + ("" if path.endswith(".db") else "/mlflow.db"))
    return f"'{uri}' has the unknown scheme '{scheme}://'; use sqlite:///PATH, http(s)://HOST:PORT or postgresql://..."


def first_line(error: BaseException) -> str:
    """An error's first line (its type when it says nothing), at most 300 characters."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]


def mlflow_uri_problem(spec: str, error: Exception) -> str:
    """One line saying why an MLflow model URI did not load, and what the store holds instead."""
    import mlflow
    from mlflow import MlflowClient

    store = mlflow.get_tracking_uri()
    reason = first_line(error)
    if not spec.startswith("models:/"):
        return f"{spec}: cannot load it from MLflow at {store}: {reason}"
    reference = spec.removeprefix("models:/").rstrip("/")
    name, alias, version = reference, None, None
    if "@" in reference:
        name, alias = reference.split("@", 1)
    elif "/" in reference:
        name, version = reference.rsplit("/", 1)
    try:
        client = MlflowClient()
        registered = {model.name: model for model in client.search_registered_models()}
    except Exception:  # the store itself is unreachable: the original error says the most
        return f"{spec}: cannot load it from MLflow at {store}: {reason}"
    if name not in registered:
        known = ", ".join(f"{model}@{'/@'.join(sorted(info.aliases))}" if info.aliases else model
                          for model, info in sorted(registered.items())) or "none"
        return f"{spec}: no registered model {name!r} in MLflow at {store}; registered: {known}"
    aliases = sorted(registered[name].aliases)
    versions = sorted((str(v.version) for v in client.search_model_versions(f"name='{name}'")), key=int)
    if (alias is not None and alias in aliases) or (version is not None and version in versions):
        return f"{spec}: registered, but it did not load from MLflow at {store}: {reason}"
    what = f"alias {alias!r}" if alias is not None else f"version {version!r}"
    return (f"{spec}: {name} has no {what} (aliases: {', '.join(aliases) or 'none'}; versions: "
            f"{', '.join(versions) or 'none'}) in MLflow at {store}")


def access_hint(error: Exception) -> str | None:
    """What to do about a missing driver or a refused login, in words; None for other errors."""
    if isinstance(error, ModuleNotFoundError):
        return f"it needs the package {error.name}: pip install -e '.[scale]'"
    code = getattr(error, "error_code", None)
    if code == "UNAUTHENTICATED":
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        return (f"the server refused the login of {user!r}: check MLFLOW_TRACKING_PASSWORD" if user else
                "the server asks for a login: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the "
                "environment")
    if code == "PERMISSION_DENIED":
        return (f"the user {os.environ.get('MLFLOW_TRACKING_USERNAME')!r} may not write here: an admin grants "
                "it (mlflow.server.get_app_client('basic-auth', ...).create_experiment_permission)")
    return None


def _check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Fails fast, without MLflow's long retry loop, when a tracking URI is malformed or its server does not
    answer."""
    problem = uri_form_problem(uri)
    if problem:
        raise TrackingUnavailable(f"{problem} (MLFLOW_TRACKING_URI or params.yaml tracking.uri); nothing was run.")
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


PENDING_SUFFIX = ".mlflow-pending.jsonl"


class PendingLog:
    """Tracking calls that could not be sent, kept on disk as JSON lines until they can be.

    Each line is ``{"uri", "run_id", "kind": "metrics", "metrics": [[key, value, timestamp, step], ...]}`` or
    ``{"uri", "run_id", "kind": "finish", "status", "end_time"}``. A line that cannot be sent ever (torn by a
    kill, or for a run deleted since) is moved to the ``.rejected`` file beside it, never dropped, and said in
    :attr:`skipped`.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.skipped: list[str] = []

    @property
    def rejected_path(self) -> Path:
        return self.path.with_name(self.path.name + ".rejected")

    def append(self, entry: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as file:
            file.write(json.dumps(entry) + "\n")

    def _lines(self) -> list[tuple[int, str, dict[str, Any] | None]]:
        """(line number, text, entry or None when the line is torn) for every non-empty line."""
        if not self.path.is_file():
            return []
        lines = []
        for number, text in enumerate(self.path.read_text(errors="replace").splitlines(), start=1):
            if text.strip():
                try:
                    entry = json.loads(text)
                    valid = isinstance(entry, dict) and {"uri", "run_id", "kind"} <= entry.keys()
                except ValueError:
                    valid = False
                lines.append((number, text, entry if valid else None))
        return lines

    def entries(self) -> list[dict[str, Any]]:
        """The entries that can be read (torn lines left out)."""
        return [entry for _, _, entry in self._lines() if entry is not None]

    def send(self, client: Any = None) -> int:
        """Sends every entry in order (with ``client``, or one per recorded URI) and removes the file; a torn line
        or an entry of a run that no longer exists is set aside (:attr:`skipped`) and the rest goes on; on any
        other failure the entries not yet sent stay, and the error is raised.

        Returns:
            The number of metric values sent.
        """
        from mlflow import MlflowClient

        lines, sent, clients, set_aside = self._lines(), 0, {}, []
        self.skipped = []
        for index, (number, text, entry) in enumerate(lines):
            if entry is None:
                set_aside.append(text)
                self.skipped.append(f"line {number}: torn (not a whole JSON entry); moved to {self.rejected_path}")
                continue
            target = client or clients.setdefault(entry["uri"], MlflowClient(tracking_uri=entry["uri"]))
            try:
                sent += _send_entry(target, entry)
            except Exception as error:
                gone = _run_gone(target, entry["run_id"])
                if gone is None:
                    self._set_aside(set_aside)
                    self._rewrite([line for _, line, _ in lines[index:]])
                    raise error
                set_aside.append(text)
                self.skipped.append(f"line {number}: {gone}; moved to {self.rejected_path}")
        self._set_aside(set_aside)
        self.path.unlink(missing_ok=True)
        return sent

    def _set_aside(self, lines: list[str]) -> None:
        if lines:
            with self.rejected_path.open("a") as file:
                file.write("".join(line + "\n" for line in lines))

    def _rewrite(self, lines: list[str]) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text("".join(line + "\n" for line in lines))
        temporary.replace(self.path)


def _send_entry(client: Any, entry: dict[str, Any]) -> int:
    from mlflow.entities import Metric

    if entry["kind"] == "metrics":
        metrics = [Metric(key, value, stamp, step) for key, value, stamp, step in entry["metrics"]]
        for start in range(0, len(metrics), 1000):
            client.log_batch(entry["run_id"], metrics=metrics[start : start + 1000])
        return len(metrics)
    client.set_terminated(entry["run_id"], entry["status"], end_time=entry["end_time"])
    return 0


def _run_gone(client: Any, run_id: str) -> str | None:
    """Why a run can never take its pending entries (deleted, or not in the store), or None if it still can."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        return f"run {run_id} is not in the store" if error.error_code == "RESOURCE_DOES_NOT_EXIST" else None
    except Exception:  # the store does not answer: keep the entries for the next try
        return None
    return f"run {run_id} was deleted" if run.info.lifecycle_stage == "deleted" else None


@dataclass
class SyncResult:
    """What :func:`sync_pending` did with one pending file."""

    sent: int = 0
    skipped: list[str] = field(default_factory=list)
    error: str = ""


def sync_pending(paths: list[Path]) -> dict[Path, SyncResult]:
    """Sends the pending tracking calls kept in ``paths`` (files, or folders searched for
    ``*.mlflow-pending.jsonl``), file by file: a file that cannot be sent yet keeps its entries and says why in
    its result, and the others are still sent.

    Returns:
        What happened to each file.
    """
    files = [found for path in paths
             for found in (sorted(Path(path).rglob(f"*{PENDING_SUFFIX}")) if Path(path).is_dir() else [Path(path)])]
    results = {}
    for file in files:
        log, result = PendingLog(file), SyncResult()
        try:
            result.sent = log.send()
        except Exception as error:
            result.error = (f"its pending MLflow calls could not be sent ({type(error).__name__}: "
                            f"{first_line(error)}); they are kept there, try again when the server answers")
        result.skipped = log.skipped
        results[file] = result
    return results


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
        _check_reachable(uri)
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
                   tags={"pipeline": pipeline, **(tags or {}), **config.tags}, pending=pending)

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
                  ) -> str | None:
        """Logs a torch model with its signature, registers it and points ``alias`` at the new version.

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
            package = Path(__file__).resolve().parent
            with mlflow.start_run(run_id=self.run_id):
                info = mlflow.pytorch.log_model(
                    model, name="model", signature=signature,
                    input_example=(input_example, dict(example_params)) if example_params else input_example,
                    code_paths=[str(package)], serialization_format="pickle",
                    pip_requirements=["torch==2.13.0", "einops", "kornia", "numpy"],
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
