"""Deployments: `pipeline` nightly on a cron schedule, `sweep` on demand, served by this process.

    prefect server start &                             # the UI at http://127.0.0.1:4200
    python -m flows.deploy                             # from the repository root; keep it running
    prefect deployment run pipeline/nightly            # trigger a run now
    prefect deployment run sweep/on-demand -p grid='{"train.lr": [0.001, 0.002]}'
"""

from __future__ import annotations

from pathlib import Path

from prefect import serve

from flows.common import FlowsConfig
from flows.pipeline import pipeline
from flows.sweep import sweep
from pip_model.config import load_section


def deployments(repo_dir: Path) -> list:
    """The two deployments, both working on ``repo_dir``; the schedule comes from its params.yaml."""
    cron = load_section(FlowsConfig, "flows", repo_dir / "params.yaml").cron
    return [
        pipeline.to_deployment(name="nightly", cron=cron, parameters={"repo_dir": str(repo_dir)},
                               description="The whole DVC pipeline, nightly"),
        sweep.to_deployment(name="on-demand", parameters={"repo_dir": str(repo_dir)},
                            description="A grid of DVC experiments, on demand"),
    ]


if __name__ == "__main__":
    serve(*deployments(Path.cwd().resolve()))
