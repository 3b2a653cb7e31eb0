"""The `paper` flow: one of the paper's experiments (`params.yaml: protocols`) as one DVC experiment.

    python -m flows.paper 3task /path/to/datasets                     # or 5task
    python -m flows.paper cdd11 /path/to/CDD-11                       # OneRestore's CDD-11 (docs/03-paper.md)
    python -m flows.paper 3task /path/to/datasets --method promptir   # PromptIR's published recipe (default: pip)
    python -m flows.paper 3task /path/to/datasets train.steps=1000    # KEY=VALUE pairs override last
    python -m flows.paper 3task /path/to/datasets --evaluate-only promptir=model.ckpt adair=adair3d.ckpt  # released

The overrides are the shared `recipe`, then the method's (`methods.<method>`), then the protocol's,
then `prepare.datasets_root`, then the command line's. The experiment runs in the workspace
(`dvc exp run -n paper-<protocol>`, `paper-<protocol>-<method>` for a method other than pip), so
`results/metrics.json` and `reports/` (with the paper's table) are there when it ends. The published
recipes count epochs: `train.steps=N` cuts a run short on the same schedule.

`--evaluate-only NAME=FILE ...` trains nothing: it scores released checkpoints (the Lightning files of PromptIR,
AdaIR and MoCE-IR, the published PIP-Restormer's state dict) or model files of this project, each holding the
registry model NAME, on the protocol (KEY=VALUE overrides go before the flag). The protocol's data stages run as a DVC experiment (`dvc exp run paper-<protocol>-benchmark
... degrade`: scan, prepare, degrade, with the protocol's params), then the `evaluate` stage's script scores the
files on that benchmark under the protocol's test settings, outside DVC (`evaluate`'s DVC stage scores `models/`,
which only `train` writes), into `reports/evaluate_only/`: its metrics, the paper-layout table, and each file's
row beside its published one with the difference per column, which the flow prints. Only the test sets present
are needed (and no training data): a task whose test set is missing, or that the model does not cover (a
denoiser scores the noise columns alone), is left empty, and the lines under the table name the missing sets.
NAME may be a plug-in's model (docs/09-add-a-model.md): FILE then holds its state dict.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task

from flows.common import dvc, key_value, override_arguments, run_script, split_key_value
from pip_model.config import CommandLine, ConfigError, read_params
from pip_model.protocols import DEFAULT_METHOD, known_protocols, protocol_overrides

EVALUATE_ONLY_DIR = "reports/evaluate_only"  # outside every DVC stage's outputs: no stage is made stale by it


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


@task(task_run_name="read {name}={path}")
def read_model_file(name: str, path: str) -> str:
    """Reads a file given to ``--evaluate-only`` before any data stage runs; what it holds, in words."""
    from pip_model.networks.reference import describe_metadata, load_model_or_published

    return f"{path} ({describe_metadata(load_model_or_published(path, expect=name)[1])})"


@task(task_run_name="data stages of paper-{protocol}")
def build_benchmark(repo_dir: str, protocol: str, overrides: dict[str, Any]) -> str:
    """Runs the protocol's stages up to ``degrade`` (its benchmark; nothing trained) as a DVC experiment."""
    name = free_experiment_name(Path(repo_dir), f"{experiment_name(protocol)}-benchmark")
    output = dvc(Path(repo_dir), "exp", "run", "-n", name, *override_arguments(overrides), "degrade")
    get_run_logger().info("%s done", name)
    return output


@task(task_run_name="evaluate {models}")
def evaluate_files(repo_dir: str, models: dict[str, str]) -> str:
    """The ``evaluate`` stage's script on the files, on the benchmark ``degrade`` wrote, into ``EVALUATE_ONLY_DIR``."""
    out = Path(repo_dir) / EVALUATE_ONLY_DIR
    shutil.rmtree(out, ignore_errors=True)  # a file of an earlier run leaves no row behind
    outputs = {flag: f"{EVALUATE_ONLY_DIR}/{name}" for flag, name in (
        ("--metrics", "metrics.json"), ("--per-image", "per_image.csv"), ("--examples", "examples"),
        ("--prompts", "prompts.json"), ("--parameters", "parameters.json"))}
    return run_script(Path(repo_dir), "stages/evaluate.py", "--params", "params.yaml", "--benchmark", "data/benchmark",
                      "--models", *(f"{name}={path}" for name, path in models.items()),
                      *(part for flag, path in outputs.items() for part in (flag, path)))


def score_files(protocol: str, datasets_root: str, repo_dir: str, overrides: dict[str, Any] | None,
                models: dict[str, str]) -> str:
    """``paper(..., evaluate_only=...)``: the protocol's benchmark, the files scored on it, their tables printed."""
    from pip_model.apps.paper_table import write_evaluate_only

    from pip_model.networks.registry import use_configured_plugins

    repo = Path(repo_dir)
    use_configured_plugins(repo / "params.yaml")  # a model of params.yaml's plug-ins is read here too
    models = {name: str(Path(path).resolve()) for name, path in models.items()}
    described = {name: read_model_file(name, path) for name, path in models.items()}
    # Scoring needs no training data and only the test sets that are there: the missing ones are listed.
    scoring = {"prepare.require_test_sets": [], "prepare.train_lists": {}, "degrade.train_pairs_per_task": 0,
               **(overrides or {})}
    build_benchmark(repo_dir, protocol, protocol_overrides(repo, protocol, datasets_root, scoring, method=None))
    evaluate_files(repo_dir, models)
    print(f"{experiment_name(protocol)} --evaluate-only: "
          + write_evaluate_only(repo / EVALUATE_ONLY_DIR, protocol, described, repo / "data" / "benchmark",
                                read_params(repo / "params.yaml")))
    return str(repo / EVALUATE_ONLY_DIR / "paper_table.csv")


@flow(name="paper", log_prints=True)
def paper(protocol: str, datasets_root: str, repo_dir: str = ".", overrides: dict[str, Any] | None = None,
          method: str = DEFAULT_METHOD, evaluate_only: dict[str, str] | None = None) -> str:
    """Runs one of the paper's experiments and prints its table in the paper's layout.

    Args:
        protocol: a key of ``params.yaml: protocols`` (``3task``, ``5task`` or ``cdd11``).
        method: whose published recipe trains the models: a key of ``params.yaml: protocols.methods`` (``pip``,
            ``promptir``).
        datasets_root: the folder holding the paper's datasets (``prepare.datasets_root``).
        repo_dir: the repository holding dvc.yaml and params.yaml.
        overrides: dotted params set last, e.g. {"train.steps": 1000}.
        evaluate_only: registry name -> file ({"promptir": "model.ckpt"}): train nothing, score these files (released
            checkpoints or model files of this project) on the protocol's benchmark, each beside its published row.

    Returns:
        The path of the paper-layout table (``reports/paper_table.csv``; ``reports/evaluate_only/paper_table.csv``
        with ``evaluate_only``).
    """
    if evaluate_only:
        return score_files(protocol, datasets_root, repo_dir, overrides, evaluate_only)
    run_protocol(repo_dir, protocol, protocol_overrides(Path(repo_dir), protocol, datasets_root, overrides, method),
                 method)
    table = Path(repo_dir) / "reports" / "paper_table.csv"
    notes = table.with_name("paper_table_notes.txt")
    print(f"{experiment_name(protocol, method)}: PSNR/SSIM in the paper's layout ({table})\n"
          + pd.read_csv(table, index_col=0, keep_default_na=False).to_string()
          + (f"\n{notes.read_text()}" if notes.is_file() else ""))
    return str(table)


def model_file(text: str) -> tuple[str, str]:
    """One ``--evaluate-only NAME=FILE``, for argparse's ``type=``: NAME a registry model, FILE an existing file."""
    name, path = split_key_value(text, "NAME=FILE")
    if not Path(path).is_file():
        hint = " (a KEY=VALUE override? put overrides before --evaluate-only)" if "." in name else ""
        raise argparse.ArgumentTypeError(f"{text}: no such file {path!r}{hint}")
    return name, path


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
    parser.add_argument("--method", choices=methods or None,
                        help=f"whose published recipe trains the models: {', '.join(methods) or 'none found here'} "
                             f"(default {DEFAULT_METHOD})")
    parser.add_argument("--evaluate-only", action="extend", nargs="+", type=model_file, metavar="NAME=FILE",
                        help="train nothing: score each FILE (a released checkpoint, e.g. PromptIR's model.ckpt, "
                             "AdaIR's adair3d.ckpt, MoCE-IR's last.ckpt, or a model file), holding the registry "
                             "model NAME (promptir, adair, moce_ir, pip_restormer), on the protocol and print it "
                             "beside its published row; KEY=VALUE overrides go before it")
    parser.add_argument("overrides", nargs="*", type=key_value, metavar="KEY=VALUE", help="params set last")
    args = parser.parse_intermixed_args(arguments)  # --method may come after KEY=VALUE pairs
    files = dict(args.evaluate_only or [])
    if files and args.method:
        parser.error("--method chooses whose recipe trains the models; --evaluate-only trains none")
    if len(files) != len(args.evaluate_only or []):
        parser.error("--evaluate-only: one file per NAME (each is one row of the table)")
    paper(protocol=args.protocol, datasets_root=args.datasets_root, repo_dir=str(Path.cwd()),
          overrides=dict(args.overrides) or None, method=args.method or DEFAULT_METHOD, evaluate_only=files or None)


if __name__ == "__main__":
    main()
