"""Where runs go: the tracking URI, its form, whether it answers, and one readable line for each way it can fail."""

from __future__ import annotations

import os
from pathlib import Path


class TrackingUnavailable(RuntimeError):
    """The MLflow tracking store cannot be reached or used."""


def tracking_uri(configured: str, root: Path) -> str:
    """The tracking URI: ``params.yaml``'s ``tracking.uri``, else ``MLFLOW_TRACKING_URI``, else SQLite at ``root``."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / 'mlflow.db').resolve()}"


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


def check_reachable(uri: str, timeout: float = 10.0) -> None:
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

