"""``python -m pip_model restore ...`` (see :mod:`pip_model.restore`) and ``python -m pip_model sync [PATH...]``:
send the MLflow metrics that a tracking outage kept on disk (``checkpoints/`` by default)."""

import sys
from pathlib import Path

USAGE = ("usage: python -m pip_model restore INPUT... --out DIR [options]   (-h for help)\n"
         "       python -m pip_model sync [PATH...]   (pending MLflow metrics; default: checkpoints/)")


def sync(paths: list[str]) -> int:
    from pip_model.tracking import TrackingUnavailable, sync_pending

    try:
        sent = sync_pending([Path(path) for path in paths or ["checkpoints"]])
    except TrackingUnavailable as error:
        print(f"sync: {error}", file=sys.stderr)
        return 1
    for file, count in sent.items():
        print(f"sync: {file}: {count} metric values sent")
    if not sent:
        print("sync: nothing pending")
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "restore":
        from pip_model.restore import main

        sys.exit(main(sys.argv[2:]))
    if command == "sync":
        sys.exit(sync(sys.argv[2:]))
    print(USAGE, file=sys.stderr)
    sys.exit(2)
