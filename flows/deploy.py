"""Deployments: `pipeline` nightly on a cron schedule, `sweep` on demand.

Served by this process, on this machine:

    prefect server start &                             # the UI at http://127.0.0.1:4200
    python -m flows.deploy                             # from the repository root; keep it running
    prefect deployment run pipeline/nightly            # trigger a run now
    prefect deployment run sweep/on-demand -p grid='{"train.lr": [0.001, 0.002]}'

Or the production way, on a work pool whose workers (on any machine) fetch the flows' code from
source and run them there:

    prefect work-pool create gpu-pool --type process
    python -m flows.deploy --pool gpu-pool             # source: this repository (or --source GIT_URL)
    prefect worker start --pool gpu-pool               # on each machine that runs flows
"""

from __future__ import annotations

from pathlib import Path

from prefect import deploy, serve

from flows.common import FlowsConfig
from flows.pipeline import pipeline
from flows.sweep import sweep
from pip_model.config import CommandLine, load_section


def deployments(repo_dir: Path, *, source: str | None = None, pool: str | None = None) -> list:
    """The two deployments. Served (no ``pool``), they work on ``repo_dir``; on a pool, the worker fetches
    ``source`` (a folder or git URL; default ``repo_dir``) and runs them in that copy. The schedule comes
    from ``repo_dir``'s params.yaml."""
    cron = load_section(FlowsConfig, "flows", repo_dir / "params.yaml").cron
    flows, parameters = (pipeline, sweep), {"repo_dir": str(repo_dir)}
    if pool:
        origin = source or str(repo_dir)
        flows = (pipeline.from_source(origin, "flows/pipeline.py:pipeline"),
                 sweep.from_source(origin, "flows/sweep.py:sweep"))
        parameters = {"repo_dir": "."}  # the worker runs a flow in its copy of the source
    return [
        # On a pool, a copy from git starts without outputs: fetch what the DVC remote holds first.
        flows[0].to_deployment(name="nightly", cron=cron, parameters={**parameters, "pull": bool(pool)},
                               work_pool_name=pool, description="The whole DVC pipeline, nightly"),
        flows[1].to_deployment(name="on-demand", parameters=parameters, work_pool_name=pool,
                               description="A grid of DVC experiments, on demand"),
    ]


def main(arguments: list[str] | None = None) -> None:
    parser = CommandLine(prog="python -m flows.deploy", description=__doc__,
                         example="python -m flows.deploy --pool gpu-pool --source https://example.org/team/pip.git")
    parser.add_argument("--pool", help="a work pool: register the deployments there (from source) and return")
    parser.add_argument("--source", help="with --pool: where workers get the code (default: this repository)")
    args = parser.parse_args(arguments)
    if args.source and not args.pool:
        parser.error("--source needs --pool")
    made = deployments(Path.cwd().resolve(), source=args.source, pool=args.pool)
    if args.pool:
        deploy(*made, work_pool_name=args.pool, build=False, push=False, print_next_steps_message=False)
        print(f"deployments pipeline/nightly and sweep/on-demand are on the work pool {args.pool}; "
              f"start a worker: prefect worker start --pool {args.pool}")
    else:
        serve(*made)


if __name__ == "__main__":
    main()
