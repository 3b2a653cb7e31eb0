"""The `seeds` flow: the pipeline once per `base.seed`, summarised as mean ± std per task and model.

    python -m flows.seeds                          # seeds 0 1 2
    python -m flows.seeds 0 1 2 3 4 train.steps=600

It runs the `sweep` flow over `base.seed` (each point a DVC experiment training every model
of `train_run.models`), then writes `results/seeds/` (summary, PIP minus its backbone and
minus PromptIR, chart); run `dvc repro` afterwards and the report shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow

from flows.common import key_value
from flows.sweep import sweep
from pip_model.apps.seeds import write_provenance, write_seed_results
from pip_model.config import CommandLine, read_params
from pip_model.tracking.lineage import git_commit


@flow(name="seeds", log_prints=True)
def seeds(repo_dir: str = ".", seed_values: list[int] | None = None, fixed: dict[str, Any] | None = None) -> str:
    """Runs every seed as a DVC experiment and writes the summary under ``results/seeds``.

    Args:
        repo_dir: the repository holding dvc.yaml and params.yaml.
        seed_values: the values of ``base.seed`` (at least 2; default 0, 1, 2).
        fixed: dotted params set for every seed, e.g. {"train.steps": 600}.

    Returns:
        The path of the results folder.
    """
    seed_values = list(seed_values or (0, 1, 2))
    if len(seed_values) < 2:
        raise ValueError(f"a spread needs at least 2 seeds, got {seed_values}")
    table = pd.read_csv(sweep(repo_dir=repo_dir, grid={"base.seed": seed_values}, fixed=fixed))
    out = Path(repo_dir) / "results" / "seeds"
    summary, difference = write_seed_results(table, out)
    params = read_params(Path(repo_dir) / "params.yaml")
    for key, value in (fixed or {}).items():  # the settings every seed ran with
        *sections, name = key.lstrip("+").split(".")
        target = params
        for section in sections:
            target = target.setdefault(section, {})
        target[name] = value
    write_provenance(out, commit=git_commit(Path(repo_dir)), params=params, seeds=seed_values)
    means = summary.pivot(index="task", columns="model", values="mean").reindex(summary["task"].unique())
    print(f"seeds {seed_values}: mean PSNR per task\n" + means.round(2).to_string())
    if not difference.empty:
        print("PIP minus its plain backbone and PromptIR, paired by seed\n"
              + difference.round(3).to_string(index=False))
    print(f"written to {out}; `dvc repro` adds them to the report")
    return str(out)


def _seed_or_override(text: str) -> int | tuple[str, Any]:
    try:
        return int(text)
    except ValueError:
        return key_value(text)


def main(arguments: list[str] | None = None) -> None:
    parser = CommandLine(prog="python -m flows.seeds", description=__doc__,
                         example="python -m flows.seeds 0 1 2 train.steps=600")
    parser.add_argument("items", nargs="*", type=_seed_or_override, metavar="SEED | KEY=VALUE",
                        help="values of base.seed (at least 2; default 0 1 2) and params set for every seed")
    args = parser.parse_args(arguments)
    values = [item for item in args.items if isinstance(item, int)]
    if len(values) == 1:
        parser.error(f"a spread needs at least 2 seeds, got {values[0]}")
    seeds(repo_dir=str(Path.cwd()), seed_values=values or None,
          fixed=dict(item for item in args.items if not isinstance(item, int)) or None)


if __name__ == "__main__":
    main()
