"""CDD-11 (OneRestore, ECCV 2024) as the ``cdd11`` protocol runs it: its layout found wherever the datasets folder
puts it, every subset paired with ``clear/`` in both splits, a missing subset folder stopping ``prepare`` with one
line naming it, and the paper table's eleven columns with the published rows beside ours."""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pip_model.apps.paper_table import paper_table, published_comparison
from pip_model.data.corpus import PrepareConfig, prepare_corpus
from pip_model.data.datasets import MissingTestSetError, discover
from pip_model.data.datasets.standins import write_standins
from pip_model.tasks import ALL_TASKS
from tests.helpers.pipeline import TINY, Repo, make_pipeline_repo
from tests.helpers.stages import QUIET, ROOT

# The published layout's folders (OneRestore's README) and the task each is, written out by hand.
SUBSET_TASKS = {"low": "lowlight", "haze": "dehaze", "rain": "derain", "snow": "desnow",
                "low_haze": "lowlight_dehaze", "low_rain": "lowlight_derain", "low_snow": "lowlight_desnow",
                "haze_rain": "derain_dehaze", "haze_snow": "desnow_dehaze", "low_haze_rain": "lowlight_derain_dehaze",
                "low_haze_snow": "lowlight_desnow_dehaze"}
HEADINGS = ["L", "H", "R", "S", "L+H", "L+R", "L+S", "H+R", "H+S", "L+H+R", "L+H+S"]
TEST_SETS = [f"CDD-11 {subset}" for subset in SUBSET_TASKS]


def expected_pairs(count: int) -> Counter:
    return Counter({**{(task, "train", ""): count for task in SUBSET_TASKS.values()},
                    **{(task, "test", f"CDD-11 {subset}"): count for subset, task in SUBSET_TASKS.items()}})


@pytest.fixture(scope="module")
def cdd11(tmp_path_factory) -> Path:
    """Stand-ins of CDD-11 (two clean images per split, each under all eleven subsets) in ``ROOT/CDD-11``."""
    root = tmp_path_factory.mktemp("cdd11")
    write_standins(root, count=2, size=24, layout="cdd11")
    return root


def test_every_subset_pairs_with_its_clear_image_in_both_splits(cdd11):
    found = discover(cdd11)
    assert found.skipped == []
    assert Counter((p.task, p.split, p.test_set) for p in found.pairs) == expected_pairs(2)
    for pair in found.pairs:  # each degraded image with the clean image of its own name, in its own split
        assert pair.clean.name == pair.degraded.name and pair.clean.parent.name == "clear"
        assert pair.clean.parent.parent == pair.degraded.parent.parent
        assert pair.degraded.parent.parent.name == pair.split
        assert SUBSET_TASKS[pair.degraded.parent.name] == pair.task
    # The clean training images join the clean images (for the sensor); the clean test images only pair.
    assert Counter((c.dataset, c.split, c.test_set) for c in found.clean) == {("CDD-11", "train", ""): 2}
    assert found.test_sets() == set(TEST_SETS)
    assert "CDD-11 (desnow_dehaze, test) as CDD-11 haze_snow: 2 pairs" in found.summary()


@pytest.mark.parametrize("name", ["CDD_11", "cdd11", "CDD-11"])
def test_the_datasets_folder_may_hold_cdd11_or_be_it(cdd11, tmp_path, name):
    shutil.copytree(cdd11 / "CDD-11", tmp_path / "datasets" / "nested" / name)
    inside = discover(tmp_path / "datasets")
    itself = discover(tmp_path / "datasets" / "nested" / name)  # the folder holding train/ and test/
    for found in (inside, itself):
        assert Counter((p.task, p.split, p.test_set) for p in found.pairs) == expected_pairs(2)


def test_onerestores_split_folders_cdd11_train_and_cdd11_test(cdd11, tmp_path):
    """OneRestore's training commands read ./data/CDD-11_train and ./data/CDD-11_test, each holding clear/ itself."""
    for split in ("train", "test"):
        shutil.copytree(cdd11 / "CDD-11" / split, tmp_path / "data" / f"CDD-11_{split}")
    found = discover(tmp_path / "data")
    assert Counter((p.task, p.split, p.test_set) for p in found.pairs) == expected_pairs(2)


@pytest.mark.parametrize("omitted", ["test/snow", "train/low_haze"])
def test_a_missing_subset_folder_stops_prepare_naming_it(tmp_path, omitted):
    write_standins(tmp_path / "datasets", count=1, size=24, layout="cdd11", omit={omitted})
    config = PrepareConfig(datasets_root=str(tmp_path / "datasets"), min_side=16, require_test_sets=tuple(TEST_SETS))
    with pytest.raises(MissingTestSetError) as raised:
        prepare_corpus(config, seed=0, out_dir=tmp_path / "out", **QUIET)
    message = str(raised.value)
    assert "\n" not in message and message.startswith("prepare.require_test_sets: ")
    assert str(tmp_path / "datasets" / "CDD-11" / omitted) in message  # the folder, where it was looked for
    if omitted.startswith("test/"):
        assert "CDD-11 snow not found under prepare.datasets_root" in message
        assert "CDD-11 low," not in message  # only the missing set is named
    else:
        assert "CDD-11 is incomplete" in message
    assert not (tmp_path / "out" / "manifest.csv").exists()  # stopped before any image was read


def test_without_any_cdd11_folder_every_subset_is_named_with_the_folders_looked_for(tmp_path):
    (tmp_path / "datasets").mkdir()
    config = PrepareConfig(datasets_root=str(tmp_path / "datasets"), require_test_sets=tuple(TEST_SETS))
    with pytest.raises(MissingTestSetError) as raised:
        prepare_corpus(config, seed=0, out_dir=tmp_path / "out", **QUIET)
    message = str(raised.value)
    assert message.startswith(f"prepare.require_test_sets: {', '.join(TEST_SETS)} not found")
    assert "CDD-11, CDD_11 or cdd11" in message and "\n" not in message


def test_the_paper_table_fills_eleven_columns_and_their_average():
    psnr = [20.0 + k for k in range(11)]
    metrics = {"ours": {f"{task}@CDD-11 {subset}": {"psnr": value, "ssim": 0.5 + k / 100}
                        for k, ((subset, task), value) in enumerate(zip(SUBSET_TASKS.items(), psnr))}}
    metrics["ours"]["derain@Rain100L"] = {"psnr": 40.0, "ssim": 0.99}  # another test set: a column of its own
    table = paper_table(metrics, "cdd11")
    assert list(table.columns) == [*HEADINGS, "average", "printed average", "source", "note", "Rain100L"]
    assert table.loc["ours", "L"] == "20.00/0.5000" and table.loc["ours", "L+H+S"] == "30.00/0.6000"
    assert table.loc["ours", "average"] == "25.00/0.5500"  # (20 + ... + 30) / 11, (0.50 + ... + 0.60) / 11
    assert table.loc["ours", "note"] == "" and table.loc["ours", "Rain100L"] == "40.00/0.9900"
    # OneRestore's table (its xlsx), to four SSIM digits, and its README's averages.
    assert table.loc["PromptIR", "L"] == "26.32/0.8054" and table.loc["PromptIR", "L+H+S"] == "23.33/0.7468"
    assert table.loc["PromptIR", "printed average"] == "25.90/0.8499"
    assert table.loc["OneRestore (visual)", "H"] == "32.52/0.9895"
    assert table.loc["OneRestore\u2020 (text)", "printed average"] == "28.72/0.8821"
    assert table.loc["Input", "L"] == "12.00/0.3685"
    assert "github.com/gy65896/OneRestore" in table.loc["PromptIR", "source"]
    # Rows whose source prints the average alone.
    for method, average in (("MoCE-IR-S", "29.05"), ("MIRAGE-S", "29.33"), ("BioIR", "29.52"),
                            ("DCPT-NAFNet", "30.66")):
        assert table.loc[method, "printed average"] == f"{average}/-" and table.loc[method, "L"] == "-"
        assert table.loc[method, "average"] == "-" and "average alone" in table.loc[method, "note"]
    # A subset without a result is named, and the average is then not comparable.
    del metrics["ours"]["desnow@CDD-11 snow"]
    assert "no result on S" in paper_table(metrics, "cdd11").loc["ours", "note"]


def test_a_released_promptir_is_compared_with_onerestores_promptir_row():
    metrics = {"promptir": {f"{task}@CDD-11 {subset}": {"psnr": 25.0, "ssim": 0.8}
                            for subset, task in SUBSET_TASKS.items()}}
    comparison = published_comparison(metrics, "cdd11", "promptir")
    assert list(comparison.columns) == [*HEADINGS, "average"]
    assert comparison.loc["PromptIR (published)", "L"] == "26.32/0.8054"
    assert comparison.loc["difference", "L"] == "-1.32/-0.0054"


def test_the_protocol_trains_and_tests_the_eleven_subsets():
    protocol = yaml.safe_load((ROOT / "params.yaml").read_text())["protocols"]["cdd11"]
    tasks = list(SUBSET_TASKS.values())
    assert sorted(protocol["train.tasks"]) == sorted(tasks) and set(tasks) <= set(ALL_TASKS)
    for key in ("degrade.tasks", "degrade.real_only", "sensor.tasks"):
        assert protocol[key] == protocol["train.tasks"], key
    assert protocol["train.real_pairs"] == dict.fromkeys(protocol["train.tasks"], 1.0)
    assert protocol["prepare.require_test_sets"] == TEST_SETS
    PrepareConfig(require_test_sets=tuple(TEST_SETS))  # names the dataset families know
    # MoCE-IR's recipe (src/train.py, src/options.py, the README's CDD11 command).
    assert (protocol["train.lr"], protocol["train.batch_size"], protocol["train.epochs"]) == (2e-4, 32, 120)
    assert (protocol["train.warmup_epochs"], protocol["train.cosine_epochs"], protocol["train.loss"]) == (15, 150, "l1")
    assert protocol["evaluate.metrics"] == "onerestore" and protocol["evaluate.crop_multiple"] == 0
    assert protocol["report.protocol"] == "cdd11"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    return make_pipeline_repo(tmp_path_factory.mktemp("cdd11_pipeline") / "repo", TINY)


@pytest.mark.integration
def test_the_cdd11_protocol_runs_end_to_end_on_stand_ins(repo, prefect_api):
    """`python -m flows.paper cdd11 DATASETS` on CDD-11 stand-ins with a tiny CPU budget: one DVC experiment that
    trains on the eleven subsets' real pairs, scores each on its own test set and prints the paper's table with the
    published rows; without a subset folder it stops at prepare, before any training."""
    datasets = repo.path.parent / "datasets"
    write_standins(datasets, count=1, size=40, layout="cdd11")
    tiny = ["base.device=cpu", "prepare.min_side=32", "train_run.models=[pip_restormer_tiny,restormer_tiny]",
            "train.steps=2", "train.batch_size=2", "train.patch=32", "train_run.accumulate=1",
            "train_run.compile=false", "train_run.workers=0", "train_run.checkpoint_every=100",
            "train_run.log_every=1", "train_run.sample_every=2", "sensor.steps=2"]
    done = repo.run(sys.executable, "-m", "flows.paper", "cdd11", str(datasets / "CDD-11"), *tiny, env=prefect_api)
    said = done.stdout + done.stderr
    assert "PSNR/SSIM in the paper's layout" in said
    for method in ("PromptIR", "OneRestore (visual)", "MoCE-IR-S", "BioIR", "DCPT-NAFNet"):
        assert method in said, method  # the published rows are printed
    assert "OneRestore's cal_psnr_ssim.py" in said  # how the published figures were scored

    metrics = json.loads((repo.path / "results" / "metrics.json").read_text())
    keys = {f"{task}@CDD-11 {subset}" for subset, task in SUBSET_TASKS.items()}
    assert set(metrics["pip_restormer_tiny"]) == keys and set(metrics["input"]) == keys
    scored = pd.read_csv(repo.path / "results" / "per_image.csv")
    assert ((scored["height"] == 40) & (scored["width"] == 40)).all()  # whole images, as OneRestore scores them
    pairs = pd.read_csv(repo.path / "data" / "prepared" / "pairs.csv")
    assert Counter(pairs["split"]) == {"train": 11, "test": 11}

    table = pd.read_csv(repo.path / "reports" / "paper_table.csv", index_col=0, keep_default_na=False)
    assert list(table.columns[:15]) == [*HEADINGS, "average", "printed average", "source", "note"]
    ours = table.loc["pip_restormer_tiny"]
    values = [metrics["pip_restormer_tiny"][f"{task}@CDD-11 {subset}"]["psnr"]
              for subset, task in SUBSET_TASKS.items()]
    assert all(cell != "-" for cell in ours[HEADINGS])
    assert float(ours["average"].split("/")[0]) == pytest.approx(np.mean(values), abs=0.006)
    assert table.loc["PromptIR", "L"] == "26.32/0.8054" and ours["source"] == "this run"
    assert "Training: 2 steps x batch 2 = 4 patches of 32 px" in said

    # Without test/snow the protocol stops at prepare, naming the folder, before any training.
    shutil.rmtree(datasets / "CDD-11" / "test" / "snow")
    stopped = repo.run(sys.executable, "-m", "flows.paper", "cdd11", str(datasets / "CDD-11"), *tiny,
                       env=prefect_api, check=False)
    said = stopped.stdout + stopped.stderr
    assert stopped.returncode != 0 and "prepare.require_test_sets: CDD-11 snow not found" in said, said
    assert str(datasets / "CDD-11" / "test" / "snow") in said
    assert "Running stage 'train" not in said
