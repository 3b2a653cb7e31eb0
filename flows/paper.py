"""The `paper` flow: one of the paper's experiments (`params.yaml: protocols`) as one DVC experiment.

    python -m flows.paper 3task /path/to/datasets                     # or 5task
    python -m flows.paper 3task /path/to/datasets --method promptir   # PromptIR's published recipe (default: pip)
    python -m flows.paper 3task /path/to/datasets train.steps=1000    # KEY=VALUE pairs override last

The overrides are the shared `recipe`, then the method's (`methods.<method>`), then the protocol's,
then `prepare.datasets_root`, then the command line's. The experiment runs in the workspace
(`dvc exp run -n paper-<protocol>`, `paper-<protocol>-<method>` for a method other than pip), so
`results/metrics.json` and `reports/` (with the paper's table) are there when it ends. The published
recipes count epochs: `train.steps=N` cuts a run short on the same schedule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task

from flows.common import dvc, key_value, override_arguments
from pip_model.config import CommandLine, ConfigError, read_params

NOT_PROTOCOLS = frozenset({"recipe", "methods"})  # the keys of params.yaml: protocols that are no protocol
DEFAULT_METHOD = "pip"


def known_protocols(protocols: dict[str, Any]) -> list[str]:
    return sorted(name for name in protocols if name not in NOT_PROTOCOLS)


def protocol_overrides(repo: Path, protocol: str, datasets_root: str, overrides: dict[str, Any] | None = None,
                       method: str = DEFAULT_METHOD) -> dict[str, Any]:
    """The params overrides of one protocol trained by one method's recipe, in the order they apply (later keys
    win): ``recipe``, ``methods.<method>``, the protocol's, the datasets root, ``overrides``."""
    protocols = read_params(repo / "params.yaml").get("protocols") or {}
    known = known_protocols(protocols)
    if protocol not in known:
        raise ValueError(f"unknown protocol {protocol!r}; params.yaml's protocols has {', '.join(known) or 'none'}")
    methods = protocols.get("methods") or {}
    if method not in methods:
        raise ValueError(f"unknown method {method!r}; params.yaml's protocols.methods has "
                         f"{', '.join(sorted(methods)) or 'none'}")
    return {**(protocols.get("recipe") or {}), **(methods[method] or {}), **protocols[protocol],
            "prepare.datasets_root": datasets_root, **(overrides or {})}


def experiment_name(protocol: str, method: str = DEFAULT_METHOD) -> str:
    return f"paper-{protocol}" if method == DEFAULT_METHOD else f"paper-{protocol}-{method}"


def free_experiment_name(repo: Path, name: str) -> str:
    """``name``, or ``name-2``, ``name-3``... when DVC already holds an experiment of that name (a second run of a
    protocol keeps the first one's record; DVC refuses to reuse a name)."""
    taken = set(dvc(repo, "exp", "list", "--all-commits", "--name-only").split())
    return next(candidate for candidate in (name, *(f"{name}-{k}" for k in range(2, len(taken) + 3)))
                if candidate not in taken)


@task(task_run_name="experiment paper-{protocol}")
def run_protocol(repo_dir: str, protocol: str, overrides: dict[str, Any], method: str = DEFAULT_METHOD) -> str:
    """Runs the protocol as a DVC experiment in the workspace."""
    name = free_experiment_name(Path(repo_dir), experiment_name(protocol, method))
    output = dvc(Path(repo_dir), "exp", "run", "-n", name, *override_arguments(overrides))
    get_run_logger().info("%s done", name)
    return output


@flow(name="paper", log_prints=True)
def paper(protocol: str, datasets_root: str, repo_dir: str = ".", overrides: dict[str, Any] | None = None,
          method: str = DEFAULT_METHOD) -> str:
    """Runs one of the paper's experiments and prints its table in the paper's layout.

    Args:
        protocol: a key of ``params.yaml: protocols`` (``3task`` or ``5task``).
        method: whose published recipe trains the models: a key of ``params.yaml: protocols.methods`` (``pip``,
            ``promptir``).
        datasets_root: the folder holding the paper's datasets (``prepare.datasets_root``).
        repo_dir: the repository holding dvc.yaml and params.yaml.
        overrides: dotted params set last, e.g. {"train.steps": 1000}.

    Returns:
        The path of the paper-layout table (``reports/paper_table.csv``).
    """
    run_protocol(repo_dir, protocol, protocol_overrides(Path(repo_dir), protocol, datasets_root, overrides, method),
                 method)
    table = Path(repo_dir) / "reports" / "paper_table.csv"
    notes = table.with_name("paper_table_notes.txt")
    print(f"{experiment_name(protocol, method)}: PSNR/SSIM in the paper's layout ({table})\n"
          + pd.read_csv(table, index_col=0, keep_default_na=False).to_string()
          + (f"\n{notes.read_text()}" if notes.is_file() else ""))
    return str(table)


def main(arguments: list[str] | None = None) -> None:
    try:
        protocols = read_params("params.yaml").get("protocols") or {}
    except ConfigError:
        protocols = {}  # not in a repository: --help still answers, and a run says what is missing
    known, methods = known_protocols(protocols), sorted(protocols.get("methods") or {})
    parser = CommandLine(prog="python -m flows.paper", description=__doc__,
                         example="python -m flows.paper 3task /data/datasets train.steps=1000")
    parser.add_argument("protocol", choices=known or None, metavar="PROTOCOL",
                        help=f"a protocol of params.yaml: {', '.join(known) or 'none found here'}")
    parser.add_argument("datasets_root", metavar="DATASETS_DIR", help="the folder holding the paper's datasets")
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=methods or None,
                        help=f"whose published recipe trains the models: {', '.join(methods) or 'none found here'} "
                             f"(default {DEFAULT_METHOD})")
    parser.add_argument("overrides", nargs="*", type=key_value, metavar="KEY=VALUE", help="params set last")
    args = parser.parse_intermixed_args(arguments)  # --method may come after KEY=VALUE pairs
    paper(protocol=args.protocol, datasets_root=args.datasets_root, repo_dir=str(Path.cwd()),
          overrides=dict(args.overrides) or None, method=args.method)


if __name__ == "__main__":
    main()
