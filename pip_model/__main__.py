"""``python -m pip_model restore ...``: the restore command (see :mod:`pip_model.restore`)."""

import sys

from pip_model.restore import main

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "restore":
        print("usage: python -m pip_model restore INPUT... --out DIR [options]   (-h for help)", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[2:]))
