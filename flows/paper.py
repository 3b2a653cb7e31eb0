"""The `paper` flow: one of the paper's experiments (`params.yaml: protocols`) as one DVC experiment.

    python -m flows.paper 3task /path/to/datasets                    # or 5task
    python -m flows.paper 3task /path/to/datasets train.steps=1000   # KEY=VALUE pairs override last

The overrides are the shared `recipe`, then the protocol's, then `prepare.datasets_root`, then
the command line's. The experiment runs in the workspace (`dvc exp run -n paper-<protocol>`),
so `results/metrics.json` and `reports/` (with the paper's table) are there when it ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task

from flows.common import dvc, key_value, override_arguments
from pip_model.config import CommandLine, ConfigError, read_params


def protocol_overrides(repo: Path, protocol: str, datasets_root: str,
                       overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The params overrides of one protocol, in the order they apply (later keys win)."""
    protocols = read_params(repo / "params.yaml").get("protocols") or {}
    known = sorted(name for name in protocols if name != "recipe")
    if protocol not in known:
        raise ValueError(f"unknown protocol {protocol!r}; params.yaml's protocols has {', '.join(known) or 'none'}")
    return {**(protocols.get("recipe") or {}), **protocols[protocol], "prepare.datasets_root": datasets_root,
            **(overrides or {})}


@task(task_run_name="experiment paper-{protocol}")
def run_protocol(repo_dir: str, protocol: str, overrides: dict[str, Any]) -> str:
    """Runs the protocol as a DVC experiment in the workspace."""
    output = dvc(Path(repo_dir), "exp", "run", "-n", f"paper-{protocol}", *override_arguments(overrides))
    get_run_logger().info("paper-%s done", protocol)
    return output


@flow(name="paper", log_prints=True)
def paper(protocol: str, datasets_root: str, repo_dir: str = ".", overrides: dict[str, Any] | None = None) -> str:
    """Runs one of the paper's experiments and prints its table in the paper's layout.

    Args:
        protocol: a key of ``params.yaml: protocols`` (``3task`` or ``5task``).
        datasets_root: the folder holding the paper's datasets (``prepare.datasets_root``).
        repo_dir: the repository holding dvc.yaml and params.yaml.
        overrides: dotted params set last, e.g. {"train.steps": 1000}.

    Returns:
        The path of the paper-layout table (``reports/paper_table.csv``).
    """
    run_protocol(repo_dir, protocol, protocol_overrides(Path(repo_dir), protocol, datasets_root, overrides))
    table = Path(repo_dir) / "reports" / "paper_table.csv"
    notes = table.with_name("paper_table_notes.txt")
    print(f"paper-{protocol}: PSNR/SSIM in the paper's layout ({table})\n"
          + pd.read_csv(table, index_col=0, keep_default_na=False).to_string()
          + (f"\n{notes.read_text()}" if notes.is_file() else ""))
    return str(table)


def main(arguments: list[str] | None = None) -> None:
    try:
        known = sorted(name for name in read_params("params.yaml").get("protocols") or {} if name != "recipe")
    except ConfigError:
        known = []  # not in a repository: --help still answers, and a run says what is missing
    parser = CommandLine(prog="python -m flows.paper", description=__doc__,
                         example="python -m flows.paper 3task /data/datasets train.steps=1000")
    parser.add_argument("protocol", choices=known or None, metavar="PROTOCOL",
                        help=f"a protocol of params.yaml: {', '.join(known) or 'none found here'}")
    parser.add_argument("datasets_root", metavar="DATASETS_DIR", help="the folder holding the paper's datasets")
    parser.add_argument("overrides", nargs="*", type=key_value, metavar="KEY=VALUE", help="params set last")
    args = parser.parse_args(arguments)
    paper(protocol=args.protocol, datasets_root=args.datasets_root, repo_dir=str(Path.cwd()),
          overrides=dict(args.overrides) or None)


if __name__ == "__main__":
    main()
