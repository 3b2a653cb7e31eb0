"""DVC stage `scan`: the datasets folder -> a list of its files (size, SHA-256) and bad entries.

`prepare` depends on this list instead of on the folder: DVC's own hash walk stops the whole
`dvc repro` at one broken link or one file name that is not UTF-8, before any stage runs, while
this scan lists such entries (prepare rejects them) and goes on. It runs on every `dvc repro`
(`always_changed`), so it imports no torch and caches its hashes by size, time and inode: a
rescan only stats.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pip_model.config import ConfigError, read_params
from pip_model.image_files import index_folder, write_index


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", type=Path, required=True, help="CSV to write: path, bytes, sha256, problem")
    args = parser.parse_args()
    try:
        configured = (read_params(args.params).get("prepare") or {}).get("datasets_root") or ""
    except ConfigError as error:
        print(f"scan: {error}", file=sys.stderr)
        return 1
    root = Path(configured) if configured else None
    rows = index_folder(root, hash_cache=args.out.with_name(f".{args.out.name}.cache.json"))
    write_index(args.out, rows)
    problems = sum(1 for row in rows if row["problem"])
    print(f"scan: {root or '(no prepare.datasets_root)'}: {len(rows) - problems} files, {problems} bad entries"
          + (" (prepare lists them in rejects.csv)" if problems else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
