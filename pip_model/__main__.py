"""``python -m pip_model restore ...`` (``prompt-restore``; see :mod:`pip_model.apps.restore`),
``python -m pip_model studio ...`` (``pip-studio``: a local page where you steer the prompt; see
:mod:`pip_model.apps.studio`) and ``python -m pip_model sync [PATH...]``: send the MLflow metrics that a tracking
outage kept on disk."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from pip_model.config import CommandLine


def sync(paths: list[Path]) -> int:
    """Sends the MLflow metrics (and run ends) that a tracking outage kept on disk, file by file; torn lines and
    lines of deleted runs are reported and set aside in FILE.rejected, never dropped."""
    from pip_model.tracking.pending import sync_pending

    results = sync_pending(paths)
    for file, result in results.items():
        for line in result.skipped:
            print(f"sync: {file}: skipped {line}", file=sys.stderr)
        if result.error:
            print(f"sync: {file}: {result.error}", file=sys.stderr)
        else:
            print(f"sync: {file}: {result.sent} metric values sent")
    if not results:
        print("sync: nothing pending")
    return 1 if any(result.error for result in results.values()) else 0


def main(arguments: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if arguments is None else arguments)
    if arguments[:1] == ["restore"]:  # its own parser: `python -m pip_model restore --help` is prompt-restore's
        from pip_model.apps.restore import main as restore

        return restore(arguments[1:], prog="python -m pip_model restore")
    if arguments[:1] == ["studio"]:  # its own parser too: `python -m pip_model studio --help` is pip-studio's
        from pip_model.apps.studio import main as studio

        return studio(arguments[1:], prog="python -m pip_model studio")
    parser = CommandLine(prog="python -m pip_model", description=__doc__,
                         example="python -m pip_model restore photos/ --out restored/ --task derain")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{restore,studio,sync}")
    commands.add_parser("restore", help="restore your images (the same as prompt-restore; see restore --help)")
    commands.add_parser("studio", help="a local web page where you steer the prompt and see the result (the same "
                                       "as pip-studio; see studio --help)")
    sync_command = commands.add_parser(
        "sync", help="send the MLflow metrics an outage kept", description=sync.__doc__ or "",
        epilog="example:\n  python -m pip_model sync checkpoints/", formatter_class=parser.formatter_class)
    sync_command.error = parser.error  # type: ignore[method-assign]  # one line here too
    sync_command.add_argument("paths", nargs="*", type=Path, default=[Path("checkpoints")], metavar="PATH",
                              help="pending files (*.mlflow-pending.jsonl) or folders holding them "
                                   "(default: checkpoints/)")
    args = parser.parse_args(arguments)
    return sync(args.paths)


if __name__ == "__main__":
    sys.exit(main())
