"""The paper table: every published row with its source, averages computed from the five figures, ours beside
them, and the lines under it that say what this run is."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pip_model.apps.paper_table import (
    budget_line,
    lists_line,
    paper_table,
    published_comparison,
    run_lines,
    sets_found_line,
    write_evaluate_only,
)
from pip_model.apps.published import PUBLISHED, PublishedProtocol, PublishedRow
from pip_model.apps.report import paper_section
from pip_model.data.corpus import REAL_PAIR_COLUMNS
from pip_model.data.pairs import BENCHMARK_COLUMNS

SURVEY = "github.com/Harbinzzy/All-in-One-Image-Restoration-Survey"
PROMPTIR = "github.com/va1shn9v/PromptIR"
INSTRUCTIR = "github.com/mv-lab/InstructIR"
# Method -> (a repository its source names, the mean of its five figures as the table prints it), from the brief.
EXPECTED = {
    "3task": {"PIP-Restormer": (SURVEY, "32.91/0.920"), "PromptIR": (PROMPTIR, "32.06/0.913"),
              "AirNet": (PROMPTIR, "31.20/0.909"), "InstructIR-3D": (INSTRUCTIR, "32.43/0.913"),
              "AdaIR": ("github.com/c-yn/AdaIR", "32.69/0.918"),
              "MoCE-IR": ("github.com/eduardzamfir/MoCE-IR", "32.73/0.917")},
    "5task": {"PIP-Restormer": (SURVEY, "30.76/0.912"), "AirNet": (INSTRUCTIR, "25.49/0.847"),
              "Restormer": (INSTRUCTIR, "27.60/0.882"), "NAFNet": (INSTRUCTIR, "27.77/0.881"),
              "InstructIR-5D": (INSTRUCTIR, "29.55/0.908"), "AdaIR": ("github.com/c-yn/AdaIR", "30.20/0.910"),
              "MoCE-IR": ("github.com/eduardzamfir/MoCE-IR", "30.58/0.919")},
}
COLUMNS = {"3task": ["BSD68 s15", "BSD68 s25", "BSD68 s50", "Rain100L", "SOTS"],
           "5task": ["BSD68 s25", "Rain100L", "SOTS", "GoPro", "LOL"]}


def our_metrics(protocol: str, psnr: float = 30.0) -> dict[str, dict[str, dict[str, float]]]:
    """Figures for every task of the protocol, PSNR rising by 1 dB and SSIM by 0.01 per task."""
    return {"pip_restormer": {task: {"psnr": psnr + k, "ssim": 0.80 + 0.01 * k}
                              for k, task in enumerate(PUBLISHED[protocol].tasks)}}


@pytest.mark.parametrize("protocol", ["3task", "5task"])
def test_every_published_row_is_in_the_table_with_its_source_and_the_mean_of_its_figures(protocol):
    table = paper_table(our_metrics(protocol), protocol)
    assert list(table.columns) == [*COLUMNS[protocol], "average", "printed average", "source", "note"]
    assert list(table.index) == [*EXPECTED[protocol], "pip_restormer"]
    for method, (repository, average) in EXPECTED[protocol].items():
        assert repository in table.loc[method, "source"]
        assert table.loc[method, "average"] == average
        cells = [cell.split("/") for cell in table.loc[method, COLUMNS[protocol]]]
        psnr, ssim = (float(v) for v in average.split("/"))
        assert psnr == pytest.approx(sum(float(p) for p, _ in cells) / 5, abs=0.005)
        assert ssim == pytest.approx(sum(float(s) for _, s in cells) / 5, abs=0.0005)


def test_the_3task_row_keeps_its_figures_and_its_printed_average():
    table = paper_table(our_metrics("3task"), "3task")
    assert list(table.loc["PIP-Restormer", COLUMNS["3task"]]) == [
        "34.24/0.936", "31.60/0.893", "28.35/0.806", "38.29/0.984", "32.09/0.981"]
    assert table.loc["AirNet", "printed average"] == "31.20/0.910"
    assert table.loc["AirNet", "note"] == ""  # 0.9094 printed 0.910: rounding of the unrounded figures


def test_the_5task_pip_row_shows_its_five_and_notes_the_printed_average_that_is_not_their_mean():
    table = paper_table(our_metrics("5task"), "5task")
    assert list(table.loc["PIP-Restormer", COLUMNS["5task"]]) == [
        "30.94/0.877", "38.09/0.983", "32.11/0.979", "28.61/0.861", "24.06/0.859"]
    assert table.loc["PIP-Restormer", "average"] == "30.76/0.912"
    assert table.loc["PIP-Restormer", "printed average"] == "30.81/0.901"
    assert "30.81/0.901 is not the mean" in table.loc["PIP-Restormer", "note"]
    others = table.loc[[method for method in EXPECTED["5task"] if method != "PIP-Restormer"], "note"]
    assert (others == "").all()


def test_a_printed_average_one_unit_off_is_rounding_and_further_is_noted():
    tasks = ("derain", "dehaze")
    row = PublishedRow(method="m", source="s", figures={"derain": (30.0, 0.9), "dehaze": (31.0, 0.9)},
                       printed_average=(30.51, 0.901))
    assert row.average() == pytest.approx((30.5, 0.9)) and row.average_note() == ""
    off = PublishedRow(method="m", source="s", figures=row.figures, printed_average=(30.53, 0.900))
    assert "not the mean" in off.average_note()
    with pytest.raises(ValueError, match="published row 'm'"):
        PublishedProtocol(tasks=tasks[::-1], test_sets={}, datasets={}, rows=(row,))


def test_our_row_is_beside_them_averaged_the_same_way_and_says_which_test_sets_it_lacks():
    metrics = our_metrics("3task")
    metrics["restormer"] = {task: values for task, values in metrics["pip_restormer"].items()
                            if task not in ("derain", "dehaze")}
    table = paper_table(metrics, "3task")
    assert table.loc["pip_restormer", "average"] == "32.00/0.820"  # mean of 30..34 dB and 0.80..0.84
    assert table.loc["pip_restormer", "source"] == "this run"
    assert table.loc["pip_restormer", "printed average"] == "-" and table.loc["pip_restormer", "note"] == ""
    assert list(table.loc["restormer", ["Rain100L", "SOTS"]]) == ["-", "-"]
    assert table.loc["restormer", "average"] == "31.00/0.810"
    assert "3 of the 5 test sets (no result on Rain100L, SOTS): not comparable" in table.loc["restormer", "note"]


def test_the_budget_line_sets_steps_and_patches_against_the_published_budgets():
    line = budget_line({"train": {"steps": 150000, "batch_size": 8, "patch": 128}})
    assert "150,000 steps x batch 8 = 1.20 M patches of 128 px" in line
    assert "PIP about 28 M" in line and "4.2% of it" in line  # 1.2 M of 200 x 142311
    assert "PromptIR about 17 M" in line and "7.0% of it" in line  # of 120 x 142311


def write_prepared(folder, *, train_images: int, pairs: dict[str, int]) -> None:
    """A stand-in ``prepare`` output: manifest.csv and pairs.csv with the columns the stage writes."""
    folder.mkdir()
    manifest = pd.DataFrame([{"id": f"i{k}", "split": "train" if k < train_images else "test"}
                             for k in range(train_images + 2)])
    manifest.to_csv(folder / "manifest.csv", index=False)
    rows = [{"id": f"{task}-{k}", "task": task, "split": "train"} for task, n in pairs.items() for k in range(n)]
    rows.append({"id": "derain-test", "task": "derain", "split": "test"})
    pd.DataFrame(rows, columns=REAL_PAIR_COLUMNS).to_csv(folder / "pairs.csv", index=False)


def test_the_lists_line_names_the_lists_and_what_prepare_kept_for_training(tmp_path):
    assert lists_line({}, None) == "Training lists: none; training images: not recorded."
    write_prepared(tmp_path / "prepared", train_images=3, pairs={"dehaze": 4, "derain": 2})
    lists = {"prepare": {"train_lists": ["noisy/denoise.txt", "hazy/hazy_outside.txt"]}}
    assert lists_line(lists, tmp_path / "prepared") == (
        "Training lists: noisy/denoise.txt, hazy/hazy_outside.txt; training images: 3 clean, "
        "real pairs: dehaze 4, derain 2.")
    assert lists_line({"prepare": {"train_lists": {"dehaze": "hazy_outside.txt"}}}, None).startswith(
        "Training lists: dehaze: hazy_outside.txt;")


def benchmark(rows: list[tuple[str, str, str | None]]) -> pd.DataFrame:
    """A stand-in benchmark manifest: (task, split, test_set) per pair, the stage's columns plus ``test_set``."""
    return pd.DataFrame([{"id": f"{task}/{k}", "task": task, "split": split, "test_set": test_set}
                         for k, (task, split, test_set) in enumerate(rows)], columns=[*BENCHMARK_COLUMNS, "test_set"])


def test_the_test_sets_line_says_what_was_found_per_column_and_flags_another_set():
    found = benchmark([("denoise_25", "test", "BSD68")] * 2 + [("denoise_25", "test", "Urban100")]
                      + [("derain", "test", "Rain100L")] + [("dehaze", "val", "SOTS")])
    line = sets_found_line(found, "5task")
    assert "BSD68 s25: BSD68 (2) + Urban100 (1) (the paper: BSD68 alone)" in line
    assert "Rain100L: Rain100L (1);" in line
    assert "SOTS: none found" in line and "GoPro: none found" in line and "LOL: none found" in line
    unrecorded = benchmark([("derain", "test", None)]).drop(columns="test_set")
    assert "Rain100L: 1 pairs, set not recorded" in sets_found_line(unrecorded, "5task")
    assert sets_found_line(None, "5task") == "Test sets: not recorded (no benchmark manifest)."


def test_the_report_writes_the_table_with_sources_and_the_run_lines_under_it(tmp_path):
    (tmp_path / "benchmark").mkdir()
    benchmark([("derain", "test", "Rain100L")]).to_csv(tmp_path / "benchmark" / "manifest.csv", index=False)
    params = {"train": {"steps": 10, "batch_size": 2, "patch": 32}}
    sections = paper_section(our_metrics("3task"), "3task", params=params, benchmark_dir=tmp_path / "benchmark",
                             prepared_dir=None, out_dir=tmp_path / "reports")
    page = "\n".join(sections)
    written = pd.read_csv(tmp_path / "reports" / "paper_table.csv", index_col=0, keep_default_na=False)
    assert list(written.index) == [*EXPECTED["3task"], "pip_restormer"]
    assert written.loc["pip_restormer", "source"] == "this run" and SURVEY in written.loc["PIP-Restormer", "source"]
    notes = (tmp_path / "reports" / "paper_table_notes.txt").read_text().splitlines()
    assert notes == run_lines(params, tmp_path / "benchmark", None, "3task")
    assert notes[0].startswith("Training: 10 steps x batch 2 = 20 patches of 32 px")
    assert "Rain100L: Rain100L (1)" in notes[2]
    assert page.index("<table") < page.index("Training: 10 steps") and SURVEY in page


# A released PromptIR checkpoint's figures under 3task, one per test set (noise at sigma 15, 25, 50, rain, haze).
RELEASED = {"denoise_15": (34.00, 0.930), "denoise_25": (31.00, 0.890), "denoise_50": (28.06, 0.799),
            "derain": (37.00, 0.970), "dehaze": (30.00, 0.980)}


def test_a_released_checkpoint_is_set_beside_its_published_row_with_the_difference_per_column():
    metrics = {"promptir": {task: {"psnr": psnr, "ssim": ssim} for task, (psnr, ssim) in RELEASED.items()}}
    comparison = published_comparison(metrics, "3task", "promptir")
    assert list(comparison.index) == ["promptir (this run)", "PromptIR (published)", "difference"]
    assert list(comparison.columns) == [*COLUMNS["3task"], "average"]
    assert list(comparison.loc["PromptIR (published)"]) == [
        "33.98/0.933", "31.31/0.888", "28.06/0.799", "36.37/0.972", "30.58/0.974", "32.06/0.913"]
    # By hand: 34.00 - 33.98, 0.930 - 0.933, ...; the averages 160.06 / 5 = 32.012 and 4.569 / 5 = 0.9138 against
    # the published 160.30 / 5 = 32.06 and 4.566 / 5 = 0.9132.
    assert list(comparison.loc["difference"]) == [
        "+0.02/-0.003", "-0.31/+0.002", "+0.00/+0.000", "+0.63/-0.002", "-0.58/+0.006", "-0.05/+0.001"]
    assert comparison.loc["promptir (this run)", "average"] == "32.01/0.914"


def test_a_comparison_needs_every_test_set_for_its_average_and_a_published_row():
    partial = {"promptir": {task: {"psnr": psnr, "ssim": ssim} for task, (psnr, ssim) in RELEASED.items()
                            if task != "dehaze"}}
    comparison = published_comparison(partial, "3task", "promptir")
    assert comparison.loc["difference", "SOTS"] == "-" and comparison.loc["difference", "average"] == "-"
    assert published_comparison(partial, "5task", "promptir") is None  # the 5task table has no PromptIR row


def test_evaluate_only_writes_the_table_and_the_comparison_and_says_what_was_scored(tmp_path):
    metrics = {"input": {task: {"psnr": 20.0, "ssim": 0.5} for task in RELEASED},
               "promptir": {task: {"psnr": psnr, "ssim": ssim} for task, (psnr, ssim) in RELEASED.items()}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    text = write_evaluate_only(tmp_path, "3task", {"promptir": "model.ckpt (published PromptIR checkpoint)"}, None)
    assert "Models: scored as they are, nothing trained: promptir = model.ckpt (published PromptIR checkpoint)." in text
    assert pd.read_csv(tmp_path / "paper_table.csv", index_col=0).loc["promptir", "source"] == "this run"
    comparison = pd.read_csv(tmp_path / "promptir_vs_published.csv", index_col=0)
    assert comparison.loc["difference", "Rain100L"] == "+0.63/-0.002"
    assert comparison.to_string() in text
