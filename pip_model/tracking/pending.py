"""What is logged while the tracking server is away: kept on disk, sent with the next call that gets through, or by
``python -m pip_model sync``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pip_model.tracking.uris import first_line

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

