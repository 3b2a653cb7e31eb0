"""The whole pipeline end to end on a tiny config: real `dvc repro` in a git repository, DVC
experiments, and the Prefect flows and deployments against a real `prefect server` on loopback.

One repository serves the whole module, so each check reuses the first `dvc repro` instead of
running the pipeline again."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from pip_model.image_files import read_image
from pip_model.tasks import PAPER_CLASSES, parse_task
from tests.helpers.pipeline import ALWAYS_RUN, TINY, Repo, make_pipeline_repo, stages_run
from tests.helpers.servers import stop_group
from tests.helpers.stages import ROOT

STAGES = ["prepare", "degrade", "train@pip_restormer_tiny", "train@restormer_tiny", "train@promptir_tiny",
          "train_sensor", "score_sensor", "evaluate", "report"]


# The default pipeline's tasks and the prompt classes its models are built with: the paper's five and snow.
DEFAULT_TASKS = tuple(yaml.safe_load((ROOT / "params.yaml").read_text())["degrade"]["tasks"])
DEFAULT_COMPOSITES = {task for task in DEFAULT_TASKS if parse_task(task).is_composite}
DEFAULT_CLASSES = (*PAPER_CLASSES, "snow")


def _ran(output: str) -> list[str]:
    return [stage for stage in STAGES if stage in stages_run(output)]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    repo = make_pipeline_repo(tmp_path_factory.mktemp("pipeline") / "repo", TINY)
    output = repo.dvc("repro").stdout
    assert _ran(output) == STAGES, output
    return repo


@pytest.mark.integration
def test_repro_from_clean_runs_every_stage(repo):
    metrics = json.loads((repo.path / "results" / "metrics.json").read_text())
    assert set(metrics) == {"input", "classical", "pip_restormer_tiny", "restormer_tiny", "promptir_tiny",
                            "pip_restormer_tiny_blind"}
    assert set(json.loads((repo.path / "results" / "sensor.json").read_text())) == {"accuracy", "composites",
                                                                                    "clean_kept"}
    detail = json.loads((repo.path / "results" / "sensor_detail.json").read_text())
    assert set(detail) == {"accuracy", "per_class", "composites", "clean_kept", "confusion", "classes"}
    assert set(detail["composites"]) == DEFAULT_COMPOSITES and tuple(detail["classes"]) == DEFAULT_CLASSES
    decisions = pd.read_csv(repo.path / "results" / "sensor_decisions.csv")
    benchmark_pairs = pd.read_csv(repo.path / "data" / "benchmark" / "manifest.csv")
    assert len(decisions) == len(benchmark_pairs) + benchmark_pairs["clean_path"].nunique()
    assert list(decisions.columns) == ["task", "id", "left_alone", "found", *DEFAULT_CLASSES]
    for name in metrics:  # the summary `dvc metrics show` prints: each model's mean over the tasks
        summary = json.loads((repo.path / "results" / "mean" / f"{name}.json").read_text())
        assert summary["psnr"] == pytest.approx(np.mean([v["psnr"] for v in metrics[name].values()]), abs=0.006)
    assert set(metrics["pip_restormer_tiny"]) == set(DEFAULT_TASKS)
    # The first PIP model under every fixed prompt (its own classes: it trained on snow too), on every task.
    prompts = json.loads((repo.path / "results" / "prompts.json").read_text())
    assert set(prompts) == {f"pip_restormer_tiny@{name}" for name in (*DEFAULT_CLASSES, "uniform")}
    assert all(set(per_task) == set(DEFAULT_TASKS) for per_task in prompts.values())
    benchmark = pd.read_csv(repo.path / "data" / "benchmark" / "manifest.csv")
    assert set(benchmark["task"]) == set(DEFAULT_TASKS)
    assert all((repo.path / "data" / "benchmark" / path).is_file() for path in benchmark["degraded_path"])
    assert len(pd.read_csv(repo.path / "data" / "train_pairs" / "manifest.csv")) == 2 * len(DEFAULT_TASKS)
    page = (repo.path / "reports" / "index.html").read_text()
    for figure in ("psnr_by_task.png", "training_curves.png", "examples.png", "prompt_swap.png", "rivals.png"):
        assert figure in page and (repo.path / "reports" / figure).stat().st_size > 1000
    assert "What a wrong or blended prompt costs" in page and "Composite degradations" in page
    assert ">desnow<" in page and ">desnow_dehaze<" in page  # the snow family and its composite, in the table
    assert "pip_restormer_tiny − restormer_tiny" in page and "pip_restormer_tiny − promptir_tiny" in page
    assert page.count("sensor beats input and best single") == 1
    # Provenance first: the commit, the data, and what differs from the library defaults (TINY's settings).
    commit = repo.run("git", "rev-parse", "HEAD").stdout.strip()
    header = page[page.index("<div class='provenance'>"):page.index("</div>")]
    assert commit[:12] in header and "source as committed" in header and f"{len(benchmark_pairs)} pairs" in header
    assert "bundled photographs" in header and "train.steps" in header and "sensor.dead_leaves" in header
    # The sensor's section, and the committed seeds results flagged: they carry no record of what made them.
    assert "The degradation sensor" in page and (repo.path / "reports" / "sensor_confusion.png").is_file()
    assert "<b>Stale:</b> These figures carry no record of the commit" in page


@pytest.mark.integration
def test_train_runs_show_the_data_they_saw(repo):
    """MLflow's Dataset column: each train run has the prepared images as its training input and the benchmark as
    its evaluation input, each with the DVC hash that dvc.lock records as its digest."""
    from mlflow import MlflowClient

    lock = yaml.safe_load((repo.path / "dvc.lock").read_text())["stages"]
    hashes = {out["path"]: out["md5"] for stage in lock.values() for out in stage.get("outs", [])}
    client = MlflowClient(tracking_uri=repo.env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("pip-universal").experiment_id], "tags.stage = 'train'")
    assert {run.data.tags["model"] for run in runs} == {"pip_restormer_tiny", "restormer_tiny", "promptir_tiny"}
    runs += client.search_runs([client.get_experiment_by_name("pip-universal").experiment_id],
                               "tags.stage = 'train_sensor'")
    assert len(runs) == 4 and all(run.data.tags["git.dirty"] == "False" for run in runs)  # a clean checkout
    for run in runs:
        seen = {(entry.dataset.name, entry.dataset.digest, {t.key: t.value for t in entry.tags}["mlflow.data.context"])
                for entry in run.inputs.dataset_inputs}
        assert seen == {("data/prepared", hashes["data/prepared"], "training"),
                        ("data/benchmark", hashes["data/benchmark"], "evaluation")}, seen


@pytest.mark.integration
def test_runs_say_what_they_are_and_one_execution_shares_a_tag(repo):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=repo.env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("pip-universal").experiment_id])
    names = {run.data.tags["mlflow.runName"] for run in runs}
    assert {"train-pip_restormer_tiny (seed=0)", "train-restormer_tiny (seed=0)", "evaluate-input (seed=0)"} <= names
    assert len({run.data.tags["pipeline"] for run in runs}) == 1  # the runs of the one `dvc repro` so far


@pytest.mark.integration
def test_second_repro_only_scans(repo):
    # Only `scan` and `models` run (always, in seconds): the datasets folder and every model's code are unchanged,
    # so nothing after them is stale. The bound is loose for a loaded 2-core machine; any training takes minutes.
    started = time.monotonic()
    output = repo.dvc("repro").stdout
    assert time.monotonic() - started < 45
    assert stages_run(output) == [] and "Running stage 'scan'" in output and "didn't change, skipping" in output
    assert "Running stage 'models'" in output


@pytest.mark.integration
def test_metrics_show_prints_a_table_that_fits_a_terminal_and_the_detail_on_request(repo):
    """`dvc metrics show`: one row per model (mean PSNR, SSIM) and the sensor's, under 100 columns; the per-task
    detail is `dvc metrics show results/metrics.json`."""
    shown = repo.dvc("metrics", "show").stdout
    lines = shown.strip().splitlines()
    assert max(len(line) for line in lines) < 100, shown
    assert lines[0].split() == ["Path", "accuracy", "clean_kept", "composites", "psnr", "ssim"], shown
    rows = {line.split()[0] for line in lines[1:]}
    assert {f"results/mean/{name}.json" for name in ("input", "classical", "pip_restormer_tiny",
                                                         "pip_restormer_tiny_blind", "restormer_tiny")} <= rows
    detail = repo.dvc("metrics", "show", "results/metrics.json").stdout
    for column in ("pip_restormer_tiny.derain.psnr", "classical.dehaze.ssim", "input.lowlight.psnr"):
        assert column in detail


@pytest.mark.integration
@pytest.mark.parametrize(("section", "change", "expected"), [
    ("degrade", {"crops_per_image": 2}, ["degrade"]),
    ("train", {"lr": 0.001}, ["train@pip_restormer_tiny", "train@restormer_tiny", "train@promptir_tiny"]),
    ("sensor", {"lr": 0.001}, ["train_sensor"]),
    ("evaluate", {"tile": 128}, ["evaluate"]),
])
def test_a_param_change_reruns_only_the_stages_that_read_it(repo, section, change, expected):
    # A dry run lists the stages whose own params changed; the stages after them rerun when their inputs change,
    # which the flow test below shows for real.
    repo.set_params({section: change})
    try:
        output = repo.dvc("repro", "--dry").stdout
        assert _ran(output) == expected, output
    finally:
        repo.run("git", "checkout", "params.yaml")


RUN_SETTINGS = {"workers": 1, "threads": 1, "image_cache": 3, "log_every": 7, "checkpoint_every": 9,
                "sample_every": 11, "compile": True, "sensor_log_every": 5}
TRAINING = ["train@pip_restormer_tiny", "train@restormer_tiny", "train@promptir_tiny", "train_sensor"]
SCORING = ["score_sensor", "evaluate", "report"]  # the stages that load any network


@pytest.mark.integration
@pytest.mark.parametrize(("edit", "stale"), [
    ("pip_model/apps/report.py", ["report"]),
    ("pip_model/apps/restore.py", []),
    ("flows/pipeline.py", []),
    ("README.md", []),
    ("bench/tiled.py", []),
    ("pip_model/engine/sensor_training.py", ["train_sensor"]),
    ("pip_model/evaluation/sensor_report.py", ["score_sensor", "report"]),
    ("pip_model/evaluation/metrics.py", ["score_sensor", "evaluate", "report"]),
    ("pip_model/engine/loop.py", TRAINING),
    # What no trained model is made of: MLflow logging, the sample grids, the registry's other entries, a new network.
    ("pip_model/tracking/tracker.py", SCORING),
    ("pip_model/engine/previews.py", []),
    ("pip_model/networks/registry.py", SCORING),
    ("pip_model/networks/unet_of_mine.py", SCORING),
    # A model's own code: the models built with it retrain (Restormer's module uses PIP's and PromptIR's), and
    # no other.
    ("pip_model/networks/pip.py", ["train@pip_restormer_tiny", "train@restormer_tiny", "train@promptir_tiny",
                                   *SCORING]),
    ("pip_model/networks/sensor.py", ["train_sensor", *SCORING]),
    ({"train_run": RUN_SETTINGS}, []),
    ({"train_run": {"models": ["pip_restormer_tiny", "restormer_tiny", "promptir_tiny", "nafnet_tiny"]}},
     ["train@nafnet_tiny"]),
    ({"base": {"device": "cpu"}}, TRAINING + ["evaluate"]),
])
def test_an_edit_leaves_stale_exactly_the_stages_whose_result_it_can_change(repo, edit, stale):
    """After `dvc repro`, `dvc status` names as stale only the stages whose result the edit can change: a comment
    in the report's code stales the report, one in `prompt-restore`, a flow, the README or a benchmark nothing; the
    run settings (`train_run`) nothing; a new model only its own train stage (the others stay up to date); an edit
    of a model's code its own train stages (through the `models` stage's fingerprints), of tracking, sample grids,
    the registry or a new network module none; the device every stage that computes on it, but not `degrade`,
    which is seeded and runs on the CPU."""
    if isinstance(edit, str):
        path = repo.path / edit
        path.write_text((path.read_text() if path.exists() else "") + "\n# an edit that changes no result\n")
    else:
        repo.set_params(edit)
    try:
        repo.dvc("repro", "models")  # the fingerprints a train stage depends on, as any `dvc repro` writes first
        status = json.loads(repo.dvc("status", "--json").stdout or "{}")
        assert sorted(name for name in status if name not in ALWAYS_RUN) == sorted(stale), status
    finally:
        if isinstance(edit, str) and edit.endswith("unet_of_mine.py"):
            (repo.path / edit).unlink()
        else:
            repo.run("git", "checkout", "--", edit if isinstance(edit, str) else "params.yaml")
        repo.dvc("repro", "models")


@pytest.mark.integration
def test_dvc_plots_draw_every_models_training_curve(repo):
    shown = json.loads(repo.dvc("plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown.get("errors")
    for model in ("pip_restormer_tiny", "restormer_tiny", "promptir_tiny"):
        assert f"dvc.yaml::results/curves/{model}.csv" in shown["data"]  # the train-PSNR plot of each model


def test_a_sweep_runs_one_experiment_per_gpu_each_bound_to_its_own():
    from flows.sweep import concurrent_slots

    assert concurrent_slots(3, gpus=0) == [{}, {}, {}]  # a CPU machine: as many as flows.sweep_parallel
    assert concurrent_slots(3, gpus=1) == [{"CUDA_VISIBLE_DEVICES": "0"}]
    assert concurrent_slots(2, gpus=4) == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]


def test_a_sweep_runs_its_points_where_params_yaml_says():
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.common import FlowsConfig
    from flows.sweep import points_runner

    assert isinstance(points_runner(FlowsConfig(), 2), ThreadPoolTaskRunner)
    assert points_runner(FlowsConfig(sweep_runner="dask"), 3).cluster_kwargs["n_workers"] == 3  # a local cluster
    assert points_runner(FlowsConfig(sweep_runner="dask", dask_address="tcp://h:8786"), 2).address == "tcp://h:8786"
    with pytest.raises(ValueError, match="set sweep_runner: dask to use that cluster"):
        FlowsConfig(dask_address="tcp://h:8786")  # an address that would be ignored


def test_sweep_overrides_keep_their_types_through_dvc(tmp_path):
    """What `dvc exp run -S` makes of the flows' overrides: a sweep id of digits stays a string tag, and lists
    and mappings keep their structure."""
    from dvc.utils.hydra import apply_overrides

    from flows.common import override_arguments

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"train": {"lr": 0.002, "models": ["x"], "real_pairs": {}},
                                      "tracking": {"tags": {}}}))
    arguments = override_arguments({"train.lr": 0.001, "+tracking.tags.sweep": "35498153",
                                    "+tracking.tags.note": "plain words", "train.models": ["a", "b"],
                                    "train.real_pairs": {"derain": 1.0, "dehaze": 0.5}})
    apply_overrides(params, arguments[1::2])
    applied = yaml.safe_load(params.read_text())
    assert applied["train"] == {"lr": 0.001, "models": ["a", "b"], "real_pairs": {"derain": 1.0, "dehaze": 0.5}}
    assert applied["tracking"]["tags"] == {"sweep": "35498153", "note": "plain words"}


@pytest.mark.integration
def test_the_prefect_server_lets_in_only_who_has_the_login(prefect_api):
    """Without the login, or with a wrong one, the API refuses (HTTP 401) and so does the CLI; with it (every
    other Prefect test here), flows run."""
    for header in ({}, {"Authorization": "Basic " + base64.b64encode(b"team:wrong").decode()}):
        request = urllib.request.Request(f"{prefect_api['PREFECT_API_URL']}/flows/filter", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json", **header})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
    def deployments(login: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "prefect", "deployment", "ls"], capture_output=True, text=True,
                              env={**os.environ, **prefect_api, "PREFECT_API_AUTH_STRING": login})

    outsider = deployments("team:wrong")
    assert outsider.returncode != 0 and "401" in outsider.stdout + outsider.stderr
    assert deployments(prefect_api["PREFECT_API_AUTH_STRING"]).returncode == 0


@pytest.mark.integration
def test_pipeline_flow_applies_overrides_reruns_what_they_change_and_publishes(repo, prefect_api):
    # The README's `python -m flows.pipeline KEY=VALUE`: the override lands in params.yaml, DVC reruns the stage
    # that reads it and the one whose input that changed (the report); the others have nothing to do.
    done = repo.run(sys.executable, "-m", "flows.pipeline", "evaluate.classical=false", env=prefect_api)
    logs = done.stdout + done.stderr
    assert logs.count("up to date, nothing to do") == 5, logs
    assert "evaluate: ran" in logs and "report: ran" in logs, logs
    assert yaml.safe_load((repo.path / "params.yaml").read_text())["evaluate"]["classical"] is False
    assert "classical" not in json.loads((repo.path / "results" / "metrics.json").read_text())
    repo.run("git", "commit", "-qam", "no classical baselines")
    table = repo.run(sys.executable, "-m", "prefect", "artifact", "inspect", "per-task-metrics",
                     env={**prefect_api, "COLUMNS": "400"}).stdout
    assert "pip_restormer_tiny" in table and "psnr" in table and "derain" in table
    links = repo.run(sys.executable, "-m", "prefect", "artifact", "inspect", "mlflow-runs",
                     env={**prefect_api, "COLUMNS": "400"}).stdout
    assert "train-pip_restormer_tiny" in links and "#/experiments/" in links


def _trigger(repo: Repo, prefect_api: dict[str, str], deployment: str, **parameters) -> None:
    """`prefect deployment run` with JSON parameters, waiting for the run to complete."""
    arguments = [item for key, value in parameters.items() for item in ("-p", f"{key}={json.dumps(value)}")]
    run = repo.run(sys.executable, "-m", "prefect", "deployment", "run", deployment, *arguments, "--watch",
                   "--watch-timeout", "600", env=prefect_api)
    assert "Completed" in run.stdout, run.stdout + run.stderr


@pytest.mark.integration
def test_deployments_served_and_triggered_on_a_real_server(repo, prefect_api, tmp_path):
    """`python -m flows.deploy` serves `pipeline/nightly` on params.yaml's cron and `sweep/on-demand`; a triggered
    run of the pipeline completes in the serving process."""
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        serving = subprocess.Popen([sys.executable, "-m", "flows.deploy"], cwd=repo.path,
                                   env={**repo.env, **prefect_api}, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "sweep/on-demand" not in repo.run(sys.executable, "-m", "prefect", "deployment", "ls",
                                                env={**prefect_api, "COLUMNS": "400"}).stdout:
            assert serving.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "deployments were not created:\n" + log.read_text()
            time.sleep(1)
        schedule = repo.run(sys.executable, "-m", "prefect", "deployment", "inspect", "pipeline/nightly",
                            env=prefect_api).stdout
        assert "17 3 * * 1" in schedule
        _trigger(repo, prefect_api, "pipeline/nightly", stages=["report"])  # up to date: proves the served run
    finally:
        stop_group(serving)
    assert "Beginning flow run" in log.read_text()


@pytest.mark.integration
@pytest.mark.scale
def test_a_worker_runs_the_pool_deployments_from_source_and_the_sweep_on_dask(repo, prefect_api, tmp_path):
    """The production way: a process work pool, the deployments registered on it from source
    (`python -m flows.deploy --pool`), and a real `prefect worker` started elsewhere that runs them in its copy of
    the source. With `flows.sweep_runner: dask`, the sweep's points run at once in the worker processes of a local
    Dask cluster; their experiments are gathered from `dvc exp show` into one table, their MLflow runs tagged."""
    repo.run(sys.executable, "-m", "prefect", "work-pool", "create", "test-pool", "--type", "process",
             env=prefect_api)
    repo.set_params({"flows": {"sweep_runner": "dask"}})
    repo.run("git", "commit", "-qam", "sweeps on Dask")
    deployed = repo.run(sys.executable, "-m", "flows.deploy", "--pool", "test-pool", env=prefect_api)
    assert "on the work pool test-pool" in deployed.stdout, deployed.stdout + deployed.stderr
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", "test-pool"],
                                  cwd=tmp_path, env={**repo.env, **prefect_api}, stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _trigger(repo, prefect_api, "pipeline/nightly", stages=["report"])
        _trigger(repo, prefect_api, "sweep/on-demand", grid={"train.lr": [0.001, 0.003]})
    finally:
        stop_group(worker)
        repo.run("git", "revert", "--no-edit", "HEAD")
    worked = log.read_text()
    assert "Executing deployment step: set_working_directory" in worked and "Finished in state Completed" in worked
    assert "no DVC remote configured: nothing to pull" in worked  # a pool's pipeline pulls first, where it can
    # The points ran in two processes (threads would share one), Dask's workers, and both started before either
    # finished.
    pids = set(re.findall(r"experiment sweep-\w+-\d starts in process (\d+)", worked))
    assert len(pids) == 2 and "on a local Dask cluster" in worked and "distributed.nanny" in worked, worked
    assert worked.rindex("starts in process") < worked.index(" done: {"), worked

    tables = list((repo.path / "results" / "sweeps").glob("*.csv"))
    assert len(tables) == 1, worked
    table = pd.read_csv(tables[0])
    assert len(table) == 2 and sorted(table["train.lr"]) == [0.001, 0.003]
    assert table["pip_restormer_tiny.derain.psnr"].between(0, 100).all()
    sweep_id = tables[0].stem
    with sqlite3.connect(repo.path / "mlflow.db") as store:
        tagged = store.execute("select count(distinct run_uuid) from tags where key='sweep' and value=?",
                               (sweep_id,)).fetchone()[0]
    assert tagged >= 2 * 2  # two trained models per experiment
    with sqlite3.connect(repo.path / "mlflow.db") as store:
        names = [row[0] for row in store.execute(
            "select name from runs where run_uuid in (select run_uuid from tags where key='sweep' and value=?)",
            (sweep_id,))]
    # Each run's name says which grid point it is.
    assert {name for name in names if name.startswith("train-pip_restormer_tiny")} == {
        "train-pip_restormer_tiny (seed=0, train.lr=0.001)", "train-pip_restormer_tiny (seed=0, train.lr=0.003)"}


@pytest.mark.integration
def test_the_seeds_flow_summarises_its_seeds_into_the_report(repo, prefect_api):
    """`python -m flows.seeds 0 1`: one DVC experiment per seed (both models each), summarised under results/seeds;
    the next `dvc repro` reruns only the report, which shows the summary."""
    done = repo.run(sys.executable, "-m", "flows.seeds", "0", "1", env=prefect_api)
    assert "PIP minus its plain backbone" in done.stderr  # Prefect logs the prints there
    summary = pd.read_csv(repo.path / "results" / "seeds" / "summary.csv")
    assert {"pip_restormer_tiny", "restormer_tiny", "input"} <= set(summary["model"]) and (summary["seeds"] == 2).all()
    difference = pd.read_csv(repo.path / "results" / "seeds" / "difference.csv")
    assert set(difference["task"]) == set(DEFAULT_TASKS)
    assert set(difference["rival"]) == {"restormer_tiny", "promptir_tiny"}
    assert _ran(repo.dvc("repro").stdout) == ["report"]
    page = (repo.path / "reports" / "index.html").read_text()
    assert "Over 2 seeds" in page and (repo.path / "reports" / "seeds.png").is_file()
    repo.run("git", "checkout", "results/seeds")  # the later tests run on the committed state
    repo.run("git", "clean", "-fdq", "results/seeds")


@pytest.mark.integration
def test_a_paper_protocol_runs_end_to_end_on_stand_ins(repo, prefect_api):
    """`python -m flows.paper 3task DATASETS` on stand-ins of the paper's datasets with a tiny CPU budget: one DVC
    experiment that trains on the real pairs, benchmarks noise on the clean test sets and rain and haze on their real
    test pairs at full resolution, and prints the paper's table. It runs in the workspace, so it comes last."""
    from pip_model.data.datasets.standins import write_standins

    datasets = repo.path.parent / "datasets"
    write_standins(datasets, count=2, size=40)
    # A training pair that is a test image (OTS and SOTS render the same scenes): it must stay out of training.
    shutil.copy(datasets / "SOTS" / "outdoor" / "gt" / "0001.png", datasets / "OTS" / "original" / "0003.png")
    shutil.copy(datasets / "SOTS" / "outdoor" / "hazy" / "0001_0.8_0.2.jpg",
                datasets / "OTS" / "synthetic" / "part1" / "0003_0.8_0.2.jpg")
    # The stand-ins come without the published lists (tests/test_train_lists.py covers them); two steps of the
    # published schedule, by epoch, in whole batches.
    tiny = ["base.device=cpu", "prepare.min_side=32", "prepare.train_lists={}",
            "train_run.models=[pip_restormer_tiny,restormer_tiny]", "train.steps=2", "train.batch_size=2",
            "train.patch=32", "train_run.accumulate=1", "train_run.compile=false", "train_run.workers=0",
            "train_run.checkpoint_every=100", "train_run.log_every=1", "train_run.sample_every=2",
            "sensor.steps=2"]
    done = repo.run(sys.executable, "-m", "flows.paper", "3task", str(datasets), *tiny, env=prefect_api)
    assert "PSNR/SSIM in the paper's layout" in done.stdout + done.stderr
    for method in ("PIP-Restormer", "PromptIR", "AirNet", "InstructIR-3D", "AdaIR", "MoCE-IR"):
        assert method in done.stdout + done.stderr, method  # every published row is printed
    rejects = pd.read_csv(repo.path / "data" / "prepared" / "rejects.csv")
    copied = rejects[rejects["path"].str.contains("0003")]
    assert len(copied) and copied["reason"].str.contains("same pixels as test image .*SOTS", regex=True).all()
    # Scored as the published test code scores: every image cropped to a multiple of 16, in one pass.
    scored = pd.read_csv(repo.path / "results" / "per_image.csv")
    assert ((scored["height"] % 16 == 0) & (scored["width"] % 16 == 0)).all()

    protocol = ["denoise_15", "denoise_25", "denoise_50", "derain", "dehaze"]
    # Test sets the paper's table lacks get their own keys: Urban100 and Kodak24 for noise, Rain100H for rain.
    others = {f"{task}@{test_set}" for task in protocol[:3] for test_set in ("Urban100", "Kodak24")}
    others.add("derain@Rain100H")
    metrics = json.loads((repo.path / "results" / "metrics.json").read_text())
    keys = list(metrics["pip_restormer_tiny"])
    assert [key for key in keys if "@" not in key] == protocol and set(keys) - set(protocol) == others
    benchmark = pd.read_csv(repo.path / "data" / "benchmark" / "manifest.csv")
    sources = benchmark.groupby("task")["source"].agg(set).to_dict()
    assert sources == {**{task: {"synthetic"} for task in protocol[:3]}, "derain": {"paired"}, "dehaze": {"paired"}}
    # Noise on the whole clean test images (BSD68, Urban100, Kodak24 stand-ins): 3 sets x 2 images, each under its
    # own test set (BSD68 alone is the paper's), full size but for the published crop to a multiple of 16
    # (40 -> 32), the clean side cropped alike.
    noisy = benchmark[benchmark["task"] == "denoise_25"]
    assert Counter(noisy["test_set"]) == {"BSD68": 2, "Urban100": 2, "Kodak24": 2}
    assert all(read_image(repo.path / "data" / "benchmark" / path).size == (32, 32)
               for path in [*noisy["degraded_path"], *noisy["clean_path"]])
    assert {json.loads(params)["noise"] for params in noisy["params"]} == {"published"}

    table = pd.read_csv(repo.path / "reports" / "paper_table.csv", index_col=0)
    assert list(table.columns)[:9] == ["BSD68 s15", "BSD68 s25", "BSD68 s50", "Rain100L", "SOTS", "average",
                                       "printed average", "source", "note"]
    assert set(table.columns[9:-1]) == {f"{test_set} s{sigma}" for test_set in ("Urban100", "Kodak24")
                                        for sigma in (15, 25, 50)} | {"Rain100H"}
    assert table.columns[-1] == "parameters" and table.loc["PIP-Restormer", "parameters"] == "-"
    assert table.loc["pip_restormer_tiny", "parameters"].endswith(" M")
    assert table.loc["PIP-Restormer", "BSD68 s15"] == "34.24/0.936"
    assert table.loc["PIP-Restormer", "average"] == "32.91/0.920"
    assert table.loc["pip_restormer_tiny", "source"] == "this run"
    assert "Training: 2 steps x batch 2 = 4 patches of 32 px" in done.stdout + done.stderr
    psnr, ssim = (float(v) for v in table.loc["pip_restormer_tiny", "Rain100L"].split("/"))
    assert psnr == pytest.approx(metrics["pip_restormer_tiny"]["derain"]["psnr"], abs=0.01) and 0 < ssim <= 1
    assert "paper-3task" in repo.dvc("exp", "show", "--csv").stdout

    # Without SOTS the protocol stops at prepare, naming the set, before any training.
    shutil.rmtree(datasets / "SOTS")
    stopped = repo.run(sys.executable, "-m", "flows.paper", "3task", str(datasets), *tiny, env=prefect_api,
                       check=False)
    said = stopped.stdout + stopped.stderr
    assert stopped.returncode != 0 and "prepare.require_test_sets: SOTS" in said, said
    assert "Running stage 'train" not in said


@pytest.mark.integration
def test_released_checkpoints_are_scored_on_the_protocol_without_training(repo, prefect_api, tmp_path):
    """`python -m flows.paper 3task DATASETS --evaluate-only adair=A moce_ir=M promptir=P`: the protocol's benchmark,
    the released files (the reference weights in each one's Lightning format) scored on it, nothing trained, each row
    printed beside its published one with the difference per column, and the kept outputs at the evaluated size."""
    from pip_model.data.datasets.standins import write_standins
    from tests.helpers.adair_weights import ADAIR_TABLE, adair_state_dict
    from tests.helpers.moce_ir_weights import MOCE_IR_TABLE, moce_ir_state_dict
    from tests.helpers.reference_weights import PROMPTIR_TABLE, lightning_checkpoint, promptir_state_dict, reference_dir

    reference = reference_dir()
    if reference is None or not all((reference / table).is_file() for table in (PROMPTIR_TABLE, ADAIR_TABLE,
                                                                               MOCE_IR_TABLE)):
        pytest.skip("shared/reference/{promptir,adair,moce_ir} are not beside this checkout")
    files = {}
    for name, state in (("adair", adair_state_dict), ("moce_ir", moce_ir_state_dict), ("promptir", promptir_state_dict)):
        files[name] = tmp_path / f"{name}.ckpt"
        torch.save(lightning_checkpoint(state(reference)), files[name])
    datasets = tmp_path / "datasets"
    write_standins(datasets, count=2, size=40)
    models_before = sorted((repo.path / "models").glob("*.pt"))
    done = repo.run(sys.executable, "-m", "flows.paper", "3task", str(datasets), "base.device=cpu",
                    "prepare.min_side=32", "prepare.train_lists={}", "--evaluate-only",
                    *(f"{name}={path}" for name, path in files.items()), env=prefect_api)
    said = done.stdout + done.stderr
    for name, published, row in (("adair", "AdaIR", "34.12/0.935"), ("moce_ir", "MoCE-IR", "34.11/0.932"),
                                 ("promptir", "PromptIR", "33.98/0.933")):
        assert f"{name} beside its published row" in said and f"{published} (published)" in said, said
        assert row in said and f"published {published} checkpoint" in said
        comparison = pd.read_csv(repo.path / "reports" / "evaluate_only" / f"{name}_vs_published.csv", index_col=0)
        assert list(comparison.index) == [f"{name} (this run)", f"{published} (published)", "difference"]
        ours, theirs = (float(comparison.loc[row_name, "Rain100L"].split("/")[0])
                        for row_name in (f"{name} (this run)", f"{published} (published)"))
        assert float(comparison.loc["difference", "Rain100L"].split("/")[0]) == pytest.approx(ours - theirs, abs=0.011)
    # Each kept output is the size it was scored at (never one pixel short, as AdaIR's test.py saves them).
    out = repo.path / "reports" / "evaluate_only"
    per_image = pd.read_csv(out / "per_image.csv", keep_default_na=False)
    index = pd.read_csv(out / "examples" / "index.csv", keep_default_na=False)
    assert set(index["model"]) >= set(files)
    for row in index.itertuples():
        scored = per_image[(per_image["model"] == row.model) & (per_image["id"] == row.id)].iloc[0]
        assert read_image(out / "examples" / row.restored).rgb.shape[:2] == (scored["height"], scored["width"])
    assert "Running stage 'train" not in said and sorted((repo.path / "models").glob("*.pt")) == models_before


@pytest.mark.integration
def test_an_external_denoiser_is_scored_on_the_test_sets_present(repo, prefect_api, tmp_path, monkeypatch):
    """`python -m flows.paper 3task DATASETS --evaluate-only my_denoiser=weights.pt` with only PromptIR's
    `test/denoise/bsd68` present: a plug-in's non-blind denoiser (registered from a module beside params.yaml) is
    scored on the three BSD68 columns alone, the experts' row beside it, and the missing sets are named."""
    from pip_model.data.datasets.standins import write_standins

    example = ROOT / "examples" / "my_backbone" / "src"
    monkeypatch.syspath_prepend(str(example))
    from my_backbone.models import SigmaDenoiser

    weights = tmp_path / "weights.pt"
    torch.save({"state_dict": SigmaDenoiser().state_dict()}, weights)
    datasets = tmp_path / "datasets"
    write_standins(datasets, count=2, size=40, layout="promptir")
    shutil.rmtree(datasets / "Train")
    for other in ("derain", "dehaze"):
        shutil.rmtree(datasets / "test" / other)
    shutil.rmtree(datasets / "test" / "denoise" / "urban100")
    shutil.copytree(example / "my_backbone", repo.path / "my_backbone")
    repo.set_params({"registry": {"plugins": ["my_backbone.models:all_models"]}})
    try:
        done = repo.run(sys.executable, "-m", "flows.paper", "3task", str(datasets), "base.device=cpu",
                        "prepare.min_side=32", "--evaluate-only", f"my_denoiser={weights}", env=prefect_api)
    finally:
        repo.run("git", "checkout", "params.yaml")
        shutil.rmtree(repo.path / "my_backbone")
    said = done.stdout + done.stderr
    out = repo.path / "reports" / "evaluate_only"
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(metrics["my_denoiser"]) == sorted(metrics["experts"]) == ["denoise_15", "denoise_25", "denoise_50"]
    assert sorted(metrics["input"]) == ["denoise_15", "denoise_25", "denoise_50"]
    table = pd.read_csv(out / "paper_table.csv", index_col=0)
    assert table.loc["my_denoiser", "Rain100L"] == "-" and table.loc["my_denoiser", "BSD68 s25"] != "-"
    assert table.loc["experts", "parameters"] == "0.012 M"
    assert "Missing test sets, not scored: Rain100L, SOTS" in said, said
    assert "Noise of the denoising columns: published" in said
    assert "Running stage 'train" not in said
