"""A paper protocol's test sets as the paper's tables name them: found in PIP's and PromptIR's trees, each scored on
its own (BSD68 alone in the BSD68 columns, Urban100 in columns of its own outside the average), required before any
training, and OTS paired through ``prepare.paired``."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pip_model.apps.paper_table import paper_table
from pip_model.apps.report import metrics_table, prompt_cost_table
from pip_model.data.corpus import PairedSource, PrepareConfig, pair_source, prepare_corpus
from pip_model.data.datasets import MissingTestSetError, discover
from pip_model.data.datasets.standins import procedural_image, write_standins
from pip_model.data.images import real_training_pairs
from pip_model.data.pairs import DegradeConfig, build_benchmark
from pip_model.evaluation.benchmark import (
    EvaluateConfig,
    baseline_contenders,
    evaluate,
    load_benchmark,
    mean_scores,
    run_metrics,
    summarise,
)
from pip_model.image_files import write_png
from tests.helpers.stages import QUIET, ROOT

SETS_3TASK = ("BSD68", "Rain100L", "SOTS")
SETS_5TASK = ("BSD68", "Rain100L", "SOTS", "GoPro", "LOL")


def test_pips_own_layouts_are_found_with_their_test_sets(tmp_path):
    """PIP's tree (data/Train, data/test): Rain100L's test pairs input/rain-N + target/norain-N, GoPro as
    GOPRO_deblur/{train,test}/{blur,sharp}, LOL as Train/Enhance and test/enhance with low/ and high/."""
    write_standins(tmp_path, count=2, size=32, layout="pip")
    found = discover(tmp_path)
    assert found.skipped == []
    pairs = Counter((p.task, p.split, p.test_set) for p in found.pairs)
    assert pairs == {("derain", "train", ""): 2, ("derain", "test", "Rain100L"): 2,
                     ("dehaze", "train", ""): 4, ("dehaze", "test", "SOTS"): 2,
                     ("deblur", "train", ""): 2, ("deblur", "test", "GoPro"): 2,
                     ("lowlight", "train", ""): 2, ("lowlight", "test", "LOL"): 2}
    rain = [p for p in found.pairs if p.task == "derain" and p.split == "test"]
    assert sorted((p.degraded.name, p.clean.name) for p in rain) == [("rain-1.png", "norain-1.png"),
                                                                    ("rain-2.png", "norain-2.png")]
    assert Counter((c.split, c.test_set) for c in found.clean) == {("train", ""): 4, ("test", "BSD68"): 2}
    assert found.test_sets() == set(SETS_5TASK)
    assert {"bsd68 (clean, test) as BSD68: 2 images", "derain (derain, test) as Rain100L: 2 pairs",
            "enhance (lowlight, test) as LOL: 2 pairs"} <= set(found.summary())


def test_5task_prepares_pips_tree_with_training_pairs_of_every_task(tmp_path):
    write_standins(tmp_path / "datasets", count=2, size=40, layout="pip")
    config = PrepareConfig(datasets_root=str(tmp_path / "datasets"), min_side=32, require_test_sets=SETS_5TASK)
    result = prepare_corpus(config, seed=0, out_dir=tmp_path / "out", **QUIET)
    assert result.rejects.empty
    counts = Counter(zip(result.pairs["task"], result.pairs["split"], result.pairs["test_set"].fillna("")))
    assert counts == {("derain", "train", ""): 2, ("dehaze", "train", ""): 4, ("deblur", "train", ""): 2,
                      ("lowlight", "train", ""): 2, ("derain", "test", "Rain100L"): 2, ("dehaze", "test", "SOTS"): 2,
                      ("deblur", "test", "GoPro"): 2, ("lowlight", "test", "LOL"): 2}
    # What 5task's train.real_pairs reads (it stops when a task has none).
    assert sorted(real_training_pairs(tmp_path / "out")) == ["deblur", "dehaze", "derain", "lowlight"]


def test_sots_indoor_is_a_test_set_of_its_own(tmp_path):
    image = procedural_image(0, 32)
    for part in ("indoor", "outdoor"):
        write_png(tmp_path / "SOTS" / part / "hazy" / "0001_0.8_0.2.png", image)
        write_png(tmp_path / "SOTS" / part / "gt" / "0001.png", image)
    assert sorted(p.test_set for p in discover(tmp_path).pairs) == ["SOTS", "SOTS-indoor"]


@pytest.fixture(scope="module")
def promptir_benchmark(tmp_path_factory) -> Path:
    """PromptIR's tree (test/denoise/bsd68 beside test/denoise/urban100), prepared and benchmarked as 3task does."""
    root = tmp_path_factory.mktemp("promptir")
    write_standins(root / "datasets", count=2, size=40, layout="promptir")
    prepare_corpus(PrepareConfig(datasets_root=str(root / "datasets"), min_side=32, require_test_sets=SETS_3TASK),
                   seed=0, out_dir=root / "prepared", **QUIET)
    config = DegradeConfig(tasks=("denoise_15", "denoise_50", "derain", "dehaze"), real_only=("derain", "dehaze"),
                           benchmark_crop=0)
    build_benchmark(root / "prepared", config, seed=0, out_dir=root / "benchmark", **QUIET)
    return root / "benchmark"


def test_each_clean_test_set_keeps_its_name_in_the_benchmark(promptir_benchmark):
    manifest = pd.read_csv(promptir_benchmark / "manifest.csv")
    assert Counter(zip(manifest["task"], manifest["test_set"])) == {
        ("denoise_15", "BSD68"): 2, ("denoise_15", "Urban100"): 2, ("denoise_50", "BSD68"): 2,
        ("denoise_50", "Urban100"): 2, ("derain", "Rain100L"): 2, ("dehaze", "SOTS"): 2}


def test_bsd68_is_scored_alone_and_urban100_gets_columns_outside_the_average(promptir_benchmark):
    config = EvaluateConfig(classical=False, examples_per_task=0)
    result = evaluate(load_benchmark(promptir_benchmark), baseline_contenders(config), config, **QUIET)
    per_image = result.per_image
    assert sorted(result.metrics["input"]) == ["dehaze", "denoise_15", "denoise_15@Urban100", "denoise_50",
                                               "denoise_50@Urban100", "derain"]
    bsd68 = per_image.query("task == 'denoise_15' and test_set == 'BSD68'")["psnr"]
    urban = per_image.query("task == 'denoise_15' and test_set == 'Urban100'")["psnr"]
    assert len(bsd68) == len(urban) == 2
    assert result.metrics["input"]["denoise_15"]["psnr"] == pytest.approx(bsd68.mean(), abs=1e-4)
    assert result.metrics["input"]["denoise_15@Urban100"]["psnr"] == pytest.approx(urban.mean(), abs=1e-4)

    table = paper_table(result.metrics, "3task")
    assert list(table.columns) == ["BSD68 s15", "BSD68 s25", "BSD68 s50", "Rain100L", "SOTS", "average",
                                   "printed average", "source", "note", "Urban100 s15", "Urban100 s50"]
    metrics = result.metrics["input"]
    paper = ["denoise_15", "denoise_50", "derain", "dehaze"]
    average = np.mean([metrics[key]["psnr"] for key in paper])
    assert float(table.loc["input", "average"].split("/")[0]) == pytest.approx(average, abs=0.006)
    assert table.loc["input", "Urban100 s15"] == (f"{metrics['denoise_15@Urban100']['psnr']:.2f}/"
                                                  f"{metrics['denoise_15@Urban100']['ssim']:.3f}")
    assert table.loc["PIP-Restormer", "Urban100 s15"] == "-"
    assert table.loc["PIP-Restormer", "BSD68 s15"] == "34.24/0.936"
    # The model's own mean (and the report's mean row) is the paper's average too; MLflow names take no "@".
    assert mean_scores(metrics)["psnr"] == pytest.approx(average, abs=0.006)
    assert metrics_table(result.metrics, "psnr").loc["mean", "input"] == pytest.approx(average)
    assert "eval/denoise_15/Urban100/psnr" in run_metrics(metrics) and not any("@" in k for k in run_metrics(metrics))


def test_the_paper_table_keeps_the_papers_task_order_and_groups_the_other_test_sets():
    keys = ["dehaze", "denoise_15@Urban100", "denoise_15", "denoise_25@Kodak24", "derain", "denoise_25",
            "denoise_25@Urban100", "derain@Rain100H"]
    metrics = {"ours": {key: {"psnr": 30.0, "ssim": 0.9} for key in keys}}
    assert list(paper_table(metrics, "3task").columns) == [
        "BSD68 s15", "BSD68 s25", "BSD68 s50", "Rain100L", "SOTS", "average", "printed average", "source", "note",
        "Urban100 s15", "Urban100 s25", "Kodak24 s25", "Rain100H"]


def test_without_named_test_sets_the_tables_and_metrics_keep_their_layout(default_prepared, benchmark_48):
    """The demo pipeline (scikit-image's photographs): no test_set column in data/prepared or data/benchmark (so
    dvc.lock's hashes hold), and metrics keyed by task alone."""
    assert "test_set" not in pd.read_csv(default_prepared / "manifest.csv").columns
    assert "test_set" not in pd.read_csv(default_prepared / "pairs.csv").columns
    assert "test_set" not in pd.read_csv(benchmark_48 / "manifest.csv").columns
    per_image = pd.DataFrame({"model": ["m", "m"], "task": ["derain", "derain"], "test_set": ["", ""],
                              "id": ["a", "b"], "source": ["synthetic"] * 2, "psnr": [20.0, 22.0], "ssim": [0.5, 0.7]})
    assert summarise(per_image) == {"m": {"derain": {"psnr": 21.0, "ssim": 0.6}}}


def test_the_prompt_cost_table_leaves_out_composites_of_every_test_set():
    scores = {"psnr": 20.0, "ssim": 0.5}
    prompts = {f"pip@{name}": {"derain": scores, "derain_dehaze@Urban100": scores, "derain@Urban100": scores}
               for name in ("rain", "uniform")}
    assert list(prompt_cost_table(prompts, {}).index) == ["derain", "derain@Urban100"]


def test_a_missing_test_set_stops_prepare_with_one_line_naming_the_folders(tmp_path):
    write_standins(tmp_path / "datasets", count=1, size=40, layout="promptir", omit={"SOTS"})
    config = PrepareConfig(datasets_root=str(tmp_path / "datasets"), min_side=32, require_test_sets=SETS_3TASK)
    with pytest.raises(MissingTestSetError) as raised:
        prepare_corpus(config, seed=0, out_dir=tmp_path / "out", **QUIET)
    message = str(raised.value)
    assert "\n" not in message and message.startswith("prepare.require_test_sets: SOTS not found under")
    assert "SOTS*, RESIDE* or Dehaze" in message and "BSD68" not in message
    assert not (tmp_path / "out" / "manifest.csv").exists()  # stopped before any image was read


def test_the_prepare_stage_prints_the_one_line_and_fails(tmp_path, monkeypatch, capsys):
    from stages import prepare as stage

    write_standins(tmp_path / "datasets", count=1, size=40, layout="promptir", omit={"SOTS"})
    params = {"base": {"seed": 0}, "prepare": {"datasets_root": str(tmp_path / "datasets"), "min_side": 32,
                                               "require_test_sets": list(SETS_3TASK)}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setattr(sys, "argv", ["prepare.py", "--params", str(tmp_path / "params.yaml"),
                                      "--out", str(tmp_path / "out")])
    assert stage.main() == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("prepare: prepare.require_test_sets: SOTS not found")


def test_the_protocols_require_their_test_sets():
    protocols = yaml.safe_load((ROOT / "params.yaml").read_text())["protocols"]
    assert protocols["3task"]["prepare.require_test_sets"] == list(SETS_3TASK)
    assert protocols["5task"]["prepare.require_test_sets"] == list(SETS_5TASK)
    PrepareConfig(require_test_sets=SETS_5TASK)  # names the dataset families know
    with pytest.raises(ValueError, match="prepare.require_test_sets: BSD86 is no test set"):
        PrepareConfig(require_test_sets=("BSD86",))


def test_prepare_paired_pairs_ots_across_its_part_folders(tmp_path):
    """OTS through prepare.paired: synthetic/partK/ID_A_B.jpg pairs with original/ID.jpg."""
    write_standins(tmp_path, count=2, size=40, layout="promptir", omit={"BSD400", "WED", "BSD68", "Urban100",
                                                                        "Rain100L", "SOTS"})
    haze = tmp_path / "Train" / "Dehaze"
    source = PairedSource(task="dehaze", degraded_dir=str(haze / "synthetic"), clean_dir=str(haze / "original"),
                          split="train")
    pairs, unpaired, problems = pair_source(source)
    assert unpaired == [] and problems == []
    assert sorted((d.relative_to(haze).as_posix(), c.name) for d, c in pairs) == [
        ("synthetic/part1/0001_0.8_0.04.jpg", "0001.jpg"), ("synthetic/part1/0002_0.8_0.04.jpg", "0002.jpg"),
        ("synthetic/part2/0001_0.9_0.08.jpg", "0001.jpg"), ("synthetic/part2/0002_0.9_0.08.jpg", "0002.jpg")]
    corpus = tmp_path / "corpus"
    for i in range(3):
        write_png(corpus / f"{i}.png", procedural_image(100 + i, 40))
    result = prepare_corpus(PrepareConfig(source=str(corpus), min_side=32, paired=(source,)), seed=0,
                            out_dir=tmp_path / "out", **QUIET)
    assert result.rejects.empty and len(result.pairs) == 4 and set(result.pairs["split"]) == {"train"}
