"""DVC stage `prepare`: clean images -> data/prepared (manifest, rejects, pairs; images/ for the default
photographs only: the images of prepare.source and prepare.datasets_root are listed where they lie, never copied)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pip_model.config import BaseConfig, ConfigError, load_section
from pip_model.data.corpus import NotEnoughImagesError, PrepareConfig, prepare_corpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        base = load_section(BaseConfig, "base", args.params)
        config = load_section(PrepareConfig, "prepare", args.params)
        result = prepare_corpus(config, seed=base.seed, out_dir=args.out)
    except (ConfigError, NotEnoughImagesError, FileNotFoundError) as error:
        print(f"prepare: {error}", file=sys.stderr)
        return 1
    counts = result.manifest["split"].value_counts().reindex(["train", "val", "test"], fill_value=0)
    print(f"prepare: {len(result.manifest)} images ({', '.join(f'{n} {s}' for s, n in counts.items())}), "
          f"{len(result.pairs)} real pairs, {len(result.rejects)} rejected (see {args.out / 'rejects.csv'})")
    for row in result.rejects.itertuples():
        print(f"  rejected {row.path}: {row.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
