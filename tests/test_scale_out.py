"""The scale-out paths, run for real on loopback: a DVC remote that carries results and experiments from one
clone to another, and a sweep on a running Dask cluster. Marked ``scale``: CI runs them, ``-m 'not scale'`` skips
them locally."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers.pipeline import TINY, Repo, make_pipeline_repo, stages_run
from tests.helpers.servers import free_port, running_server
from tests.helpers.stages import stage_environment

pytestmark = [pytest.mark.scale, pytest.mark.integration]


def test_a_dvc_remote_carries_results_and_experiments_to_another_clone(tmp_path, prefect_api):
    """Clone A runs the tiny pipeline and pushes (git to a bare remote, data to a DVC remote folder, as the
    README's S3 or SSH remote would hold it); in clone B, the `pipeline` flow with `--pull` (what a worker's fresh
    copy from git runs) fetches it and finds every stage up to date, and B's metrics and models are A's. An
    experiment run in A travels to B with `dvc exp push` / `dvc exp pull`."""
    a = make_pipeline_repo(tmp_path / "a", TINY)
    origin, storage = tmp_path / "origin.git", tmp_path / "storage"
    a.run("git", "init", "-q", "--bare", str(origin))
    a.run("git", "remote", "add", "origin", str(origin))
    a.dvc("remote", "add", "-d", "storage", str(storage))
    a.dvc("repro")
    a.run("git", "add", "-A")
    a.run("git", "commit", "-qm", "results")
    a.run("git", "push", "-q", "origin", "HEAD:main")
    a.dvc("push")

    b = Repo(tmp_path / "b")
    a.run("git", "clone", "-q", "-b", "main", str(origin), str(b.path))
    flow = b.run(sys.executable, "-m", "flows.pipeline", "--pull", env=prefect_api)
    logs = flow.stdout + flow.stderr
    assert "pulled what the DVC remote holds" in logs and logs.count("up to date, nothing to do") == 7, logs
    output = b.dvc("repro").stdout
    assert stages_run(output) == [] and "didn't change, skipping" in output, output
    assert json.loads((b.path / "results" / "metrics.json").read_text()) == json.loads(
        (a.path / "results" / "metrics.json").read_text())
    for model in (a.path / "models").glob("*.pt"):
        assert (b.path / "models" / model.name).read_bytes() == model.read_bytes()

    before = json.loads((b.path / "results" / "metrics.json").read_text())
    a.dvc("exp", "run", "-n", "lr-low", "-S", "train.lr=0.001")
    a.dvc("exp", "push", "origin", "lr-low")
    b.dvc("exp", "pull", "origin", "lr-low")
    shown = json.loads(b.dvc("exp", "show", "--json").stdout)
    experiments = [exp for commit in shown for exp in (commit.get("experiments") or [])]
    names = {exp.get("name") for exp in experiments}
    assert "lr-low" in names, shown
    b.dvc("exp", "apply", "lr-low")
    assert "lr: 0.001" in (b.path / "params.yaml").read_text()
    applied = json.loads((b.path / "results" / "metrics.json").read_text())
    assert applied == json.loads((a.path / "results" / "metrics.json").read_text()) and applied != before


# A one-stage DVC pipeline whose experiments take a second: the sweep's machinery without the training.
SQUARE_STAGE = {"stages": {"square": {
    "cmd": "python -c \"import json, yaml; x = yaml.safe_load(open('params.yaml'))['x']; "
           "json.dump({'square': x * x}, open('square.json', 'w'))\"",
    "params": ["x"], "metrics": [{"square.json": {"cache": False}}]}}}


def test_a_sweep_runs_on_the_dask_cluster_at_its_address(tmp_path, prefect_api):
    """With `flows.sweep_runner: dask` and `flows.dask_address`, a sweep sends its points to a running cluster
    (a `dask scheduler` and a `dask worker` of two processes on loopback, the README's commands); each point runs
    in one of that cluster's worker processes, and the experiments are gathered into the sweep's table."""
    repo = Repo(tmp_path / "repo")
    repo.path.mkdir()
    port, dashboard = free_port(), free_port()
    address = f"tcp://127.0.0.1:{port}"
    (repo.path / "dvc.yaml").write_text(yaml.safe_dump(SQUARE_STAGE))
    (repo.path / "params.yaml").write_text(yaml.safe_dump(
        {"x": 1, "flows": {"sweep_runner": "dask", "dask_address": address, "sweep_parallel": 2}}))
    repo.run("git", "init", "-q")
    repo.dvc("init", "-q")
    repo.dvc("repro")
    repo.run("git", "add", "-A")
    repo.run("git", "commit", "-qm", "square")
    # The cluster's processes run in this environment (the flows importable), like the README's.
    env = {**stage_environment(tmp_path), **prefect_api}
    dask = str(Path(sys.executable).parent / "dask")
    with contextlib.ExitStack() as stack:
        stack.enter_context(running_server(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address",
             f"127.0.0.1:{dashboard}"], f"http://127.0.0.1:{dashboard}/health", tmp_path / "scheduler.log", env))
        workers = stack.enter_context(running_server(
            [dask, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
            f"http://127.0.0.1:{dashboard}/health", tmp_path / "workers.log", env))
        done = subprocess.run([sys.executable, "-m", "flows.sweep", "x=2,3"], cwd=repo.path, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    assert f"on the Dask cluster at {address}" in done.stderr, done.stderr
    worked = (tmp_path / "workers.log").read_text()
    pids = set(re.findall(r"experiment sweep-\w+-\d starts in process (\d+)", worked))
    assert len(pids) == 2 and str(workers.pid) not in pids, worked  # the cluster's two worker processes
    tables = list((repo.path / "results" / "sweeps").glob("*.csv"))
    table = pd.read_csv(tables[0])
    assert sorted(zip(table["x"], table["square"])) == [(2, 4), (3, 9)], table.to_string()
