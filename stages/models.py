"""DVC stage `models`: the fingerprint of every model the pipeline trains -> `data/model_code/<name>.json`.

Each train stage depends on its own model's file (`pip_model/networks/fingerprint.py` says what it holds: the
architecture, how the model is called, what it covers, and the source of the code that builds and runs it), not on
the folder of every network: a new model, built in or plugged in, adds a file and a train stage of its own and
leaves every other one up to date. The stage runs on every `dvc repro` (`always_changed`) and rewrites nothing that
did not change.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pip_model.config import ConfigError, read_params
from pip_model.networks.fingerprint import model_fingerprint
from pip_model.networks.registry import PluginError, use_configured_plugins


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", type=Path, required=True, help="folder to write: <model>.json per trained model")
    args = parser.parse_args()
    try:
        use_configured_plugins(args.params)
        params = read_params(args.params)
        names = [*((params.get("train_run") or {}).get("models") or []), (params.get("sensor") or {}).get("model")]
        fingerprints = {name: model_fingerprint(name) for name in dict.fromkeys(filter(None, names))}
    except (ConfigError, PluginError, ValueError) as error:
        print(f"models: {error}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in set(args.out.glob("*.json")) - {args.out / f"{name}.json" for name in fingerprints}:
        stale.unlink()
    for name, fingerprint in fingerprints.items():
        path, text = args.out / f"{name}.json", json.dumps(fingerprint, indent=2) + "\n"
        changed = not path.is_file() or path.read_text() != text
        if changed:
            path.write_text(text)
        print(f"models: {name} ({fingerprint['origin']}, {len(fingerprint['code'])} code modules)"
              f"{': changed' if changed else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
