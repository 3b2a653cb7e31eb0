"""DVC stage `scan`: the folders whose images `prepare` lists where they lie -> a list of their files (size,
SHA-256) and bad entries: `prepare.datasets_root` -> --out, `prepare.source` -> --source-out.

`prepare` depends on these lists instead of on the folders: DVC's own hash walk stops the whole
`dvc repro` at one broken link or one file name that is not UTF-8, before any stage runs, while
this scan lists such entries (prepare rejects them) and goes on. Since `prepare` copies neither
folder's images, an edited, added or removed file must rerun it: the lists change exactly then.
It runs on every `dvc repro` (`always_changed`), so it imports no torch and caches its hashes by
size, time and inode: a rescan only stats.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pip_model.config import ConfigError, read_params
from pip_model.image_files import index_folder, write_index


def _scan(key: str, configured: str, out: Path) -> None:
    """Indexes one folder of ``params.yaml: prepare`` (none: a list with no rows) into ``out``."""
    root = Path(configured) if configured else None
    rows = index_folder(root, hash_cache=out.with_name(f".{out.name}.cache.json"))
    write_index(out, rows)
    problems = sum(1 for row in rows if row["problem"])
    print(f"scan: {root or f'(no prepare.{key})'}: {len(rows) - problems} files, {problems} bad entries"
          + (" (prepare lists them in rejects.csv)" if problems else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", type=Path, required=True,
                        help="CSV to write for prepare.datasets_root: path, bytes, sha256, problem")
    parser.add_argument("--source-out", type=Path, help="CSV to write for prepare.source, alike")
    args = parser.parse_args()
    try:
        prepare = read_params(args.params).get("prepare") or {}
    except ConfigError as error:
        print(f"scan: {error}", file=sys.stderr)
        return 1
    _scan("datasets_root", prepare.get("datasets_root") or "", args.out)
    if args.source_out is not None:
        _scan("source", prepare.get("source") or "", args.source_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
