"""Shared fixtures (the default corpus and benchmark, a real MLflow server, a real Prefect server) and the hooks
behind the ``integration`` marker; what tests import lives in ``tests/helpers/``."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from pip_model.data.corpus import PrepareConfig, prepare_corpus
from pip_model.data.pairs import DegradeConfig, build_benchmark
from tests.helpers.servers import Server, free_port, running_server, server_environment
from tests.helpers.stages import QUIET
from tests.helpers.tracking import (
    PREFECT_LOGIN,
    basic_auth_settings,
    create_mlflow_user,
    running_postgres,
    server_command,
)

# Fixtures that start a server: a test that asks for one is an integration test.
SERVER_FIXTURES = frozenset({"mlflow_server", "prefect_api"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--unit", action="store_true",
                     help="run the unit tests only: deselect the tests marked integration (on top of any -m, such "
                          "as addopts' -m 'not slow and not gpu')")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items
                if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker(
                    "integration")]
    if unmarked:
        raise pytest.UsageError("these tests start a server through a fixture but lack the integration marker: "
                                + ", ".join(unmarked))
    if config.getoption("--unit"):
        integration = [item for item in items if item.get_closest_marker("integration")]
        if integration:
            config.hook.pytest_deselected(items=integration)
            items[:] = [item for item in items if not item.get_closest_marker("integration")]


@pytest.fixture(params=[1, 2], ids=lambda count: f"{count}thread")
def threads(request) -> Iterator[int]:
    """Runs the test at 1 and at 2 torch threads (reductions split across threads round differently)."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def default_prepared(tmp_path_factory) -> Path:
    """The ``prepare`` stage's output for the default corpus (scikit-image's photographs), made once."""
    out = tmp_path_factory.mktemp("default") / "prepared"
    prepare_corpus(PrepareConfig(), seed=0, out_dir=out, **QUIET)
    return out


@pytest.fixture(scope="session")
def benchmark_48(default_prepared) -> Path:
    """A small benchmark of the default corpus: one 48-px crop per val/test image and task."""
    out = default_prepared.parent / "benchmark_48"
    build_benchmark(default_prepared, DegradeConfig(benchmark_crop=48, crops_per_image=1), seed=0, out_dir=out,
                    **QUIET)
    return out


@pytest.fixture(scope="session")
def _empty_mlflow_database(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables made and nothing logged (making them takes seconds), made once."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_store(_empty_mlflow_database, tmp_path) -> str:
    """The URI of a new, empty MLflow SQLite store, ``tmp_path / "mlflow.db"`` (a copy of one made once)."""
    path = tmp_path / "mlflow.db"
    shutil.copyfile(_empty_mlflow_database, path)
    return f"sqlite:///{path}"


@pytest.fixture
def mlflow_server(request, tmp_path) -> Iterator[Server]:
    """A real MLflow server on loopback with a SQLite backend, or (indirect parameter ``"team"``) the README's
    team server: its runs and its users in a throwaway PostgreSQL cluster, logins required, and a user
    ``researcher`` made by the admin. Stopped with its worker processes (a test may also kill the whole group)."""
    with contextlib.ExitStack() as stack:
        team = getattr(request, "param", "sqlite") == "team"
        backend = stack.enter_context(running_postgres(free_port())) if team else None
        port = free_port()
        uri = f"http://127.0.0.1:{port}"
        environment = server_environment()
        if team:
            environment.update(basic_auth_settings(tmp_path, backend.rsplit("/", 1)[0] + "/users"))
        process = stack.enter_context(running_server(server_command(tmp_path, port, backend, basic_auth=team),
                                                     f"{uri}/health", tmp_path / "server.log", environment))
        yield Server(uri, process, backend, create_mlflow_user(uri, "researcher") if team else {})


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory) -> dict[str, str]:
    """A real Prefect server on a loopback port, with its own PREFECT_HOME and a login required (the README's
    team setup); yields the settings of a client that has the login."""
    home = tmp_path_factory.mktemp("prefect")
    port = free_port()
    settings = {"PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with running_server(command, f"http://127.0.0.1:{port}/api/health", home / "server.log",
                        dict(os.environ, **settings, PREFECT_SERVER_API_AUTH_STRING=PREFECT_LOGIN)):
        yield {**settings, "PREFECT_API_AUTH_STRING": PREFECT_LOGIN}
