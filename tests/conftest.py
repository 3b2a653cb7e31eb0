"""Shared fixtures: the default corpus and benchmark, stage environments, servers, and a temporary
git + DVC repository made from this checkout."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml

from pip_model.data.corpus import PrepareConfig, prepare_corpus
from pip_model.data.pairs import DegradeConfig, build_benchmark

ROOT = Path(__file__).resolve().parents[1]
PIPELINE_FILES = ("dvc.yaml", "params.yaml", "pyproject.toml", "README.md", "stages", "pip_model", "flows", "bench",
                  "data/datasets",
                  "results/seeds", ".dvcignore", ".gitignore")


QUIET = {"progress": lambda message: None}


def stage_environment(folder: Path, **extra: str) -> dict[str, str]:
    """The environment a stage script runs in: this interpreter first on PATH, this checkout importable,
    an MLflow SQLite store in ``folder`` (``extra`` overrides any of it)."""
    env = dict(os.environ)
    # Stage commands call `python`: make it this interpreter, which has pip_model installed.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(DVC_NO_ANALYTICS="1", MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}", PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def _environment(repo: Path) -> dict[str, str]:
    return stage_environment(repo, GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@localhost",
                             GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@localhost")


def randomise_output(model: torch.nn.Module) -> torch.nn.Module:
    """New restorers start as the identity (zero output conv); a random output layer shows what the body computes,
    so a test never compares the identity with itself."""
    for name in ("output", "ending"):
        if hasattr(model, name):
            torch.nn.init.normal_(getattr(model, name).weight, std=0.05)
    return model


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


def stages_run(dvc_output: str) -> list[str]:
    """The stages a `dvc repro` ran, in order, without `scan` (it lists the datasets folder on every repro)."""
    import re

    return [stage for stage in re.findall(r"Running stage '([^']+)'", dvc_output) if stage != "scan"]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_group(process: subprocess.Popen) -> None:
    """Stops a process started in its own session, with every child it spawned (a group already gone is fine)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def running_server(command: list[str], health_url: str, log_path: Path,
                   env: dict[str, str], cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    """Runs a server (in ``cwd``, or here) in its own process group until the block ends; waits until
    ``health_url`` answers.

    Yields the server's process, the leader of its group, so a test may also kill the server itself."""
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(health_url, timeout=2).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{command[:4]} did not start:\n{log_path.read_text()}") from None
                    time.sleep(0.5)
            yield process
        finally:
            stop_group(process)


def server_command(folder: Path, port: int, backend: str | None = None, *, basic_auth: bool = False) -> list[str]:
    """An `mlflow server` on loopback with artifacts proxied into ``folder``, and its runs in ``backend`` (a
    database URI) or in a SQLite file in ``folder``; ``basic_auth`` turns its logins on."""
    return [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", backend or f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination", (folder / "artifacts").as_uri(), "--workers", "1",
            *(["--app-name", "basic-auth"] if basic_auth else [])]


MLFLOW_ADMIN = ("admin", secrets.token_urlsafe(12))


def basic_auth_settings(folder: Path, users_database: str) -> dict[str, str]:
    """The server-side settings of MLflow's basic-auth app, as the README's team setup writes them: a config
    file (the admin's login, the users' database, read-only access by default) and the key that signs its
    forms."""
    config = folder / "basic_auth.ini"
    config.write_text("[mlflow]\ndefault_permission = READ\n"
                      f"database_uri = {users_database}\n"
                      f"admin_username = {MLFLOW_ADMIN[0]}\nadmin_password = {MLFLOW_ADMIN[1]}\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}


def create_mlflow_user(uri: str, username: str) -> dict[str, str]:
    """Has the admin create a user on a basic-auth server (the README's command); returns that user's login as
    the environment variables MLflow clients read."""
    password = secrets.token_urlsafe(12)
    subprocess.run([sys.executable, "-c", "import sys, mlflow.server as server; server.get_app_client("
                    "'basic-auth', tracking_uri=sys.argv[1]).create_user(sys.argv[2], sys.argv[3])",
                    uri, username, password], check=True, capture_output=True,
                   env=dict(server_environment(), MLFLOW_TRACKING_USERNAME=MLFLOW_ADMIN[0],
                            MLFLOW_TRACKING_PASSWORD=MLFLOW_ADMIN[1]))
    return {"MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password}


POSTGRES_BIN = Path(os.environ.get("PIP_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))


@contextlib.contextmanager
def running_postgres(port: int) -> Iterator[str]:
    """A throwaway PostgreSQL cluster on loopback (run as the ``postgres`` user when we are root, which PostgreSQL
    refuses to run as) with a second, empty database ``users``; yields the URI of its main database and removes
    it afterwards."""
    if not (POSTGRES_BIN / "initdb").is_file():
        pytest.skip(f"PostgreSQL is not installed at {POSTGRES_BIN} (set PIP_POSTGRES_BIN)")
    folder = Path(tempfile.mkdtemp(prefix="pip-postgres-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(folder, "postgres")
    data = folder / "data"

    def postgres(*command: object) -> None:
        subprocess.run([*as_postgres, *map(str, command)], check=True, capture_output=True, cwd=folder)

    try:
        postgres(POSTGRES_BIN / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
        postgres(POSTGRES_BIN / "pg_ctl", "-D", data, "-l", folder / "postgres.log", "-w", "start", "-o",
                 f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off")
        postgres(POSTGRES_BIN / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "users")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            postgres(POSTGRES_BIN / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def server_environment() -> dict[str, str]:
    """The server's environment: this one, without telemetry, with this interpreter's scripts on PATH."""
    return dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true",
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def answers(url: str) -> bool:
    """Whether an HTTP server answers ``url``."""
    try:
        urllib.request.urlopen(url, timeout=2).close()
        return True
    except OSError:
        return False


@dataclass
class Server:
    """A running server: its URI, its process (the leader of its own process group) and its store."""

    uri: str
    process: subprocess.Popen
    backend: str | None = None  # the database URI of its store, when not its SQLite file
    login: dict[str, str] = field(default_factory=dict)  # a user's MLflow login (environment), when it asks


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


PREFECT_LOGIN = f"team:{secrets.token_urlsafe(12)}"


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
