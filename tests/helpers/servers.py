"""Servers run for a test: a free port, a process group started and stopped whole, the server's environment."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


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
