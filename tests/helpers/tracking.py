"""The tracking servers' setups: an `mlflow server` (with the README's basic-auth app and its users), a throwaway
PostgreSQL cluster for the team server's store, and the Prefect server's login."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import server_environment


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


PREFECT_LOGIN = f"team:{secrets.token_urlsafe(12)}"
